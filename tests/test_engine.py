"""The engine end to end: a real `queuectl worker start` process running real shell commands.

Every test starts its engines through the `engines` fixture (conftest.py), which stops them
(and kills any job a killed engine left running) at the end of the test, pass or fail, and
prints their logs.
Waiting is by polling the queue through the Store (helpers.all_jobs, get_job, job_attempts),
never by fixed sleeps, except where the passing of time is what is tested; the `backend`
fixture runs each test on every backend.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from engine_process import StartEngine, list_jobs, show, timestamp
from helpers import (
    Backend,
    all_jobs,
    assert_one_line_error,
    configure,
    get_job,
    job_attempts,
    seed,
    wait_for,
    write_jobs_file,
)

from queuectl.procfs import alive as running
from queuectl.procfs import group_members
from queuectl.states import ErrorKind

MB = 1024 * 1024


# --- helpers ----------------------------------------------------------------------------------


def enqueue_jobs(cli: Any, home: Path, specs: Sequence[dict[str, Any]]) -> None:
    """Enqueue with one `enqueue --file` of JSON lines."""
    path = write_jobs_file(home / f"jobs-{time.monotonic_ns()}.jsonl", specs)
    result = cli("enqueue", "--file", str(path), check=True)
    assert result.stdout.strip() == f"enqueued {len(specs)} jobs"


def all_in_state(backend: Backend, ids: Sequence[str], state: str, with_pid: bool = False) -> bool:
    jobs = all_jobs(backend)
    return all(
        job_id in jobs and jobs[job_id].state == state and (not with_pid or jobs[job_id].pid)
        for job_id in ids
    )


def states(backend: Backend) -> dict[str, str]:
    return {job.id: job.state.value for job in all_jobs(backend).values()}


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most half-open intervals [start, end) that share one moment."""
    events = sorted(
        [(end, -1) for _start, end in intervals] + [(start, 1) for start, _end in intervals]
    )
    most = now = 0
    for _at, delta in events:
        now += delta
        most = max(most, now)
    return most


# --- 1. many jobs -----------------------------------------------------------------------------


@pytest.mark.slow
def test_500_jobs_each_run_exactly_once(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    out, times = home / "out.txt", home / "times.txt"
    ids = [f"job-{n:03d}" for n in range(500)]
    # each job notes when its process ran: an attempt's finished_at is when its outcome was
    # committed, after its slot was already given to the next job
    command = f's=$(date +%s.%N); echo {{}} >> {out}; echo "$s $(date +%s.%N)" >> {times}'
    enqueue_jobs(cli, home, [{"id": job_id, "command": command.format(job_id)} for job_id in ids])
    assert Counter(states(backend).values()) == {"pending": 500}

    engine = engines("--concurrency", "20", "--until-empty")
    assert engine.wait(timeout=90) == 0

    lines = out.read_text().splitlines()
    duplicates = [line for line, count in Counter(lines).items() if count > 1]
    assert duplicates == []
    assert sorted(lines) == ids
    jobs = all_jobs(backend)
    assert {job.state for job in jobs.values()} == {"completed"}
    assert {(job.attempts, job.runs, job.exit_code) for job in jobs.values()} == {(1, 1, 0)}
    assert {row["state"] for row in list_jobs(cli)} == {"completed"}
    assert len(list_jobs(cli)) == 500
    assert "engine stopped: 500 completed, 0 failed" in engine.log()

    attempts = [a for job_id in ids for a in job_attempts(backend, job_id)]
    assert len(attempts) == 500  # one attempt each
    assert all(a.finished_at is not None and a.started_at <= a.finished_at for a in attempts)
    spans = [
        (float(start), float(end)) for start, end in map(str.split, times.read_text().splitlines())
    ]
    assert len(spans) == 500
    assert 2 <= max_overlap(spans) <= 20  # ran concurrently, never above the limit


# --- 2. retries, the DLQ, and back ------------------------------------------------------------


@pytest.mark.slow
def test_failing_job_retries_then_dies_and_dlq_retry_revives_it(
    home: Path, cli: Any, engines: StartEngine
) -> None:
    configure(cli, backoff_base="1", backoff_jitter="0")
    marker = home / "marker"
    command = (
        f'echo "try $QUEUECTL_ATTEMPT"; test -e {marker} || {{ echo "no marker" >&2; exit 3; }}'
    )
    cli("enqueue", json.dumps({"id": "flaky", "command": command, "max_retries": 2}), check=True)

    engine = engines("--until-empty")
    assert engine.wait(timeout=30) == 0

    dead = show(cli, "flaky")
    assert (dead["state"], dead["attempts"], dead["runs"]) == ("dead", 3, 3)
    assert dead["exit_code"] == 3
    assert dead["last_error"] == "exit code 3 (stderr: no marker)"
    assert dead["error_kind"] == ErrorKind.EXIT
    history = dead["history"]
    assert [a["run"] for a in history] == [1, 2, 3]
    assert [a["exit_code"] for a in history] == [3, 3, 3]
    assert all("exit code 3" in a["error"] for a in history)
    assert [a["error_kind"] for a in history] == [ErrorKind.EXIT] * 3
    assert [a["stdout"] for a in history] == ["try 1\n", "try 2\n", "try 3\n"]
    for before, after in itertools.pairwise(history):  # backoff-base 1: 1 s apart
        assert timestamp(after["started_at"]) - timestamp(before["finished_at"]) >= 0.9
    log = engine.log()
    assert log.count("flaky failed after") == 2
    assert "flaky dead after 3 attempts" in log
    assert [j["id"] for j in json.loads(cli("dlq", "list", "--json", check=True).stdout)] == [
        "flaky"
    ]

    assert cli("dlq", "retry", "flaky", check=True).stdout.strip() == "retried 1 job"
    revived = show(cli, "flaky")
    assert (revived["state"], revived["attempts"], revived["last_error"]) == ("pending", 0, None)
    assert len(revived["history"]) == 3  # kept
    assert json.loads(cli("dlq", "list", "--json", check=True).stdout) == []

    marker.touch()  # this time round the command succeeds
    engine = engines("--until-empty")
    assert engine.wait(timeout=30) == 0
    done = show(cli, "flaky")
    assert (done["state"], done["attempts"], done["runs"], done["exit_code"]) == (
        "completed",
        1,
        4,
        0,
    )
    assert len(done["history"]) == 4
    last = done["history"][-1]
    assert (last["run"], last["exit_code"], last["error"], last["error_kind"]) == (4, 0, None, None)
    assert last["stdout"] == "try 1\n"  # attempts were reset: this is attempt 1 again
    assert "flaky completed in" in engine.log()


# --- 3. timeouts --------------------------------------------------------------------------------


@pytest.mark.slow
def test_timeout_kills_the_whole_process_group(home: Path, cli: Any, engines: StartEngine) -> None:
    configure(cli, kill_grace="1")
    pids = home / "pids"
    # the shell, a child that ignores SIGTERM (only the SIGKILL after the grace ends it), and a
    # plain background child
    command = (
        f"echo $$ > {pids}; (trap '' TERM; exec sleep 300) & echo $! >> {pids}; "
        f"sleep 300 & echo $! >> {pids}; wait"
    )
    cli(
        "enqueue",
        json.dumps({"id": "slow", "command": command, "timeout": 1, "max_retries": 0}),
        check=True,
    )

    engine = engines("--until-empty")
    assert engine.wait(timeout=30) == 0

    recorded = [int(word) for word in pids.read_text().split()]
    assert len(recorded) == 3
    assert [pid for pid in recorded if running(pid)] == []
    assert group_members(recorded[0]) == []
    result = show(cli, "slow")
    assert result["state"] == "dead"
    assert "timed out after 1s" in result["last_error"]
    assert result["error_kind"] == ErrorKind.TIMEOUT
    [attempt] = result["history"]
    assert "timed out" in attempt["error"]
    assert attempt["error_kind"] == ErrorKind.TIMEOUT
    assert attempt["exit_code"] is None  # the shell died by a signal
    # timeout 1 s, then SIGTERM; the TERM-ignoring child lives until the SIGKILL 1 s later
    assert 1.9 <= attempt["duration"] < 10
    assert "slow dead after 1 attempt" in engine.log()


# --- 4. run_at ----------------------------------------------------------------------------------


def test_scheduled_jobs_do_not_start_early(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    engine = engines()
    wait_for(engine.started)
    before = time.time()
    cli("enqueue", "--id", "delayed", "--delay", "2s", "--", "true", check=True)
    after = time.time()
    plus_two = timezone(timedelta(hours=2))
    at = (datetime.now(UTC) + timedelta(seconds=1.5)).astimezone(plus_two).isoformat()
    cli("enqueue", "--id", "at", "--run-at", at, "--", "true", check=True)

    wait_for(lambda: all_in_state(backend, ["delayed", "at"], "completed"), timeout=15)
    for job_id in ("delayed", "at"):
        result = show(cli, job_id)
        run_at = timestamp(result["run_at"])
        if job_id == "delayed":  # now + 2 s, "now" being during the enqueue command
            assert before + 2 - 0.002 <= run_at <= after + 2
        else:
            assert abs(run_at - datetime.fromisoformat(at).timestamp()) < 0.002
        [attempt] = result["history"]
        started = timestamp(attempt["started_at"])
        assert started >= run_at - 0.1, f"{job_id} started {run_at - started:.3f}s early"
        assert started - run_at < 2.0, f"{job_id} started {started - run_at:.3f}s late"
    assert engine.stop() == 0


# --- 5. priorities ------------------------------------------------------------------------------


def test_higher_priority_runs_first(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    out = home / "out"
    # ids and file order differ from priority order, so neither can pass for it
    enqueue_jobs(
        cli,
        home,
        [
            {
                "id": f"{name}-p{priority}",
                "command": f"echo {priority} >> {out}",
                "priority": priority,
            }
            for name, priority in (("a", 1), ("b", 10), ("c", 5), ("d", 0))
        ],
    )
    engine = engines("--until-empty", "-c", "1")
    assert engine.wait(timeout=30) == 0
    assert out.read_text().split() == ["10", "5", "1", "0"]
    assert set(states(backend).values()) == {"completed"}


# --- 6. huge output -----------------------------------------------------------------------------


@pytest.mark.slow
def test_huge_output_keeps_a_bounded_tail(backend: Backend, cli: Any, engines: StartEngine) -> None:
    configure(cli, output_limit="64KiB")
    command = r"head -c 50000000 /dev/zero | tr '\0' x; echo; echo END; echo err >&2"
    engine = engines()
    wait_for(engine.started)
    idle_kib = engine.peak_kib()
    cli("enqueue", "--id", "big", "--", command, check=True)
    wait_for(lambda: get_job(backend, "big").state == "completed", timeout=60)
    busy_kib = engine.peak_kib()
    assert engine.stop() == 0

    marker = "queuectl: [... earlier stdout truncated (config output-limit) ...]\n"
    result = cli("logs", "big", "--stdout", check=True)
    assert result.stderr == marker  # told by the command, not stored in the output
    tail = result.stdout
    assert len(tail) == 64 * 1024
    assert tail.endswith("x\nEND\n")
    assert set(tail[: -len("\nEND\n")]) == {"x"}
    small = cli("logs", "big", "--stderr", check=True)
    assert (small.stdout, small.stderr) == ("err\n", "")  # kept whole: no marker
    both = cli("logs", "big", check=True)
    assert both.stderr == marker
    assert "==> stderr <==\nerr\n" in both.stdout and both.stdout.count("x") == tail.count("x")
    [attempt] = show(cli, "big")["history"]
    assert (attempt["stdout_truncated"], attempt["stderr_truncated"]) == (True, False)
    # holding even one copy of the 50 MB would show
    assert (busy_kib - idle_kib) * 1024 < 30 * MB, f"peak memory {idle_kib} -> {busy_kib} KiB"
    assert busy_kib * 1024 < 150 * MB, f"engine peak memory {busy_kib} KiB"


# --- 7. kill -9 and recovery --------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_of_a_killed_engine_run_again_exactly_once(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    configure(cli, backoff_base="1", backoff_jitter="0")
    out = home / "out"
    ids = [f"crash-{n}" for n in range(10)]
    enqueue_jobs(
        cli, home, [{"id": job_id, "command": f"sleep 4; echo {job_id} >> {out}"} for job_id in ids]
    )
    first = engines("-c", "10")
    wait_for(lambda: all_in_state(backend, ids, "processing", with_pid=True), timeout=15)
    groups = {job_id: job.pid for job_id, job in all_jobs(backend).items()}
    owner = get_job(backend, ids[0]).lease_owner
    assert owner is not None

    first.kill9()
    # the jobs live on in their own sessions: that is what recovery must clean up
    assert all(group_members(pgid) for pgid in groups.values())
    second = engines("--until-empty", "-c", "10")
    assert second.wait(timeout=60) == 0

    lines = out.read_text().splitlines()
    assert sorted(lines) == ids  # once each: the orphans were killed before their echo
    assert [job_id for job_id, pgid in groups.items() if group_members(pgid)] == []
    jobs = all_jobs(backend)
    assert {jobs[job_id].state for job_id in ids} == {"completed"}
    assert not any(job.state == "processing" for job in jobs.values())
    for job_id in ids:
        runs = job_attempts(backend, job_id)
        assert len(runs) == 2
        assert runs[0].error_kind == ErrorKind.ENGINE_DIED
        assert "the engine running the job died" in (runs[0].error or "")
        assert owner in (runs[0].error or "")
        assert runs[0].engine == owner
        assert (runs[1].exit_code, runs[1].error, runs[1].error_kind) == (0, None, None)
        assert jobs[job_id].attempts == 2  # the lost run counted as a failed attempt
    history = show(cli, ids[0])["history"]
    assert "the engine running the job died" in history[0]["error"]
    assert history[0]["error_kind"] == ErrorKind.ENGINE_DIED
    log = second.log()
    assert "recovered 10 jobs left by a dead engine" in log
    assert log.count("killed process group") == 10


# --- 8. stopping ------------------------------------------------------------------------------


def test_sigterm_lets_running_jobs_finish(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    out = home / "out"
    ids = ["t1", "t2", "t3"]
    enqueue_jobs(
        cli,
        home,
        [
            *(
                {"id": job_id, "command": f"sleep 1.5; echo done >> {out}", "priority": 1}
                for job_id in ids
            ),
            {"id": "waiting", "command": f"echo waiting >> {out}"},  # no free slot: never claimed
        ],
    )
    engine = engines("-c", "3")
    wait_for(lambda: all_in_state(backend, ids, "processing", with_pid=True), timeout=15)
    assert not out.exists()

    assert engine.stop(signal.SIGTERM, timeout=30) == 0
    assert out.read_text() == "done\n" * 3
    jobs = all_jobs(backend)
    assert [jobs[job_id].state for job_id in ids] == ["completed"] * 3
    assert (jobs["waiting"].state, jobs["waiting"].runs) == ("pending", 0)
    log = engine.log()
    assert "SIGTERM: stopping; 3 running jobs will finish" in log
    assert "engine stopped: 3 completed, 0 failed" in log


def test_second_sigterm_kills_jobs_and_returns_them_to_pending(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    configure(cli, kill_grace="1")
    ids = ["long1", "long2"]
    enqueue_jobs(cli, home, [{"id": job_id, "command": "sleep 30"} for job_id in ids])
    engine = engines("-c", "2")
    wait_for(lambda: all_in_state(backend, ids, "processing", with_pid=True), timeout=15)
    groups = [get_job(backend, job_id).pid for job_id in ids]

    engine.send(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: stopping" in engine.log())
    assert engine.alive()  # still waiting for its jobs
    sent = time.monotonic()
    assert engine.stop(signal.SIGTERM, timeout=20) == 0
    assert time.monotonic() - sent < 8  # far from the jobs' 30 s

    assert [pgid for pgid in groups if group_members(pgid)] == []
    for job_id in ids:
        result = show(cli, job_id)
        assert (result["state"], result["attempts"], result["runs"]) == ("pending", 0, 1)
        assert result["lease_owner"] is None and result["pid"] is None
        [attempt] = result["history"]
        assert attempt["error"] == "interrupted: the engine was stopped"
        assert attempt["error_kind"] == ErrorKind.INTERRUPTED
        assert attempt["finished_at"] is not None
    assert "killing 2 running jobs" in engine.log()


# --- 9. one engine per queue --------------------------------------------------------------------


def test_a_second_engine_on_the_same_queue_is_refused(
    home: Path, cli: Any, engines: StartEngine
) -> None:
    first = engines()
    wait_for(first.started)

    result = cli("worker", "start", "--until-empty")
    message = assert_one_line_error(result, 2)
    assert f"already running (pid {first.pid})" in message
    assert first.alive()

    assert first.stop() == 0
    cli("worker", "start", "--until-empty", check=True)  # the lock went with the first engine


# --- 10. cwd and environment --------------------------------------------------------------------


def test_missing_cwd_fails_clearly_and_the_job_environment_is_set(
    home: Path, cli: Any, engines: StartEngine
) -> None:
    configure(cli, backoff_base="1", backoff_jitter="0")
    gone = home / "gone"
    gone.mkdir()
    work = home / "work"
    work.mkdir()
    command = (
        'printf "%s|%s|%s|%s|%s\\n" "$QUEUECTL_JOB_ID" "$QUEUECTL_ATTEMPT" "$GREETING" '
        '"$FROM_ENGINE" "$SHARED"; pwd -P; [ "$QUEUECTL_ATTEMPT" -ge 2 ]'
    )
    enqueue_jobs(
        cli,
        home,
        [
            {"id": "homeless", "command": "true", "cwd": str(gone), "max_retries": 3},
            {
                "id": "envjob",
                "command": command,
                "cwd": str(work),
                "max_retries": 1,
                "env": {"GREETING": "hello world", "SHARED": "from the job"},
            },
        ],
    )
    gone.rmdir()

    engine = engines("--until-empty", env={"FROM_ENGINE": "inherited", "SHARED": "from the engine"})
    assert engine.wait(timeout=30) == 0

    homeless = show(cli, "homeless")  # a permanent error: dead at once, its retries unused
    assert (homeless["state"], homeless["attempts"], len(homeless["history"])) == ("dead", 1, 1)
    assert homeless["last_error"] == (
        f"working directory '{gone}' does not exist (a permanent error: not retried)"
    )
    assert homeless["history"][0]["error"] == homeless["last_error"]
    assert homeless["error_kind"] == homeless["history"][0]["error_kind"] == ErrorKind.SPAWN
    assert f"homeless dead after 1 attempt: working directory '{gone}'" in engine.log()

    result = show(cli, "envjob")
    assert (result["state"], result["attempts"]) == ("completed", 2)
    real_work = os.path.realpath(work)
    assert [a["stdout"] for a in result["history"]] == [
        f"envjob|{n}|hello world|inherited|from the job\n{real_work}\n" for n in (1, 2)
    ]
    assert [a["exit_code"] for a in result["history"]] == [1, 0]


# --- 11. noticing new jobs ----------------------------------------------------------------------


def test_idle_engine_notices_jobs_enqueued_by_other_processes(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    engine = engines()
    wait_for(engine.started)
    time.sleep(1.0)  # idle for a while: what is tested is that idling does not make it deaf

    # without the CLI's wake-up call over the control socket: only the poll can see this one
    seed(backend, pending=["polled"])
    wait_for(lambda: get_job(backend, "polled").state == "completed", timeout=10)
    cli("enqueue", "--id", "woken", "--", "true", check=True)
    wait_for(lambda: get_job(backend, "woken").state == "completed", timeout=10)

    for job_id in ("polled", "woken"):
        job = get_job(backend, job_id)
        [attempt] = job_attempts(backend, job_id)
        lag = attempt.started_at - job.created_at
        assert 0 <= lag < 1.0, f"{job_id} started {lag:.3f}s after it was enqueued"
        assert show(cli, job_id)["history"][0]["exit_code"] == 0
    assert engine.stop() == 0


# --- 12. --until-empty and --until-idle ---------------------------------------------------------


def test_until_empty_waits_for_jobs_scheduled_for_later(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "now", "--", "true", check=True)
    cli("enqueue", "--id", "later", "--delay", "2s", "--", "true", check=True)
    started = time.monotonic()
    engine = engines("--until-empty")
    assert engine.wait(timeout=30) == 0
    assert time.monotonic() - started >= 1.5  # it waited for `later` to be due, and ran it
    assert {job_id: get_job(backend, job_id).state for job_id in ("now", "later")} == {
        "now": "completed",
        "later": "completed",
    }
    assert "queue is empty; engine exiting" in engine.log()


def test_until_idle_leaves_what_is_not_due_yet(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "now", "--", "sleep 0.5", check=True)
    cli("enqueue", "--id", "later", "--delay", "1h", "--", "true", check=True)
    engine = engines("--until-idle")
    assert engine.wait(timeout=30) == 0
    assert get_job(backend, "now").state == "completed"  # what was due ran to its end
    later = get_job(backend, "later")
    assert (later.state, later.runs) == ("pending", 0)
    assert "nothing is due now; engine exiting" in engine.log()


def test_until_flags_are_described_and_exclusive(cli: Any) -> None:
    helptext = cli("worker", "start", "--help", check=True).stdout
    assert "--until-empty" in helptext and "--until-idle" in helptext
    assert "scheduled for later" in helptext
    message = assert_one_line_error(cli("worker", "start", "--until-empty", "--until-idle"), 2)
    assert "--until-empty" in message and "--until-idle" in message


def test_a_paused_queue_holds_until_empty_and_ends_until_idle(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    cli("pause", check=True)  # no engine runs: the pause is kept in the queue
    cli("enqueue", "--id", "held", "--", "true", check=True)
    idle = engines("--until-idle")
    assert idle.wait(timeout=30) == 0
    assert "queue is paused; engine exiting" in idle.log()
    assert "the queue is paused" in idle.log()
    assert get_job(backend, "held").runs == 0

    empty = engines("--until-empty")
    wait_for(empty.started)
    time.sleep(1.0)  # long enough for several claims: none may take the job
    assert empty.alive() and get_job(backend, "held").runs == 0
    cli("resume", check=True)
    assert empty.wait(timeout=30) == 0
    assert get_job(backend, "held").state == "completed"


# --- 13. permanent errors -------------------------------------------------------------------------


def test_a_cwd_that_is_a_file_is_permanent_and_command_not_found_is_retried(
    home: Path, cli: Any, engines: StartEngine
) -> None:
    configure(cli, backoff_base="1", backoff_jitter="0")
    afile = home / "a-file"
    afile.write_text("")
    enqueue_jobs(
        cli,
        home,
        [
            {"id": "filecwd", "command": "true", "cwd": str(afile), "max_retries": 3},
            {"id": "notfound", "command": "no-such-command-qctl", "max_retries": 1},
        ],
    )
    engine = engines("--until-empty")
    assert engine.wait(timeout=30) == 0
    filecwd = show(cli, "filecwd")
    assert (filecwd["state"], filecwd["attempts"]) == ("dead", 1)
    assert "is not a directory (a permanent error: not retried)" in filecwd["last_error"]
    notfound = show(cli, "notfound")  # the command may be installed before its retry
    assert (notfound["state"], notfound["attempts"], notfound["exit_code"]) == ("dead", 2, 127)
    assert [a["error_kind"] for a in notfound["history"]] == [ErrorKind.EXIT] * 2
