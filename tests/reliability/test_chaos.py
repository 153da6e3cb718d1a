"""Fast forms of the chaos scenarios (tests/reliability/chaos/) for `make test`.

Real engine processes, real shell commands, real `kill -9`s; scripts/soak.py runs the same
scenarios many times with random sizes and timings. Each test fails with the scenario's
summary (what was lost, run twice at once, or stuck, and every other problem) and the logs of
its engines.
"""

from __future__ import annotations

import pytest
from helpers import Backend

from queuectl.faults import POINTS
from reliability.chaos.crashes import crash_at_fault_point, poison_job
from reliability.chaos.enqueuers import concurrent_enqueue
from reliability.chaos.kill9 import kill9_with_jobs_running


@pytest.mark.slow
def test_kill9_with_20_jobs_running_loses_nothing_and_never_overlaps(backend: Backend) -> None:
    """Scenario 1: all 20 jobs are running when the engine is killed; the next engine kills
    their processes, and runs each job again, never while its previous run is alive."""
    result = kill9_with_jobs_running(
        backend,
        jobs_count=20,
        seed_value=1,
        early_kill=False,
        min_seconds=3.0,
        max_seconds=4.0,
        max_kill_delay=0.3,
    )
    assert result.ok, result.report()
    assert result.notes["jobs running at the first kill"] == 20, result.report()
    # killed in the middle of their `sleep` (3-4 s): none finished its command twice
    assert result.notes["re-run after its command had finished"] == 0, result.report()


@pytest.mark.slow
def test_kill9_of_the_recovering_engine_too_loses_nothing(backend: Backend) -> None:
    """Scenario 1, twice: the engine that recovers the first one's jobs is killed as well, a
    moment after it started; a third engine finishes everything."""
    result = kill9_with_jobs_running(
        backend,
        jobs_count=10,
        seed_value=6,
        early_kill=False,
        min_seconds=1.0,
        max_seconds=2.0,
        max_kill_delay=0.3,
        kills=2,
    )
    assert result.ok, result.report()
    assert result.notes["engines killed"] == 2, result.report()


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_each_step_of_a_job_loses_nothing(backend: Backend, point: str) -> None:
    """Scenario 2: the engine SIGKILLs itself at `point` of one job's life; after a restart
    without the fault every job completes and the crashed attempt says the engine died."""
    result = crash_at_fault_point(
        backend,
        point=point,
        targeted=True,
        jobs_count=4,
        seed_value=2,
        min_seconds=1.0,
        max_seconds=1.5,
    )
    assert result.ok, result.report()
    assert result.notes["jobs held by the crashed engine"] >= 1, result.report()


def test_crash_at_the_first_claim_loses_nothing(backend: Backend) -> None:
    """Scenario 2, untargeted: the engine dies right after claiming its first batch."""
    result = crash_at_fault_point(
        backend, point="claim", targeted=False, jobs_count=4, seed_value=3
    )
    assert result.ok, result.report()
    assert result.notes["jobs held by the crashed engine"] == 4, result.report()


@pytest.mark.slow
def test_concurrent_enqueuers_while_the_engine_runs_execute_each_job_once(backend: Backend) -> None:
    """Scenario 3, small: 4 enqueuers x 250 jobs while the engine runs 20 at a time (the soak
    runs 4 x 2,500)."""
    result = concurrent_enqueue(
        backend, enqueuers=4, per_enqueuer=250, seed_value=4, concurrency=20, singles=3
    )
    assert result.ok, result.report()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["spawn", "claim"])
def test_poison_job_goes_dead_without_a_crash_loop(backend: Backend, point: str) -> None:
    """Scenario 4 (the issue's scenario 7): a job that kills the engine whenever it runs is
    given up after max_retries + 1 engine deaths; the other jobs complete."""
    result = poison_job(
        backend, max_retries=2, others=6, concurrency=4, seed_value=5, point=point, max_restarts=10
    )
    assert result.ok, result.report()
    assert result.notes["engine deaths"] == 3, result.report()
