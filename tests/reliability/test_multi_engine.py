"""Many engines on one PostgreSQL queue (tests/reliability/chaos/multi.py): separate engine
processes, each with a home of its own, as on separate hosts. PostgreSQL only: a SQLite queue
has one engine. scripts/soak.py runs the same scenarios many times."""

from __future__ import annotations

import pytest
from helpers import Backend

from reliability.chaos.multi import (
    connections_cut,
    drain_exactly_once,
    kill9_one_of_many,
    sigstop_past_lease,
)

#: the `backend` fixture (conftest.py), on its PostgreSQL queue only
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.mark.slow
@postgres_only
def test_four_engines_drain_20000_jobs_each_executed_exactly_once(backend: Backend) -> None:
    """20,000 jobs in one `enqueue --file`, 4 engines: the output file holds each id once."""
    result = drain_exactly_once(backend, jobs_count=20_000, engines_count=4, concurrency=8)
    assert result.ok, result.report()
    assert result.notes["distinct ids in the output file"] == 20_000, result.report()
    assert result.notes["lines in the output file"] == 20_000, result.report()


@pytest.mark.slow
@postgres_only
def test_kill9_of_one_engine_its_jobs_are_rescued_by_the_others_without_overlap(
    backend: Backend,
) -> None:
    """`kill -9` of the engine holding most jobs: the other two run them again, never while
    a run of theirs is alive, and the killed engine's attempts say it died."""
    result = kill9_one_of_many(
        backend, engines_count=3, concurrency=6, jobs_count=18, seed_value=1, max_kill_delay=0.3
    )
    assert result.ok, result.report()
    assert result.notes["jobs held by the killed engine"] >= 1, result.report()


@pytest.mark.slow
@postgres_only
def test_sigstop_past_the_lease_same_host_stale_runs_are_refused(backend: Backend) -> None:
    """SIGSTOP past the lease, then SIGCONT, all on one host: the rescuers kill the stopped
    engine's job processes before running the jobs again; its late outcomes are refused."""
    result = sigstop_past_lease(backend, other_host=False)
    assert result.ok, result.report()
    assert result.notes["late outcomes refused"] == 6, result.report()


@pytest.mark.slow
@postgres_only
def test_sigstop_past_the_lease_other_host_the_engine_fences_itself(backend: Backend) -> None:
    """SIGSTOP past the lease, then SIGCONT, the job processes out of the rescuers' reach (as
    on another host): the engine, continued, finds its jobs taken and kills their processes
    itself; its late outcomes are refused, and no applied run overlaps another."""
    result = sigstop_past_lease(backend, other_host=True)
    assert result.ok, result.report()
    assert result.notes["late outcomes refused"] == 6, result.report()
    assert result.notes["stale runs still running at SIGCONT"] == 3, result.report()


@pytest.mark.slow
@postgres_only
def test_engines_reconnect_after_the_server_cuts_their_sessions(backend: Backend) -> None:
    """`pg_terminate_backend` of every engine session, 4 times while 3 engines run jobs: they
    stay up, reconnect, and nothing is lost, stuck or completed twice."""
    result = connections_cut(backend, engines_count=3, cuts=4, seed_value=2)
    assert result.ok, result.report()
    assert result.notes["sessions terminated"] >= 4 * 3, result.report()
