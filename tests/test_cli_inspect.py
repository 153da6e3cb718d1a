"""`status`, `show` and `logs` through the real CLI (issue 10): the output in the order the job
wrote it, `status --json`'s one schema, and read-only commands that never create a queue.

Attempts with a known output are recorded in-process through the Store, as an engine records
them (much faster than running jobs, and exact); the tests that need a job to run start real
engines (`engines`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from engine_process import StartEngine
from helpers import (
    Backend,
    Cli,
    assert_one_line_error,
    configure,
    finish,
    get_job,
    in_store,
    queuectl_argv,
    run_cli,
    spec,
    wait_for,
)

from queuectl.models import Chunk, Outcome
from queuectl.states import ErrorKind
from queuectl.store import Store

MIXED = (
    Chunk("stdout", b"one\n"),
    Chunk("stderr", b"e1\n"),
    Chunk("stdout", b"two"),  # no newline: the label starts a line of its own
    Chunk("stderr", b"e2\n"),
    Chunk("stdout", b"three\n"),
)
MARKER = "queuectl: [... earlier {} truncated (config output-limit) ...]\n"
STATUS_KEYS = {"database", "paused", "queue", "counts", "engine", "engines"}
ENGINE_KEYS = {
    "running",
    "pid",
    "id",
    "started_at",
    "uptime",
    "concurrency",
    "stopping",
    "completed",
    "failed",
    "fenced",
    "queues",
    "running_jobs",
    "error",
}
RUNNING_JOB_KEYS = {"id", "command", "attempt", "pid", "started_at", "elapsed"}


def record(
    backend: Backend,
    job_id: str,
    chunks: Sequence[Chunk],
    *,
    exit_code: int = 0,
    stdout_truncated: bool = False,
    stderr_truncated: bool = False,
) -> None:
    """A job whose one attempt wrote `chunks` and exited `exit_code` (no retries)."""

    async def run(store: Store) -> None:
        await store.enqueue([spec("true", id=job_id, max_retries=0)])
        [job] = await store.claim("test-engine", 1, 30.0)
        failed = exit_code != 0
        outcome = Outcome(
            ErrorKind.EXIT if failed else None,
            exit_code=exit_code,
            error=f"exit code {exit_code}" if failed else None,
            stdout=b"".join(data for stream, data in chunks if stream == "stdout"),
            stderr=b"".join(data for stream, data in chunks if stream == "stderr"),
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            output=tuple(chunks),
        )
        assert await finish(store, job, outcome)

    in_store(backend, run)


def out(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


# --- logs: the order, labels, one stream, the last lines ------------------------------------


def test_logs_keeps_the_order_and_labels_each_switch(cli: Cli, backend: Backend) -> None:
    record(backend, "mixed", MIXED)
    result = cli("logs", "mixed")
    assert out(result) == (
        "one\n==> stderr <==\ne1\n==> stdout <==\ntwo\n==> stderr <==\ne2\n==> stdout <==\nthree\n"
    )
    assert result.stderr == ""
    # the stored data has no label in it: each stream alone is exactly what the job wrote
    assert out(cli("logs", "mixed", "--stdout")) == "one\ntwothree\n"
    assert out(cli("logs", "mixed", "--stderr")) == "e1\ne2\n"
    [attempt] = json.loads(out(cli("show", "mixed", "--json")))["history"]
    assert (attempt["stdout"], attempt["stderr"]) == ("one\ntwothree\n", "e1\ne2\n")


def test_logs_of_one_stream_only_has_no_labels(cli: Cli, backend: Backend) -> None:
    record(backend, "out-only", [Chunk("stdout", b"a\n"), Chunk("stdout", b"b")])
    record(backend, "err-only", [Chunk("stderr", b"oops\n")], exit_code=2)
    record(backend, "silent", [])
    assert out(cli("logs", "out-only")) == "a\nb"  # exactly the bytes: no header for stdout
    assert out(cli("logs", "err-only")) == "==> stderr <==\noops\n"
    assert out(cli("logs", "err-only", "--stderr")) == "oops\n"
    assert out(cli("logs", "err-only", "--stdout")) == ""
    assert out(cli("logs", "silent")) == ""


def test_logs_tail_counts_lines_across_both_streams(cli: Cli, backend: Backend) -> None:
    record(backend, "mixed", MIXED)
    assert out(cli("logs", "mixed", "--tail", "2")) == "==> stderr <==\ne2\n==> stdout <==\nthree\n"
    assert out(cli("logs", "mixed", "-n", "1")) == "three\n"
    assert out(cli("logs", "mixed", "--tail", "3")) == (
        "two\n==> stderr <==\ne2\n==> stdout <==\nthree\n"
    )
    assert out(cli("logs", "mixed", "--tail", "1", "--stdout")) == "twothree\n"
    assert out(cli("logs", "mixed", "--tail", "1", "--stderr")) == "e2\n"
    assert out(cli("logs", "mixed", "--tail", "0")) == ""
    assert out(cli("logs", "mixed", "--tail", "99")) == out(cli("logs", "mixed"))


def test_the_truncation_marker_is_printed_by_logs_not_stored(cli: Cli, backend: Backend) -> None:
    kept = [Chunk("stdout", b"x" * 100), Chunk("stderr", b"late\n"), Chunk("stdout", b"END\n")]
    record(backend, "cut", kept, stdout_truncated=True)
    result = cli("logs", "cut")
    assert out(result) == "x" * 100 + "\n==> stderr <==\nlate\n==> stdout <==\nEND\n"
    assert result.stderr == MARKER.format("stdout")
    only = cli("logs", "cut", "--stdout")
    assert (out(only), only.stderr) == ("x" * 100 + "END\n", MARKER.format("stdout"))
    assert cli("logs", "cut", "--stderr").stderr == ""  # stderr lost nothing
    assert cli("logs", "cut", "--tail", "1").stderr == ""  # the loss is not in the last line
    [attempt] = json.loads(out(cli("show", "cut", "--json")))["history"]
    assert attempt["stdout"] == "x" * 100 + "END\n" and attempt["stdout_truncated"] is True


def test_logs_picks_an_attempt_and_refuses_bad_combinations(cli: Cli, backend: Backend) -> None:
    record(backend, "mixed", MIXED)
    assert out(cli("logs", "mixed", "--attempt", "1", "--stdout")) == "one\ntwothree\n"
    for args, fragment in (
        (["--attempt", "2"], "has no attempt 2; it has run 1 time"),
        (["--stdout", "--stderr"], "exclude each other"),
        (["-f", "--attempt", "1"], "drop --attempt"),
        (["--tail", "-1"], "--tail"),
    ):
        message = assert_one_line_error(cli("logs", "mixed", *args), 2)
        assert fragment in message, (args, message)


def test_logs_follow_of_a_finished_job_exits_like_wait(cli: Cli, backend: Backend) -> None:
    record(backend, "good", [Chunk("stdout", b"fine\n")])
    record(backend, "bad", [Chunk("stdout", b"partial\n"), Chunk("stderr", b"boom\n")], exit_code=3)
    done = cli("logs", "-f", "good")
    assert (out(done, 0), done.stderr) == ("fine\n", "")
    dead = cli("logs", "-f", "bad")
    assert out(dead, 1) == "partial\n==> stderr <==\nboom\n"
    assert dead.stderr == "queuectl: job bad is dead: exit code 3\n"
    assert out(cli("logs", "bad"), 0) == "partial\n==> stderr <==\nboom\n"  # only -f says how


def test_logs_follow_follows_every_attempt_until_the_job_is_finished(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    configure(cli, backoff_base="1", backoff_jitter="0")
    command = 'echo "try $QUEUECTL_ATTEMPT"; sleep 0.3; echo "no luck" >&2; exit 4'
    cli("enqueue", "--id", "flaky", "--max-retries", "1", "--", command, check=True)
    follow = subprocess.Popen(
        queuectl_argv(backend.home, *backend.cli_args(), "logs", "-f", "flaky"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        engines()  # after the follower: it waits for the first run
        stdout, stderr = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert follow.returncode == 1, (stdout, stderr)
    assert stdout == (
        "try 1\n==> stderr <==\nno luck\n==> stdout <==\ntry 2\n==> stderr <==\nno luck\n"
    )
    notes = stderr.splitlines()
    assert len(notes) == 2, stderr
    assert notes[0].startswith("queuectl: attempt 1 of flaky ended: exit code 4")
    assert "runs again" in notes[0]
    assert notes[1] == "queuectl: job flaky is dead: exit code 4 (stderr: no luck)"
    assert get_job(backend, "flaky").state == "dead"


def test_logs_follow_live_keeps_the_order_and_tail_cuts_what_came_before(
    home: Path, cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    go, written = home / "go", home / "written"
    command = (
        f"for i in 1 2 3 4 5; do echo $i; done; sleep 0.1; echo err >&2; touch {written}; "
        f"while [ ! -e {go} ]; do sleep 0.05; done; echo after; sleep 0.3; echo late >&2"
    )
    engine = engines()
    wait_for(engine.started)
    cli("enqueue", "--id", "live", "--", command, check=True)
    wait_for(written.exists, timeout=15)
    time.sleep(0.3)  # for the engine to read what the job wrote before `written`
    follow = subprocess.Popen(
        queuectl_argv(backend.home, *backend.cli_args(), "logs", "-f", "--tail", "2", "live"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # read raw: nothing may sit in a buffer that communicate() does not see
    )
    try:
        assert follow.stdout is not None
        first = b""
        while not first.endswith(b"err\n"):  # the replay, cut to its last two lines
            chunk = os.read(follow.stdout.fileno(), 65536)
            assert chunk, (first, follow.communicate())
            first += chunk
        assert first == b"5\n==> stderr <==\nerr\n"
        assert get_job(backend, "live").state == "processing"
        go.touch()
        rest, errors = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    stderr = errors.decode()
    assert (follow.returncode, stderr) == (0, "")
    assert rest == b"==> stdout <==\nafter\n==> stderr <==\nlate\n"
    # what was stored is the whole output, in the same order
    assert out(cli("logs", "live")) == (
        "1\n2\n3\n4\n5\n==> stderr <==\nerr\n==> stdout <==\nafter\n==> stderr <==\nlate\n"
    )


# --- status --json: one schema ----------------------------------------------------------------


def _check_iso_utc(value: str) -> None:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0, value


def test_status_json_has_one_schema_without_an_engine(cli: Cli, backend: Backend) -> None:
    record(backend, "done", [])
    status = json.loads(out(cli("status", "--json")))
    assert set(status) == STATUS_KEYS
    assert set(status["engine"]) == ENGINE_KEYS
    assert status["engine"] == {
        **dict.fromkeys(ENGINE_KEYS),
        "running": False,
        "running_jobs": [],
    }
    assert status["paused"] is False
    assert status["engines"] == []  # none registered (and none ever on SQLite)
    assert status["counts"]["completed"] == 1
    assert "ok" not in json.dumps(status) and '"end"' not in json.dumps(status)


def test_status_json_has_the_same_keys_with_a_running_engine(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    engine = engines("-c", "1")
    wait_for(engine.started)
    cli("enqueue", "--id", "slow", "--", "sleep 30", check=True)
    wait_for(lambda: get_job(backend, "slow").pid, timeout=15)
    status = json.loads(out(cli("status", "--json")))
    assert set(status) == STATUS_KEYS
    eng = status["engine"]
    assert set(eng) == ENGINE_KEYS
    assert (eng["running"], eng["pid"], eng["concurrency"], eng["stopping"]) == (
        True,
        engine.pid,
        1,
        False,
    )
    assert eng["id"] == get_job(backend, "slow").lease_owner
    assert eng["error"] is None
    if backend.name == "postgres":  # registered in the database, seen from any host
        [registered] = status["engines"]
        assert (registered["id"], registered["pid"], registered["state"]) == (
            eng["id"],
            engine.pid,
            "live",
        )
        assert [j["id"] for j in registered["running_jobs"]] == ["slow"]
    else:
        assert status["engines"] == []
    _check_iso_utc(eng["started_at"])
    assert isinstance(eng["uptime"], float) and 0 <= eng["uptime"] < 60
    [job] = eng["running_jobs"]
    assert set(job) == RUNNING_JOB_KEYS
    assert (job["id"], job["command"], job["attempt"]) == ("slow", "sleep 30", 1)
    assert job["pid"] == get_job(backend, "slow").pid
    _check_iso_utc(job["started_at"])
    assert 0 <= job["elapsed"] < 60
    text = out(cli("status"))
    assert "1 worker)" in text and "1 workers" not in text


# --- read-only commands never create a queue --------------------------------------------------


READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["show", "j1"],
    ["logs", "j1"],
    ["logs", "-f", "j1"],
    ["dlq", "list"],
    ["config", "get", "max-retries"],
    ["config", "list", "--json"],
]


@pytest.mark.parametrize("argv", READ_ONLY, ids=[" ".join(argv) for argv in READ_ONLY])
def test_read_only_commands_on_a_missing_queue_say_so(home: Path, argv: list[str]) -> None:
    typo = home / "typo" / "queue"
    message = assert_one_line_error(run_cli(typo, *argv), 1)
    assert f"no queue at '{typo / 'queue.db'}'" in message and "--home" in message
    assert not (home / "typo").exists(), "a read-only command created the queue's home"
    other = home / "other.db"
    message = assert_one_line_error(run_cli(home, "--db", f"sqlite:///{other}", *argv), 1)
    assert str(other) in message
    assert not other.exists()


@pytest.mark.parametrize("argv", [["status"], ["logs", "j1"], ["enqueue", "--", "true"], ["pause"]])
def test_a_home_that_is_a_file_is_not_a_directory(home: Path, argv: list[str]) -> None:
    afile = home / "passwd"
    afile.write_text("root:x:0:0\n")
    message = assert_one_line_error(run_cli(afile, *argv), 1)
    assert f"queue home '{afile}' is not a directory" in message
    assert afile.read_text() == "root:x:0:0\n"


# --- wording ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["paus"],
            "No such command 'paus'; did you mean 'pause' or 'status'? See `queuectl --help`",
        ),
        (["lgs", "x"], "No such command 'lgs'; did you mean 'logs'? See `queuectl --help`"),
        (
            ["worker", "strat"],
            "No such command 'strat'; did you mean 'start'? See `queuectl worker --help`",
        ),
        (["show"], "Missing argument 'JOB_ID'; see `queuectl show --help`"),
    ],
)
def test_usage_errors_read_as_sentences(home: Path, argv: list[str], expected: str) -> None:
    assert assert_one_line_error(run_cli(home, *argv), 2) == expected


def test_show_json_keeps_its_keys(cli: Cli, backend: Backend) -> None:
    record(backend, "mixed", MIXED)
    shown: dict[str, Any] = json.loads(out(cli("show", "mixed", "--json")))
    [attempt] = shown["history"]
    assert {"stdout", "stderr", "stdout_truncated", "stderr_truncated"} <= set(attempt)
