"""The real CLI in subprocesses: every job-management command, its --json, and its errors.

Queues that a test only needs as a starting point are filled in-process (`seed`), which is
much faster than one CLI process per job. Each test runs on every backend (the `backend`
fixture); the queue is looked at through the CLI's --json or the Store (`queue_snapshot`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    BACKENDS,
    Backend,
    Cli,
    ManualClock,
    assert_one_line_error,
    decoy_env,
    failure,
    finish,
    in_store_with,
    make_backend,
    queue_snapshot,
    run_cli,
    run_cli_parallel,
    seed,
    spec,
)

from queuectl.config import CONFIG_KEYS
from queuectl.states import ErrorKind, JobState
from queuectl.store import Store

JOB_KEYS = {
    "id",
    "command",
    "state",
    "priority",
    "max_retries",
    "timeout",
    "cwd",
    "env",
    "attempts",
    "runs",
    "created_at",
    "updated_at",
    "run_at",
    "next_run_at",
    "started_at",
    "finished_at",
    "exit_code",
    "last_error",
    "lease_owner",
    "lease_expires_at",
    "pid",
    "error_kind",
    "label",
    "queue",
    "unique_key",
}
ATTEMPT_KEYS = {
    "run",
    "engine",
    "started_at",
    "finished_at",
    "duration",
    "exit_code",
    "error",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "error_kind",
}
GENERATED_ID = re.compile(r"^[0-9a-hjkmnp-tv-z]{12}$")


def ts(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0, iso
    return moment.timestamp()


def ok(result: Any) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


def show(cli: Cli, job_id: str) -> dict[str, Any]:
    return json.loads(ok(cli("show", job_id, "--json")))


def counts(cli: Cli) -> dict[str, int]:
    return json.loads(ok(cli("status", "--json")))["counts"]


def many(backend: Backend, *argvs: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent read-only calls at once, as the `cli` fixture makes them (the backend's
    options, the decoy environment)."""
    env = decoy_env(backend.home / "decoy")
    return run_cli_parallel(
        [(backend.home, [*backend.cli_args(), *argv], {"env": env}) for argv in argvs]
    )


def outputs(backend: Backend, *argvs: list[str]) -> list[str]:
    return [ok(result) for result in many(backend, *argvs)]


# --- enqueue ----------------------------------------------------------------------------------


def test_enqueue_json_prints_the_id(cli: Cli) -> None:
    job = {
        "id": "job1",
        "command": "sleep 2",
        "max_retries": 3,
        "priority": 2,
        "timeout": 5,
        "env": {"GREETING": "hi there"},
    }
    assert ok(cli("enqueue", json.dumps(job))) == "job1\n"
    shown = show(cli, "job1")
    assert set(shown) == JOB_KEYS | {"parents", "children", "history"}
    assert {k: shown[k] for k in job} == {**job, "timeout": 5.0}
    assert shown["state"] == "pending"
    assert shown["cwd"] == os.getcwd()
    assert (shown["attempts"], shown["runs"], shown["history"]) == (0, 0, [])
    assert shown["run_at"] == shown["next_run_at"] == shown["created_at"]
    assert abs(ts(shown["created_at"]) - time.time()) < 60
    assert shown["started_at"] is shown["exit_code"] is shown["lease_owner"] is None


def test_enqueue_generates_an_id(cli: Cli) -> None:
    new_id = ok(cli("enqueue", '{"command": "true"}')).strip()
    assert GENERATED_ID.match(new_id)
    listed = json.loads(ok(cli("list", "--json")))
    assert [job["id"] for job in listed] == [new_id]
    assert listed[0]["max_retries"] == CONFIG_KEYS["max-retries"].default
    assert listed[0]["timeout"] is None


def test_enqueue_shorthand(cli: Cli) -> None:
    before = time.time()
    out = ok(
        cli(
            "enqueue",
            "--id",
            "x",
            "--max-retries",
            "2",
            "--priority",
            "5",
            "--timeout",
            "30s",
            "--delay",
            "5m",
            "--",
            "echo",
            "hi",
        )
    )
    after = time.time()
    assert out == "x\n"
    shown = show(cli, "x")
    assert (shown["command"], shown["max_retries"], shown["priority"], shown["timeout"]) == (
        "echo hi",
        2,
        5,
        30.0,
    )
    assert shown["state"] == "pending"
    assert before + 300 - 0.01 <= ts(shown["next_run_at"]) <= after + 300 + 0.01
    assert shown["run_at"] == shown["next_run_at"]
    assert ts(shown["created_at"]) < ts(shown["next_run_at"]) - 299


def test_enqueue_shorthand_defaults(cli: Cli) -> None:
    new_id = ok(cli("enqueue", "--", "echo", "a b")).strip()
    assert GENERATED_ID.match(new_id)
    shown = show(cli, new_id)
    assert (shown["command"], shown["priority"], shown["max_retries"], shown["timeout"]) == (
        "echo a b",
        0,
        3,
        None,
    )


def test_enqueue_run_at(cli: Cli) -> None:
    assert (
        ok(cli("enqueue", "--id", "a", "--run-at", "2030-01-31T09:00:00+02:00", "--", "true"))
        == "a\n"
    )
    assert (
        ok(cli("enqueue", '{"id": "b", "command": "true", "run_at": "2030-01-31T07:00:00Z"}'))
        == "b\n"
    )
    listed = {job["id"]: job for job in json.loads(ok(cli("list", "--json")))}
    for job_id in ("a", "b"):
        assert listed[job_id]["run_at"] == "2030-01-31T07:00:00.000+00:00"
        assert listed[job_id]["next_run_at"] == "2030-01-31T07:00:00.000+00:00"


def test_enqueue_file_and_stdin(cli: Cli, home: Path) -> None:
    path = home / "jobs.jsonl"
    path.write_text(
        '{"id": "f1", "command": "echo 1"}\n\n'
        '{"id": "f2", "command": "echo 2", "priority": 9}\n'
        '{"command": "echo 3", "max_retries": 0}\n'
    )
    assert ok(cli("enqueue", "--file", str(path))) == "enqueued 3 jobs\n"
    listed = json.loads(ok(cli("list", "--json")))
    assert sorted(job["command"] for job in listed) == ["echo 1", "echo 2", "echo 3"]
    by_command = {job["command"]: job for job in listed}
    assert by_command["echo 2"]["priority"] == 9
    assert by_command["echo 3"]["max_retries"] == 0
    assert GENERATED_ID.match(by_command["echo 3"]["id"])
    stdin = '{"id": "s1", "command": "echo s1"}\n{"id": "s2", "command": "echo s2"}\n'
    assert ok(cli("enqueue", "--file", "-", input=stdin)) == "enqueued 2 jobs\n"
    assert show(cli, "s2")["command"] == "echo s2"
    assert counts(cli)["pending"] == 5


def test_data_survives_across_processes(cli: Cli, backend: Backend) -> None:
    ok(cli("enqueue", "--id", "one", "--", "true"))
    ok(cli("config", "set", "concurrency", "12"))
    ok(cli("enqueue", "--id", "two", "--", "true"))
    assert counts(cli)["pending"] == 2
    snapshot = queue_snapshot(backend)
    assert snapshot is not None
    assert sorted(job.id for job in snapshot["jobs"]) == ["one", "two"]
    assert snapshot["config"].concurrency == 12


# --- inspecting -------------------------------------------------------------------------------


def test_status(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1", "d2"], pending=["p1", "p2", "p3"])
    human, as_json = outputs(backend, ["status"], ["status", "--json"])
    assert re.search(r"pending\s+3\b", human)
    assert re.search(r"dead\s+2\b", human)
    assert "not running" in human
    status = json.loads(as_json)
    assert status["counts"] == {**{s.value: 0 for s in JobState}, "pending": 3, "dead": 2}
    assert status["engine"]["running"] is False


def test_list(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1"])
    for n in range(4):  # distinct creation times
        in_store_with(
            backend,
            lambda store, n=n: store.enqueue([spec(id=f"p{n}")]),
            clock=ManualClock(time.time() + n + 1),
        )
    every, dead, first_two, completed, human = outputs(
        backend,
        ["list", "--json"],
        ["list", "--state", "dead", "--json"],
        ["list", "--state", "PENDING", "--limit", "2", "--json"],
        ["list", "--state", "completed", "--json"],
        ["list", "--limit", "3"],
    )
    listed = json.loads(every)
    assert [job["id"] for job in listed] == ["p3", "p2", "p1", "p0", "d1"]
    assert all(set(job) == JOB_KEYS for job in listed)
    assert [j["id"] for j in json.loads(dead)] == ["d1"]
    assert [j["id"] for j in json.loads(first_two)] == ["p3", "p2"]
    assert json.loads(completed) == []
    assert "p3" in human and "p1" in human and "p0" not in human and "d1" not in human
    assert "STATE" in human


def test_list_empty(backend: Backend) -> None:
    seed(backend)  # an empty queue; one that does not exist is refused (test_cli_list.py)
    human, as_json = outputs(backend, ["list"], ["list", "--json"])
    assert "no jobs" in human
    assert json.loads(as_json) == []


def test_show(cli: Cli, backend: Backend) -> None:
    clock = ManualClock()

    async def one_dead_job(store: Store) -> None:  # its one attempt lasts exactly 1 s
        await store.enqueue([spec("false", id="d1", max_retries=0)])
        [job] = await store.claim("test-engine", 1, 30.0)
        clock.advance(1.0)
        assert await finish(store, job, failure(stdout=b"out\n", stderr=b"err\n"))

    in_store_with(backend, one_dead_job, clock=clock)
    as_json, human = outputs(backend, ["show", "d1", "--json"], ["show", "d1"])
    shown = json.loads(as_json)
    assert (shown["state"], shown["attempts"], shown["runs"]) == ("dead", 1, 1)
    assert (shown["exit_code"], shown["last_error"]) == (1, "exit code 1")
    assert shown["error_kind"] == ErrorKind.EXIT
    [attempt] = shown["history"]
    assert set(attempt) == ATTEMPT_KEYS
    assert (attempt["run"], attempt["exit_code"], attempt["stdout"], attempt["stderr"]) == (
        1,
        1,
        "out\n",
        "err\n",
    )
    assert attempt["error_kind"] == ErrorKind.EXIT
    assert attempt["duration"] == pytest.approx(1.0)
    assert "d1" in human and "dead" in human and "exit code 1" in human
    assert "attempts" in human


# --- the dead letter queue --------------------------------------------------------------------


def test_dlq(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1", "d2", "d3"], pending=["p1"])
    as_json, human = outputs(backend, ["dlq", "list", "--json"], ["dlq", "list"])
    dead = json.loads(as_json)
    assert sorted(job["id"] for job in dead) == ["d1", "d2", "d3"]
    assert all(job["state"] == "dead" and set(job) == JOB_KEYS for job in dead)
    assert "dead letter queue" in human and "d2" in human and "p1" not in human

    assert ok(cli("dlq", "retry", "d1")) == "retried 1 job\n"
    retried = show(cli, "d1")
    assert (retried["state"], retried["attempts"], retried["runs"]) == ("pending", 0, 1)
    assert retried["last_error"] is None and retried["error_kind"] is None
    assert len(retried["history"]) == 1  # the history is kept

    assert ok(cli("dlq", "retry", "--all")) == "retried 2 jobs\n"
    status, as_json, human = outputs(
        backend, ["status", "--json"], ["dlq", "list", "--json"], ["dlq", "list"]
    )
    assert json.loads(status)["counts"] == {**{s.value: 0 for s in JobState}, "pending": 4}
    assert json.loads(as_json) == []
    assert "none" in human
    assert ok(cli("dlq", "retry", "--all")) == "retried 0 jobs\n"


def test_dlq_retry_several_ids(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1", "d2", "d3"])
    assert ok(cli("dlq", "retry", "d1", "d3")) == "retried 2 jobs\n"
    assert [j["id"] for j in json.loads(ok(cli("dlq", "list", "--json")))] == ["d2"]
    # naming a job twice retries it once
    assert ok(cli("dlq", "retry", "d2", "d2")) == "retried 1 job\n"
    assert counts(cli)["pending"] == 3


# --- config -----------------------------------------------------------------------------------


def test_config(cli: Cli, backend: Backend) -> None:
    defaults = {name: key.default for name, key in CONFIG_KEYS.items()}
    seed(backend)  # the queue exists: `config list` only reads, so it never creates one
    assert json.loads(ok(cli("config", "list", "--json"))) == defaults
    assert ok(cli("config", "set", "max-retries", "5")) == "max-retries = 5\n"
    assert ok(cli("config", "set", "job-timeout", "1m")) == "job-timeout = 60\n"
    assert ok(cli("config", "set", "output-limit", "64KiB")) == "output-limit = 65536\n"
    plain, retries, timeout, as_json, human = outputs(
        backend,
        ["config", "get", "max-retries"],
        ["config", "get", "max-retries", "--json"],
        ["config", "get", "job-timeout", "--json"],
        ["config", "list", "--json"],
        ["config", "list"],
    )
    assert plain == "5\n"
    assert json.loads(retries) == {"max-retries": 5}
    assert json.loads(timeout) == {"job-timeout": 60.0}
    assert json.loads(as_json) == {
        **defaults,
        "max-retries": 5,
        "job-timeout": 60.0,
        "output-limit": 65536,
    }
    for name in CONFIG_KEYS:
        assert name in human
    assert "65536" in human

    # new jobs take the configured defaults
    new_id = ok(cli("enqueue", "--", "true")).strip()
    shown = show(cli, new_id)
    assert (shown["max_retries"], shown["timeout"]) == (5, 60.0)

    assert ok(cli("config", "set", "job-timeout", "none")) == "job-timeout = none\n"
    plain, as_json = outputs(
        backend, ["config", "get", "job-timeout"], ["config", "get", "job-timeout", "--json"]
    )
    assert plain == "none\n"
    assert json.loads(as_json) == {"job-timeout": None}


# --- bad input: exit 2, one line, nothing changed ---------------------------------------------

BAD_INPUT: list[tuple[str, list[str], str]] = [
    # (case, argv, a fragment of the message)
    ("invalid JSON", ["enqueue", '{"command": "x"'], "invalid JSON"),
    ("missing command", ["enqueue", '{"id": "new"}'], "'command' is missing"),
    ("empty command JSON", ["enqueue", '{"command": "   "}'], "empty"),
    ("empty command shorthand", ["enqueue", "--", ""], "empty"),
    ("nothing to enqueue", ["enqueue"], "nothing to enqueue"),
    (
        "priority not an integer",
        ["enqueue", '{"command": "x", "priority": "high"}'],
        "'priority' must be an integer",
    ),
    ("--priority not an integer", ["enqueue", "--priority", "high", "--", "true"], "priority"),
    (
        "negative max_retries",
        ["enqueue", '{"command": "x", "max_retries": -1}'],
        "'max_retries' must be >= 0",
    ),
    ("negative --max-retries", ["enqueue", "--max-retries", "-1", "--", "true"], "max_retries"),
    ("unknown field", ["enqueue", '{"command": "x", "colour": "red"}'], "unknown field 'colour'"),
    ("bad timeout", ["enqueue", "--timeout", "soon", "--", "true"], "invalid duration"),
    ("zero timeout", ["enqueue", '{"command": "x", "timeout": 0}'], "timeout"),
    ("huge timeout", ["enqueue", '{"command": "x", "timeout": 1' + "0" * 400 + "}"], "timeout"),
    ("huge delay", ["enqueue", "--delay", "9" * 400 + "s", "--", "true"], "duration"),
    ("delay beyond year 9999", ["enqueue", "--delay", "1000000000000d", "--", "true"], ""),
    (
        "run_at without timezone",
        ["enqueue", '{"command": "x", "run_at": "2030-01-01T00:00"}'],
        "timezone",
    ),
    (
        "--run-at without timezone",
        ["enqueue", "--run-at", "2030-01-01T00:00:00", "--", "true"],
        "timezone",
    ),
    (
        "run_at after year 9999",
        ["enqueue", '{"command": "x", "run_at": "9999-12-31T23:59:59-23:59"}'],
        "range",
    ),
    (
        "--run-at with --delay",
        ["enqueue", "--run-at", "2030-01-01T00:00:00Z", "--delay", "5m", "--", "true"],
        "not both",
    ),
    ("--file with a command", ["enqueue", "--file", "-", "--", "true"], "--file"),
    ("lone surrogate in JSON", ["enqueue", '{"command": "echo \\ud800"}'], "UTF-8"),
    ("non-UTF-8 byte in argv", ["enqueue", "--", "echo", os.fsdecode(b"\xff")], "UTF-8"),
    ("id with a newline", ["enqueue", "--id", "a\n", "--", "true"], "invalid id"),
    ("duplicate id JSON", ["enqueue", '{"id": "p1", "command": "x"}'], "'p1' already exists"),
    ("duplicate id shorthand", ["enqueue", "--id", "d1", "--", "true"], "'d1' already exists"),
    ("unknown state", ["list", "--state", "bogus"], "unknown state 'bogus'"),
    ("zero limit", ["list", "--limit", "0"], "limit"),
    ("huge limit", ["list", "--limit", "9" * 20], "limit"),
    ("huge dlq limit", ["dlq", "list", "--limit", "9" * 20, "--json"], "limit"),
    ("show unknown job", ["show", "nope"], "'nope' not found"),
    ("dlq retry unknown job", ["dlq", "retry", "nope"], "'nope' not found"),
    ("dlq retry dead and unknown", ["dlq", "retry", "d1", "nope"], "'nope' not found"),
    ("dlq retry a pending job", ["dlq", "retry", "p1"], "not dead"),
    ("dlq retry nothing", ["dlq", "retry"], "--all"),
    ("dlq retry ids and --all", ["dlq", "retry", "d1", "--all"], "--all"),
    ("unknown config key (set)", ["config", "set", "colour", "red"], "unknown config key 'colour'"),
    ("unknown config key (get)", ["config", "get", "colour"], "unknown config key 'colour'"),
    ("concurrency 0", ["config", "set", "concurrency", "0"], "concurrency"),
    ("max-retries -1", ["config", "set", "max-retries", "-1"], "max-retries"),
    ("backoff-base abc", ["config", "set", "backoff-base", "abc"], "backoff-base"),
    ("job-timeout 0", ["config", "set", "job-timeout", "0"], "job-timeout"),
    ("output-limit too big", ["config", "set", "output-limit", "2GiB"], "output-limit"),
    ("unknown command", ["frobnicate"], "frobnicate"),
    ("unknown option", ["list", "--colour"], "--colour"),
]


FILE_CASES: list[tuple[str, str, str]] = [
    # (case, file content, fragments of the message)
    (
        "duplicate id in the file",
        '{"id": "a", "command": "x"}\n{"id": "b", "command": "x"}\n{"id": "a", "command": "y"}\n',
        "line 3|'a'|line 1",
    ),
    (
        "id already in the queue",
        '{"id": "new1", "command": "x"}\n{"command": "x"}\n{"id": "p1", "command": "x"}\n',
        "line 3|'p1' already exists",
    ),
    (
        "invalid JSON on a line",
        '{"id": "a", "command": "x"}\n{"id": "b", "command": \n',
        "line 2|invalid JSON",
    ),
    (
        "bad field on a line",
        '{"command": "x"}\n\n{"command": "x", "priority": "high"}\n',
        "line 3|'priority'",
    ),
    ("unknown field on a line", '{"command": "x", "colour": 1}\n', "line 1|'colour'"),
    ("empty file", "\n\n", "no jobs"),
]


@dataclass(frozen=True)
class BadRun:
    result: subprocess.CompletedProcess[str]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    decoy_used: bool


def _bad_calls() -> dict[str, tuple[list[str], str | None, str | None]]:
    """test id -> (argv, stdin, file content); a file is written as jobs.jsonl in the home."""
    calls: dict[str, tuple[list[str], str | None, str | None]] = {
        case: (argv, None, None) for case, argv, _ in BAD_INPUT
    }
    for case, content, _ in FILE_CASES:
        calls[f"{case}-file"] = (["enqueue", "--file", "{home}/jobs.jsonl"], None, content)
        calls[f"{case}-stdin"] = (["enqueue", "--file", "-"], content, None)
    return calls


@pytest.fixture(scope="module", params=BACKENDS)
def bad_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, BadRun]]:
    """Every bad-input case, each in its own seeded queue, run in parallel once per module (and
    backend: the `backend` fixture's, for queues of a module-wide fixture).

    Process start-up is most of a CLI call; overlapping the independent calls keeps the suite
    fast while each case still gets its own queue and its own test.
    """
    backends: dict[str, Backend] = {}
    try:
        calls = []
        for case, (argv, stdin, content) in _bad_calls().items():
            home = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
            backend = backends[case] = make_backend(request.param, home)
            seed(backend, dead=["d1"], pending=["p1"], config={"max-retries": 4})
            if content is not None:
                (home / "jobs.jsonl").write_text(content)
            env = {"QUEUECTL_HOME": str(home / "decoy"), "XDG_DATA_HOME": str(home / "decoy")}
            args = [*backend.cli_args(), *(arg.replace("{home}", str(home)) for arg in argv)]
            calls.append((home, args, {"input": stdin, "env": env}))
        befores = {case: queue_snapshot(backend) for case, backend in backends.items()}
        results = run_cli_parallel(calls)
        yield {
            case: BadRun(
                result,
                befores[case],
                queue_snapshot(backend),
                (backend.home / "decoy").exists(),
            )
            for (case, backend), result in zip(backends.items(), results, strict=True)
        }
    finally:
        for backend in backends.values():
            shutil.rmtree(backend.home, ignore_errors=True)


def _check_bad_run(run: BadRun, fragments: str) -> None:
    message = assert_one_line_error(run.result, 2)
    for fragment in fragments.split("|"):
        assert fragment in message
    assert run.result.stdout == ""
    assert run.before is not None
    assert run.after == run.before, "the queue changed"
    assert not run.decoy_used


@pytest.mark.parametrize(
    ("case", "fragment"),
    [(case, fragment) for case, _, fragment in BAD_INPUT],
    ids=[case for case, _, _ in BAD_INPUT],
)
def test_bad_input(bad_runs: dict[str, BadRun], case: str, fragment: str) -> None:
    _check_bad_run(bad_runs[case], fragment)


@pytest.mark.parametrize("via", ["file", "stdin"])
@pytest.mark.parametrize(
    ("case", "fragments"),
    [(case, fragments) for case, _, fragments in FILE_CASES],
    ids=[case for case, _, _ in FILE_CASES],
)
def test_bad_file_stores_nothing(
    bad_runs: dict[str, BadRun], case: str, fragments: str, via: str
) -> None:
    run = bad_runs[f"{case}-{via}"]
    _check_bad_run(run, fragments)
    assert run.after is not None
    assert sorted(job.id for job in run.after["jobs"]) == ["d1", "p1"]


def test_missing_file(cli: Cli, home: Path) -> None:
    message = assert_one_line_error(cli("enqueue", "--file", str(home / "missing.jsonl")), 2)
    assert "missing.jsonl" in message


# --- the queue's home and its database --------------------------------------------------------
# Without --db the queue is the SQLite file in the home: these tests are about that default.


def test_home_is_created_0700(home: Path) -> None:
    target = home / "parent" / "queue"
    run_cli(target, "enqueue", "--", "true", check=True)  # a command that writes creates it
    result = run_cli(target, "status", "--json", check=True)
    assert json.loads(result.stdout)["counts"]["pending"] == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert Backend("sqlite", target).exists()


def test_queuectl_home_is_used_without_home_option(home: Path) -> None:
    target = home / "from-env"
    env = {"QUEUECTL_HOME": str(target), "XDG_DATA_HOME": str(home / "xdg")}
    run_cli(None, "enqueue", "--id", "e1", "--", "true", env=env, check=True)
    assert Backend("sqlite", target).exists()
    assert not (home / "xdg").exists()
    assert "e1" in run_cli(target, "list", check=True).stdout


def test_version_and_help(backend: Backend) -> None:
    from queuectl import __version__

    version, helptext = outputs(backend, ["--version"], ["--help"])
    assert __version__ in version
    for command in ("enqueue", "status", "list", "show", "dlq", "config"):
        assert command in helptext


@pytest.mark.slow
def test_bulk_enqueue_100k(cli: Cli, home: Path) -> None:
    path = home / "bulk.jsonl"
    path.write_text("".join(f'{{"id": "job{n}", "command": "echo {n}"}}\n' for n in range(100_000)))
    result = cli("enqueue", "--file", str(path))
    assert ok(result) == "enqueued 100000 jobs\n"
    assert counts(cli) == {**{s.value: 0 for s in JobState}, "pending": 100_000}
    assert show(cli, "job99999")["command"] == "echo 99999"
