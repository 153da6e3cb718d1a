"""Dependencies and unique keys end to end: the real CLI and a real engine, on each backend."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from engine_process import StartEngine
from helpers import Backend, Cli, assert_one_line_error, get_job, queue_snapshot, wait_for

from queuectl.states import JobState


def stamp(marks: Path, name: str) -> str:
    """A command that records when it starts and ends, by name."""
    return (
        f"echo start {name} $(date +%s.%N) >> {marks}; sleep 0.3; "
        f"echo end {name} $(date +%s.%N) >> {marks}"
    )


def times(marks: Path) -> dict[tuple[str, str], float]:
    found = {}
    for line in marks.read_text().splitlines():
        what, name, at = line.split()
        found[(what, name)] = float(at)
    return found


def test_a_diamond_runs_in_order(
    cli: Cli, backend: Backend, engines: StartEngine, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    cli("enqueue", "--id", "a", "--", stamp(marks, "a"), check=True)
    cli("enqueue", "--id", "b", "--after", "a", "--", stamp(marks, "b"), check=True)
    cli("enqueue", "--id", "c", "--after", "a", "--", stamp(marks, "c"), check=True)
    cli("enqueue", "--id", "d", "--after", "b,c", "--", stamp(marks, "d"), check=True)
    shown = json.loads(cli("show", "d", "--json", check=True).stdout)
    assert (shown["state"], shown["parents"], shown["children"]) == ("blocked", ["b", "c"], [])
    status = json.loads(cli("status", "--json", check=True).stdout)
    assert status["counts"]["blocked"] == 3
    engine = engines("-c", "4", "--until-empty")
    assert engine.wait(60) == 0
    at = times(marks)
    assert at[("end", "a")] <= min(at[("start", "b")], at[("start", "c")])
    assert max(at[("end", "b")], at[("end", "c")]) <= at[("start", "d")]
    assert abs(at[("start", "b")] - at[("start", "c")]) < 0.3  # siblings ran side by side
    human = cli("show", "a", check=True).stdout
    assert "children" in human and "b, c" in human


def test_a_dead_parent_cancels_its_subtree(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "bad", "--max-retries", "0", "--", "exit 3", check=True)
    cli("enqueue", "--id", "child", "--after", "bad", "--", "true", check=True)
    cli("enqueue", "--id", "grandchild", "--after", "child", "--", "true", check=True)
    engine = engines("--until-empty")
    assert engine.wait(60) == 0
    assert get_job(backend, "bad").state is JobState.DEAD
    for job_id, parent in (("child", "bad"), ("grandchild", "child")):
        job = get_job(backend, job_id)
        assert job.state is JobState.CANCELED and job.attempts == 0
        assert job.last_error is not None and f"its parent {parent} ended" in job.last_error


def test_after_an_unknown_job_is_refused_and_changes_nothing(cli: Cli, backend: Backend) -> None:
    cli("enqueue", "--id", "real", "--", "true", check=True)
    before = queue_snapshot(backend)
    result = cli("enqueue", "--after", "real,ghost", "--", "true")
    message = assert_one_line_error(result, 2)
    assert "'ghost', which does not exist" in message
    result = cli("enqueue", "--after", "", "--", "true")
    assert "invalid id" in assert_one_line_error(result, 2)
    assert queue_snapshot(backend) == before


def test_a_file_line_may_name_an_earlier_line(cli: Cli, backend: Backend, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        '{"id": "one", "command": "true"}\n{"id": "two", "command": "true", "after": ["one"]}\n'
    )
    cli("enqueue", "--file", str(jobs), check=True)
    assert get_job(backend, "two").state is JobState.BLOCKED
    jobs.write_text(
        '{"id": "x", "command": "true", "after": ["y"]}\n{"id": "y", "command": "true"}\n'
    )
    result = cli("enqueue", "--file", str(jobs))
    assert "'y', which does not exist" in assert_one_line_error(result, 2)


def test_a_unique_key_prints_the_existing_job(cli: Cli, backend: Backend) -> None:
    first = cli("enqueue", "--unique-key", "nightly", "--", "sleep 9", check=True)
    again = cli("enqueue", "--unique-key", "nightly", "--", "sleep 9", check=True)
    assert first.stdout == again.stdout and first.stdout.strip()
    assert first.stderr == ""
    assert "already queued" in again.stderr and "nothing was created" in again.stderr
    assert sum(json.loads(cli("status", "--json").stdout)["counts"].values()) == 1
    shown = json.loads(cli("show", first.stdout.strip(), "--json", check=True).stdout)
    assert shown["unique_key"] == "nightly" and shown["queue"] == "default"


ENQUEUER = textwrap.dedent(
    """
    import asyncio, sys
    from queuectl import service
    from queuectl.specs import shorthand_spec, Shorthand

    async def main():
        queue = service.Queue.locate(home=sys.argv[1], db=sys.argv[2] or None)
        spec = shorthand_spec(sys.argv[3], "/", Shorthand(unique_key="shared"))
        for _ in range(100):
            print((await service.enqueue(queue, spec)).id, flush=True)

    asyncio.run(main())
    """
)


def test_concurrent_enqueuers_of_one_key_never_make_two_live_jobs(
    cli: Cli, backend: Backend, engines: StartEngine, tmp_path: Path
) -> None:
    """8 processes enqueue the same key 100 times each while an engine runs the jobs: each
    enqueue names a job, and the jobs' runs never overlap (at most one live at a time)."""
    marks = tmp_path / "marks"
    command = (
        f"echo start $QUEUECTL_JOB_ID $(date +%s.%N) >> {marks}; sleep 0.05; "
        f"echo end $QUEUECTL_JOB_ID $(date +%s.%N) >> {marks}"
    )
    cli("status", check=None)  # the queue exists before the enqueuers start
    cli("enqueue", "--unique-key", "warm-up", "--", "true", check=True)
    engine = engines("-c", "4")
    wait_for(engine.started, 20)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUER, str(backend.home), backend.db or "", command],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    printed = [proc.communicate(timeout=120)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert [len(ids) for ids in printed] == [100] * 8  # every enqueue named a job
    wait_for(lambda: marks.exists() and not _live(backend), 60)
    spans: dict[str, list[float]] = {}
    for line in marks.read_text().splitlines():
        _, job_id, at = line.split()
        spans.setdefault(job_id, []).append(float(at))
    ordered = sorted(spans.values())
    assert all(len(span) == 2 for span in ordered)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered))
    assert set(spans) <= {job_id for ids in printed for job_id in ids}


def _live(backend: Backend) -> bool:
    from helpers import all_jobs

    live = {JobState.PENDING, JobState.PROCESSING, JobState.FAILED, JobState.BLOCKED}
    return any(job.state in live for job in all_jobs(backend).values())
