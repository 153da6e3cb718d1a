"""Queue limits held by real engines: three engines (each its own home, as on its own host) on
one PostgreSQL database never run more of a limited queue's jobs at once than its limit, as the
jobs themselves record it; a paused queue's jobs wait while the others run; and `--queues`
keeps an engine to its queues (on every backend).

The jobs log their own start and end (tests/reliability/chaos/tracking.py), so what is judged
is what ran, not what the queue says ran."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine_process import StartEngine
from helpers import Backend, Cli, all_jobs, wait_for
from reliability.chaos.tracking import tracked_command, tracked_runs
from sites import Site, started

from queuectl.states import JobState


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at the instant of a start closes first)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_peak_overlap_counts_what_runs_at_once() -> None:
    assert peak_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert peak_overlap([(0, 3), (1, 2), (1.5, 4)]) == 3


def test_three_engines_never_run_more_than_the_queue_limit(
    sites: Callable[[], Site], tmp_path: Path
) -> None:
    """100 jobs of `sleep 0.2` in a queue limited to 2, three engines of one slot each (3
    could run at once): at no instant do more than 2 run, all 100 complete, and the engines
    shared them. The jobs are enqueued once the engines wait, so that the one notice wakes all
    three to claim at the same moment. (An engine of many slots is held to the limit by
    test_store_queues.py; here, a freed slot of the limit is taken again by the engine whose
    job ended, so with many slots each one engine would run everything.)"""
    track = tmp_path / "track"
    track.mkdir()
    here = sites()
    here.cli("queue", "set", "lim", "--concurrency", "2", check=True)
    lines = [
        json.dumps({"id": f"j{n}", "queue": "lim", "command": tracked_command(track, f"j{n}", 0.2)})
        for n in range(100)
    ]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(lines) + "\n")
    engines = [started(sites().engines.start("-c", "1")) for _ in range(3)]
    here.cli("enqueue", "--file", str(jobs_file), check=True)

    def all_done() -> bool:
        jobs = all_jobs(here.backend)
        return sum(job.state is JobState.COMPLETED for job in jobs.values()) == 100

    wait_for(all_done, 120, interval=0.5)
    runs = [run for n in range(100) for run in tracked_runs(track, f"j{n}")]
    assert len(runs) == 100 and all(run.end is not None for run in runs)
    assert peak_overlap([(run.start, run.end or run.start) for run in runs]) == 2
    owners = {attempt_engine for attempt_engine in _engines_of(here)}
    assert len(owners) >= 2, owners  # the limit was shared, not one engine's slots
    assert all(engine.alive() for engine in engines)


def _engines_of(site: Site) -> set[str]:
    from helpers import job_attempts

    return {
        str(attempt.engine) for n in range(100) for attempt in job_attempts(site.backend, f"j{n}")
    }


def test_a_paused_queue_waits_while_others_run(
    cli: Cli, engines: StartEngine, backend: Backend
) -> None:
    cli("queue", "pause", "held", check=True)
    cli("enqueue", "--queue", "held", "--id", "h1", "--", "true", check=True)
    cli("enqueue", "--queue", "free", "--id", "f1", "--", "true", check=True)
    started(engines("-c", "2"))
    wait_for(lambda: all_jobs(backend)["f1"].state is JobState.COMPLETED, 20)
    cli("enqueue", "--queue", "free", "--id", "f2", "--", "true", check=True)
    wait_for(lambda: all_jobs(backend)["f2"].state is JobState.COMPLETED, 20)
    assert all_jobs(backend)["h1"].state is JobState.PENDING
    cli("queue", "resume", "held", check=True)
    wait_for(lambda: all_jobs(backend)["h1"].state is JobState.COMPLETED, 10)


def test_queues_keeps_an_engine_to_its_queues(
    cli: Cli, engines: StartEngine, backend: Backend
) -> None:
    for queue in ("a", "b", "c"):
        cli("enqueue", "--queue", queue, "--id", f"in-{queue}", "--", "true", check=True)
    engine = started(engines("-c", "4", "--queues", "a,b"))
    wait_for(
        lambda: all(all_jobs(backend)[f"in-{q}"].state is JobState.COMPLETED for q in "ab"), 20
    )
    status = json.loads(cli("status", "--json", check=True).stdout)
    assert status["engine"]["queues"] == ["a", "b"]
    assert all_jobs(backend)["in-c"].state is JobState.PENDING
    assert engine.alive()
