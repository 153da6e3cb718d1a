"""The real CLI managing jobs: restart, edit, delete, purge, wait, cancel (many) and kill, with
every error path; engines are real processes where a job has to run.

Queues are filled in-process through the Store (much faster than a CLI call per job) and looked
at through the Store or `--json`; "changed nothing" is a queue_snapshot taken before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import threading
import time
from pathlib import Path

from engine_process import StartEngine, show, timestamp
from helpers import (
    Backend,
    Cli,
    ManualClock,
    assert_one_line_error,
    configure,
    failure,
    finish,
    get_job,
    in_store,
    in_store_with,
    job_attempts,
    job_state,
    queue_snapshot,
    queuectl_argv,
    run_cli,
    spec,
    wait_for,
)

from queuectl.models import Outcome
from queuectl.states import JobState
from queuectl.store import Store

DAY = 86400.0


# --- filling a queue ----------------------------------------------------------------------------


def one_of_each(
    backend: Backend, clock: ManualClock | None = None, *, running: bool = True
) -> None:
    """p pending (due in an hour), r processing (under an engine that is not running; left out
    with running=False), c completed, f failed waiting 100 days for its retry, d dead, x
    canceled; c, f and d have one attempt each. `clock` sets when (default: now)."""

    async def fill(store: Store) -> None:
        ids = "cdfr" if running else "cdf"
        await store.enqueue([spec(id=i, max_retries=0 if i == "d" else 3) for i in ids])
        for job_id, outcome in (("c", Outcome(exit_code=0)), ("d", failure()), ("f", failure())):
            [job] = await store.claim("gone-engine", 1, 30.0)
            assert job.id == job_id
            assert await finish(store, job, outcome, retry_delay=100 * DAY)
        if running:
            [job] = await store.claim("gone-engine", 1, 3600.0)
            assert job.id == "r"
        await store.enqueue([spec(id="x"), spec(id="p", run_at=time.time() + 3600)])
        await store.cancel("x")

    if clock is None:
        in_store(backend, fill)
    else:
        in_store_with(backend, fill, clock=clock)


def states(backend: Backend) -> dict[str, str]:
    async def read(store: Store) -> dict[str, str]:
        return {job.id: job.state.value for job in await store.list_jobs(None, 1_000_000)}

    return in_store(backend, read)


def refused(cli: Cli, backend: Backend, *args: str, code: int = 2) -> str:
    """Run a command that must fail with one line and change nothing; the message."""
    before = queue_snapshot(backend)
    message = assert_one_line_error(cli(*args), code=code)
    assert queue_snapshot(backend) == before, f"`{' '.join(args)}` changed the queue"
    return message


def ok(cli: Cli, *args: str) -> str:
    return str(cli(*args, check=True).stdout)


def error_of(cli: Cli, *args: str) -> str:
    return assert_one_line_error(cli(*args), code=2)


# --- restart ------------------------------------------------------------------------------------


def test_restart_finished_and_failed_jobs(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    history = {job_id: show(cli, job_id)["history"] for job_id in "cdf"}
    assert ok(cli, "restart", "c", "d", "x", "f", "c") == "restarted 4 jobs\n"
    for job_id in "cdxf":
        info = show(cli, job_id)
        assert (info["state"], info["attempts"]) == ("pending", 0), info
        assert info["last_error"] is info["error_kind"] is info["exit_code"] is None
        assert timestamp(info["next_run_at"]) <= time.time()  # due now, not at its retry
        assert info["history"] == history.get(job_id, [])  # kept
    assert states(backend)["p"] == "pending" and states(backend)["r"] == "processing"


def test_restart_by_state(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert ok(cli, "restart", "--state", "dead") == "restarted 1 job\n"
    assert ok(cli, "restart", "--state", "DEAD") == "restarted 0 jobs\n"
    assert states(backend) == {
        "p": "pending",
        "r": "processing",
        "c": "completed",
        "f": "failed",
        "d": "pending",
        "x": "canceled",
    }


def test_restart_refusals_change_nothing(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert "job 'p' is pending" in refused(cli, backend, "restart", "c", "p")
    message = refused(cli, backend, "restart", "d", "r")
    assert "job 'r' is running" in message and "queuectl cancel r" in message
    assert "'nope' not found" in refused(cli, backend, "restart", "c", "nope")
    assert "--state" in refused(cli, backend, "restart")
    assert "not both" in refused(cli, backend, "restart", "c", "--state", "dead")
    assert "pending jobs cannot be restarted" in refused(
        cli, backend, "restart", "--state", "pending"
    )
    assert "unknown state 'bogus'" in refused(cli, backend, "restart", "--state", "bogus")


def test_a_restarted_job_runs_again(
    cli: Cli, backend: Backend, engines: StartEngine, home: Path
) -> None:
    runs = home / "runs"
    cli("enqueue", "--id", "j", "--", f"echo $QUEUECTL_ATTEMPT >> {runs}", check=True)
    assert engines("--until-empty").wait() == 0
    assert ok(cli, "restart", "j") == "restarted 1 job\n"
    assert engines("--until-empty").wait() == 0
    assert runs.read_text() == "1\n1\n"  # attempts were reset: the rerun is attempt 1 again
    info = show(cli, "j")
    assert (info["state"], info["attempts"], info["runs"]) == ("completed", 1, 2)
    assert [attempt["run"] for attempt in info["history"]] == [1, 2]


# --- edit ---------------------------------------------------------------------------------------


def test_edit_a_waiting_job(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert ok(
        cli,
        "edit",
        "p",
        "--command",
        "echo edited",
        "--priority",
        "7",
        "--max-retries",
        "5",
        "--timeout",
        "90s",
        "--run-at",
        "2030-01-02T03:04:05Z",
    ) == ("edited p\n")
    info = show(cli, "p")
    assert (info["command"], info["priority"], info["max_retries"]) == ("echo edited", 7, 5)
    assert info["timeout"] == 90.0 and info["state"] == "pending"
    assert info["run_at"] == info["next_run_at"] == "2030-01-02T03:04:05.000+00:00"

    before = time.time()
    ok(cli, "edit", "p", "--delay", "1h", "--timeout", "none")
    info = show(cli, "p")
    assert info["timeout"] is None and info["command"] == "echo edited"
    assert before + 3600 - 1 <= timestamp(info["next_run_at"]) <= time.time() + 3600

    ok(cli, "edit", "c", "--command", "echo next time")  # a finished job may be edited too
    assert show(cli, "c")["command"] == "echo next time"
    assert show(cli, "c")["state"] == "completed"


def test_edit_validates_as_enqueue_does(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    for option, value in (
        ("--timeout", "0"),
        ("--timeout", "soon"),
        ("--run-at", "2030-01-01T00:00:00"),
        ("--delay", "-5m"),
        ("--max-retries", "-1"),
    ):
        expected = error_of(cli, "enqueue", option, value, "--", "true")
        assert refused(cli, backend, "edit", "p", option, value) == expected
    assert "'command' is empty" in refused(cli, backend, "edit", "p", "--command", " ")
    assert "not both" in refused(
        cli, backend, "edit", "p", "--run-at", "2030-01-01Z", "--delay", "1m"
    )
    assert "nothing to change" in refused(cli, backend, "edit", "p")
    refused(cli, backend, "edit", "p", "--priority", "high")  # click's own int check


def test_edit_refuses_a_running_or_unknown_job(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    message = refused(cli, backend, "edit", "r", "--priority", "1")
    assert "job 'r' is running" in message
    assert "queuectl cancel r" in message and "queuectl wait r" in message
    assert "'nope' not found" in refused(cli, backend, "edit", "nope", "--priority", "1")


# --- delete -------------------------------------------------------------------------------------


def test_delete_frees_the_id(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert ok(cli, "delete", "c", "d", "p") == "deleted 3 jobs\n"
    assert set(states(backend)) == {"r", "f", "x"}
    assert job_attempts(backend, "d") == []
    assert "'c' not found" in error_of(cli, "show", "c")
    assert ok(cli, "enqueue", "--id", "c", "--", "echo again") == "c\n"
    info = show(cli, "c")
    assert (info["state"], info["runs"], info["history"]) == ("pending", 0, [])


def test_delete_refusals_change_nothing(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert "job 'r' is running" in refused(cli, backend, "delete", "c", "r")
    assert "'nope' not found" in refused(cli, backend, "delete", "c", "nope")
    assert "give the ids" in refused(cli, backend, "delete")


# --- purge --------------------------------------------------------------------------------------


def test_purge_finished_jobs(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    before = queue_snapshot(backend)
    assert ok(cli, "purge", "--dry-run") == "would purge 3 jobs (dry run: nothing deleted)\n"
    assert json.loads(ok(cli, "purge", "--dry-run", "--json")) == {"count": 3, "dry_run": True}
    assert queue_snapshot(backend) == before
    assert ok(cli, "purge") == "purged 3 jobs\n"
    assert set(states(backend)) == {"p", "r", "f"}
    assert json.loads(ok(cli, "purge", "--json")) == {"count": 0, "dry_run": False}


def test_purge_by_state_and_age(cli: Cli, backend: Backend) -> None:
    one_of_each(backend, clock=ManualClock(time.time() - 10 * DAY))  # ten days old

    async def recent(store: Store) -> None:
        await store.enqueue([spec(id="new-c"), spec(id="new-p", run_at=time.time() + 60)])
        [job] = await store.claim("gone-engine", 1, 30.0)
        assert await finish(store, job, Outcome(exit_code=0))

    in_store(backend, recent)
    assert ok(cli, "purge", "--older-than", "30d", "--dry-run").startswith("would purge 0 jobs")
    assert ok(cli, "purge", "--older-than", "7d", "--state", "dead") == "purged 1 job\n"
    assert ok(cli, "purge", "--older-than", "7d") == "purged 2 jobs\n"  # c and x
    assert set(states(backend)) == {"p", "r", "f", "new-c", "new-p"}
    assert ok(cli, "purge", "--older-than", "7d", "--state", "pending", "--state", "failed") == (
        "purged 2 jobs\n"
    )
    assert set(states(backend)) == {"r", "new-c", "new-p"}
    assert ok(cli, "purge", "--state", "completed") == "purged 1 job\n"


def test_purge_refusals_change_nothing(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert "processing jobs cannot be purged" in refused(
        cli, backend, "purge", "--state", "completed", "--state", "processing"
    )
    assert "unknown state 'old'" in refused(cli, backend, "purge", "--state", "old")
    assert "duration" in refused(cli, backend, "purge", "--older-than", "a while")


def test_a_running_engine_purges_by_retention(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    one_of_each(backend, clock=ManualClock(time.time() - 10 * DAY), running=False)
    in_store(backend, lambda store: store.delete(["f"]))  # its retry is long due: it would run
    configure(cli, retention="3s")
    engine = engines()
    wait_for(engine.started)
    wait_for(lambda: set(states(backend)) == {"p"}, timeout=10)  # c, d and x were old
    cli("enqueue", "--id", "fresh", "--", "true", check=True)
    wait_for(lambda: job_state(backend, "fresh") == "completed", timeout=10)
    finished = time.time()
    wait_for(lambda: job_state(backend, "fresh") is None, timeout=15)
    assert time.time() - finished >= 2.0  # not before it was 3 s old (the clock is per host)
    assert set(states(backend)) == {"p"}  # a waiting job is never purged by retention
    assert "purged" in engine.log()


def test_a_running_engine_drops_old_output(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    configure(cli, output_retention="2s")
    engine = engines()
    wait_for(engine.started)
    cli("enqueue", "--id", "talk", "--", "echo hello; echo oops >&2", check=True)
    wait_for(lambda: job_state(backend, "talk") == "completed", timeout=10)
    wait_for(lambda: job_attempts(backend, "talk")[0].stdout == b"", timeout=15)
    [attempt] = job_attempts(backend, "talk")
    assert (attempt.stdout, attempt.stderr, attempt.exit_code) == (b"", b"", 0)
    assert attempt.stdout_truncated and attempt.stderr_truncated
    assert get_job(backend, "talk").state.value == "completed"  # the job and attempt stay


# --- wait ---------------------------------------------------------------------------------------


def test_wait_on_a_missing_queue_creates_nothing(home: Path) -> None:
    typo = home / "typo"
    message = assert_one_line_error(run_cli(typo, "wait", "j"), code=1)
    assert "no queue" in message and str(typo) in message
    assert not typo.exists()


def test_wait_prints_each_outcome_and_exits_by_them(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "ok", "--", "sleep 0.3", check=True)
    cli("enqueue", "--id", "bad", "--max-retries", "0", "--", "exit 3", check=True)
    engine = engines()
    wait_for(engine.started)
    result = cli("wait", "ok")
    assert (result.returncode, result.stdout) == (0, "ok completed\n"), result.stderr
    result = cli("wait", "ok", "bad")
    assert result.returncode == 1, result.stderr
    assert sorted(result.stdout.splitlines()) == ["bad dead: exit code 3", "ok completed"]
    result = cli("wait", "bad", "ok", "--json")
    assert result.returncode == 1
    outcomes = {entry["id"]: entry for entry in json.loads(result.stdout)}
    assert outcomes["bad"]["state"] == "dead" and outcomes["bad"]["exit_code"] == 3
    assert outcomes["bad"]["error_kind"] == "exit"
    assert outcomes["ok"]["state"] == "completed" and outcomes["ok"]["exit_code"] == 0


def test_wait_blocks_until_the_job_finishes(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "later", "--", "true", check=True)
    waiter = subprocess.Popen(
        queuectl_argv(backend.home, *backend.cli_args(), "wait", "later"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert waiter.poll() is None, "wait returned before the job ran"
        started = time.monotonic()
        engines()
        out, err = waiter.communicate(timeout=30)
        assert (waiter.returncode, out) == (0, "later completed\n"), err
        assert time.monotonic() - started < 10
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()


def test_wait_for_a_canceled_job_exits_1(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    result = cli("wait", "x", "c")
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == ["x canceled: canceled by user", "c completed"]


def test_wait_times_out_with_124(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    started = time.monotonic()
    result = cli("wait", "c", "p", "f", "--timeout", "0.5")
    assert time.monotonic() - started >= 0.5
    message = assert_one_line_error(result, code=124)
    assert "timed out after 0.5s" in message and "p (pending)" in message
    assert "f (failed)" in message
    assert result.stdout == "c completed\n"  # what did finish is told


def test_wait_refusals(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert "'nope' not found" in refused(cli, backend, "wait", "c", "nope")
    assert "give the ids" in refused(cli, backend, "wait")
    assert "duration" in refused(cli, backend, "wait", "c", "--timeout", "forever")


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_several_and_by_state(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert ok(cli, "cancel", "p", "f") == "canceled p\ncanceled f\n"
    info = show(cli, "f")
    assert (info["state"], info["error_kind"]) == ("canceled", "canceled")
    in_store(backend, lambda store: store.enqueue([spec(id="q1"), spec(id="q2")]))
    assert ok(cli, "cancel", "--state", "pending") == "canceled 2 jobs\n"
    assert states(backend)["q1"] == states(backend)["q2"] == "canceled"


def test_cancel_refusals_change_nothing(cli: Cli, backend: Backend) -> None:
    one_of_each(backend)
    assert "job 'c' is completed" in refused(cli, backend, "cancel", "p", "c")
    assert "'nope' not found" in refused(cli, backend, "cancel", "p", "nope")
    assert "--state" in refused(cli, backend, "cancel")
    assert "not both" in refused(cli, backend, "cancel", "p", "--state", "pending")
    assert "dead jobs cannot be canceled" in refused(cli, backend, "cancel", "--state", "dead")
    # r is processing, but its engine is gone: nothing is canceled, p included
    message = refused(cli, backend, "cancel", "p", "r", code=1)
    assert "no engine is running" in message


def test_cancel_running_and_waiting_jobs_at_once(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    configure(cli, kill_grace="1")
    engine = engines()
    wait_for(engine.started)
    for job_id in ("run1", "run2"):
        cli("enqueue", "--id", job_id, "--", "sleep 300", check=True)
    cli("enqueue", "--id", "later", "--delay", "1h", "--", "true", check=True)
    wait_for(lambda: _running(backend) == {"run1", "run2"}, timeout=10)
    assert ok(cli, "cancel", "run1", "later") == "canceled run1\ncanceled later\n"
    assert show(cli, "run1")["history"][-1]["error"] == "canceled by user"
    assert states(backend)["run2"] == "processing"
    assert ok(cli, "cancel", "--state", "processing") == "canceled 1 job\n"
    assert states(backend) == {"run1": "canceled", "run2": "canceled", "later": "canceled"}


def _running(backend: Backend) -> set[str]:
    """Jobs processing with their process started."""

    async def read(store: Store) -> set[str]:
        return {job.id for job in await store.list_jobs(JobState.PROCESSING, 1000) if job.pid}

    return in_store(backend, read)


# --- kill ---------------------------------------------------------------------------------------


def test_kill_delivers_the_signal(
    cli: Cli, backend: Backend, engines: StartEngine, home: Path
) -> None:
    ready, got = home / "ready", home / "got"
    command = f"trap 'echo USR1 > {got}; exit 3' USR1; echo > {ready}; while :; do sleep 0.1; done"
    cli("enqueue", "--id", "trapper", "--max-retries", "0", "--", command, check=True)
    engine = engines()
    wait_for(engine.started)
    wait_for(ready.exists, timeout=10)
    wait_for(lambda: "trapper" in _running(backend), timeout=10)
    pgid = get_job(backend, "trapper").pid
    assert ok(cli, "kill", "trapper", "--signal", "usr1") == (
        f"sent SIGUSR1 to job trapper (process group {pgid})\n"
    )
    wait_for(lambda: job_state(backend, "trapper") == "dead", timeout=10)
    assert got.read_text() == "USR1\n"
    info = show(cli, "trapper")
    assert (info["exit_code"], info["error_kind"]) == (3, "exit")


def test_kill_sends_term_by_default(cli: Cli, backend: Backend, engines: StartEngine) -> None:
    cli("enqueue", "--id", "sleeper", "--max-retries", "0", "--", "sleep 300", check=True)
    engine = engines()
    wait_for(engine.started)
    wait_for(lambda: "sleeper" in _running(backend), timeout=10)
    assert ok(cli, "kill", "sleeper").startswith("sent SIGTERM to job sleeper")
    wait_for(lambda: job_state(backend, "sleeper") == "dead", timeout=10)
    info = show(cli, "sleeper")
    assert "SIGTERM" in info["last_error"] and info["error_kind"] == "exit"


def test_kill_refusals(cli: Cli, backend: Backend, home: Path) -> None:
    one_of_each(backend)
    assert "job 'p' is pending, not running" in refused(cli, backend, "kill", "p")
    assert "job 'c' is completed, not running" in refused(cli, backend, "kill", "c", "-s", "9")
    assert "'nope' not found" in refused(cli, backend, "kill", "nope")
    for bad in ("FOO", "0", "99999", "SIG"):
        assert "unknown signal" in refused(cli, backend, "kill", "r", "--signal", bad)
    # r is processing under an engine that is gone
    assert "no engine is running" in refused(cli, backend, "kill", "r", code=1)
    typo = home / "typo"
    assert "no queue" in assert_one_line_error(run_cli(typo, "kill", "r"), code=1)
    assert not typo.exists()


def test_a_long_purge_shows_progress_on_a_terminal(cli: Cli, backend: Backend) -> None:
    count = 20_000  # above cli.manage.PROGRESS_FROM

    async def fill(store: Store) -> None:
        await store.enqueue([spec(id=f"j{i}") for i in range(count)])
        assert await store.cancel_in_state(JobState.PENDING) == count

    in_store(backend, fill)
    piped = cli("purge", "--dry-run", check=True)  # stderr is a pipe here: no bar
    assert (piped.stdout, piped.stderr) == (
        f"would purge {count} jobs (dry run: nothing deleted)\n",
        "",
    )
    master, terminal = pty.openpty()
    seen = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            queuectl_argv(backend.home, *backend.cli_args(), "purge"),
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "100"},
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(master)
    assert (result.returncode, result.stdout) == (0, f"purged {count} jobs\n")
    assert b"purging" in seen, bytes(seen[:500])
    assert (in_store(backend, lambda store: store.counts()))[JobState.CANCELED] == 0
