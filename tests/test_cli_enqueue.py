"""`queuectl enqueue` through the real CLI: a JSON job with options, --cwd, --env, --label,
--each, the units of its flags and JSON fields, and every refusal (exit 2, one line, nothing
stored). The queue is looked at through `show --json` / `list --json` or the Store."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Backend,
    Cli,
    assert_one_line_error,
    decoy_env,
    job_counts,
    queue_snapshot,
    queuectl_argv,
    run_cli,
    seed,
)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


def show(cli: Cli, job_id: str) -> dict[str, Any]:
    return json.loads(ok(cli("show", job_id, "--json")))


def listed(cli: Cli) -> list[dict[str, Any]]:
    return json.loads(ok(cli("list", "--json", "--limit", "1000000")))


def in_dir(backend: Backend, cwd: Path, *args: str, **kwargs: Any) -> Any:
    """The CLI run from `cwd` (the `cli` fixture runs from the test's own directory)."""
    env = {**decoy_env(backend.home / "decoy"), **kwargs.pop("env", {})}
    return run_cli(backend.home, *backend.cli_args(), *args, cwd=cwd, env=env, **kwargs)


# --- a JSON job with options (rough edge 1) ---------------------------------------------------


def test_options_override_a_json_job(cli: Cli) -> None:
    """Never the JSON text stored as the command: the options are merged into the job."""
    assert ok(cli("enqueue", "--priority", "5", '{"command":"echo hi","id":"jp"}')) == "jp\n"
    job = show(cli, "jp")
    assert (job["command"], job["priority"]) == ("echo hi", 5)


def test_every_option_merges_into_a_json_job(cli: Cli) -> None:
    job = {
        "id": "j1",
        "command": "make report",
        "priority": 1,
        "max_retries": 9,
        "timeout": 60,
        "env": {"A": "json", "B": "json"},
        "label": "from json",
        "run_at": "2030-01-31T09:00:00Z",
    }
    out = cli(
        "enqueue",
        "--max-retries", "0",
        "--timeout", "1h30m",
        "--env", "B=option",
        "--env", "C=option",
        "--label", "from the flag",
        "--cwd", "/tmp",
        "--run-at", "2031-01-31T09:00:00Z",
        json.dumps(job),
    )  # fmt: skip
    assert ok(out) == "j1\n"
    shown = show(cli, "j1")
    assert shown["command"] == "make report"
    assert shown["priority"] == 1  # not given as an option: the JSON's value stays
    assert (shown["max_retries"], shown["timeout"]) == (0, 5400.0)
    assert shown["env"] == {"A": "json", "B": "option", "C": "option"}
    assert (shown["label"], shown["cwd"]) == ("from the flag", "/tmp")
    assert shown["run_at"] == "2031-01-31T09:00:00.000+00:00"


def test_help_documents_the_precedence(cli: Cli) -> None:
    helptext = ok(cli("enqueue", "--help"))
    assert "override its fields" in helptext
    for flag in ("--each", "--cwd", "--env", "--label"):
        assert flag in helptext


# --- --cwd, --env, --label --------------------------------------------------------------------


def test_cwd_is_made_absolute(backend: Backend, cli: Cli, home: Path) -> None:
    (home / "work" / "sub").mkdir(parents=True)
    result = in_dir(backend, home / "work", "enqueue", "--id", "c1", "--cwd", "sub", "--", "ls")
    assert ok(result) == "c1\n"
    assert show(cli, "c1")["cwd"] == str(home / "work" / "sub")
    ok(in_dir(backend, home / "work", "enqueue", "--id", "c2", "--", "ls"))
    assert show(cli, "c2")["cwd"] == str(home / "work")  # default: the shell's directory


def test_env_is_repeatable_and_key_alone_passes_the_shells_value(cli: Cli) -> None:
    out = cli(
        "enqueue", "--id", "e1", "--env", "A=1", "--env", "B=x=y", "--env", "EMPTY=",
        "--env", "MY_VAR", "--", "env",
        env={"MY_VAR": "from the shell"},
    )  # fmt: skip
    assert ok(out) == "e1\n"
    assert show(cli, "e1")["env"] == {"A": "1", "B": "x=y", "EMPTY": "", "MY_VAR": "from the shell"}


def test_label_is_shown_and_kept(cli: Cli) -> None:
    ok(cli("enqueue", "--id", "l1", "--label", "nightly build", "--", "true"))
    ok(cli("enqueue", "--id", "l2", "--", "true"))
    assert show(cli, "l1")["label"] == "nightly build"
    assert show(cli, "l2")["label"] is None
    assert {job["id"]: job["label"] for job in listed(cli)} == {"l1": "nightly build", "l2": None}
    assert "nightly build" in ok(cli("show", "l1"))
    assert "nightly build" in ok(cli("list"))


# --- units: one parser for flags and JSON, messages in the same units (rough edge 8) -----------


def test_durations_in_flags_and_json_alike(cli: Cli) -> None:
    ok(cli("enqueue", "--id", "f", "--timeout", "1h30m", "--", "true"))
    ok(cli("enqueue", '{"id": "j", "command": "true", "timeout": "5m"}'))
    ok(cli("enqueue", '{"id": "n", "command": "true", "timeout": 90}'))
    ok(cli("enqueue", "--id", "ms", "--timeout", "250ms", "--", "true"))
    timeouts = {job["id"]: job["timeout"] for job in listed(cli)}
    assert timeouts == {"f": 5400.0, "j": 300.0, "n": 90.0, "ms": 0.25}


# --- one output line, in good English (rough edge 9) -----------------------------------------


def test_counts_are_pluralised(cli: Cli) -> None:
    assert ok(cli("enqueue", "--file", "-", input='{"command": "true"}\n')) == "enqueued 1 job\n"
    two = '{"command": "true"}\n{"command": "true"}\n'
    assert ok(cli("enqueue", "--file", "-", input=two)) == "enqueued 2 jobs\n"
    assert ok(cli("enqueue", "--each", "-", "--", "echo", input="a\n")) == "enqueued 1 job\n"


# --- --each -----------------------------------------------------------------------------------


def test_each_makes_one_job_per_line(cli: Cli, home: Path) -> None:
    lines = home / "files.txt"
    lines.write_text("photos/a b.jpg\n\n   \nphotos/c.tar.gz\r\nplain\n")
    out = cli(
        "enqueue", "--each", str(lines), "--priority", "3", "--label", "thumbs",
        "--env", "Q=1", "--cwd", "/tmp", "--timeout", "10m",
        "--", "convert", "{}", "{.}.png", "{/}", "{//}", "{/.}", "#{#}",
    )  # fmt: skip
    assert ok(out) == "enqueued 3 jobs\n"
    jobs = sorted(listed(cli), key=lambda job: job["command"])
    assert [job["command"] for job in jobs] == [
        "convert 'photos/a b.jpg' 'photos/a b'.png 'a b.jpg' photos 'a b' #1",
        "convert photos/c.tar.gz photos/c.tar.png c.tar.gz photos c.tar #2",
        "convert plain plain.png plain . plain #3",
    ]
    for job in jobs:  # the other options apply to every job
        assert (job["priority"], job["label"], job["env"], job["cwd"], job["timeout"]) == (
            3,
            "thumbs",
            {"Q": "1"},
            "/tmp",
            600.0,
        )


def test_each_from_stdin_appends_the_line_without_a_placeholder(cli: Cli) -> None:
    out = cli("enqueue", "--each", "-", "--", "gzip", "-9", input="it's here\n$(reboot)\n")
    assert ok(out) == "enqueued 2 jobs\n"
    assert sorted(job["command"] for job in listed(cli)) == [
        "gzip -9 '$(reboot)'",
        "gzip -9 'it'\"'\"'s here'",
    ]


def test_each_ten_thousand_lines_in_one_call(cli: Cli, backend: Backend, home: Path) -> None:
    """How a user queues 10,000 files: one process, one transaction."""
    files = home / "files.txt"
    files.write_text("".join(f"/data/in/file {n:05d}.csv\n" for n in range(10_000)))
    out = cli("enqueue", "--each", str(files), "--label", "import", "--", "import.sh", "{}")
    assert ok(out) == "enqueued 10000 jobs\n"
    assert job_counts(backend)["pending"] == 10_000
    jobs = listed(cli)
    assert len(jobs) == 10_000
    commands = {job["command"] for job in jobs}
    assert len(commands) == 10_000
    assert "import.sh '/data/in/file 00000.csv'" in commands
    assert "import.sh '/data/in/file 09999.csv'" in commands
    assert {job["label"] for job in jobs} == {"import"}


def test_each_checks_every_line_before_storing_any(cli: Cli, backend: Backend, home: Path) -> None:
    seed(backend, pending=["p1"])
    before = queue_snapshot(backend)
    files = home / "files.txt"
    files.write_bytes(b"".join(b"f%d\n" % n for n in range(9_999)) + b"bad \xff\n")
    message = assert_one_line_error(cli("enqueue", "--each", str(files), "--", "cat"), 2)
    assert message == f"{files} line 10000 is not UTF-8 text"
    assert queue_snapshot(backend) == before


def test_each_shows_progress_on_a_terminal(backend: Backend) -> None:
    """A bar on stderr when it is a terminal (stdout stays the count, for a script)."""
    primary, secondary = pty.openpty()
    try:
        argv = queuectl_argv(
            backend.home, *backend.cli_args(), "enqueue", "--each", "-", "--", "echo"
        )
        result = subprocess.run(
            argv,
            input="".join(f"line{n}\n" for n in range(20_000)),
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=60,
            env={**os.environ, **decoy_env(backend.home / "decoy"), "COLUMNS": "80"},
        )
        os.close(secondary)
        secondary = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if secondary >= 0:
            os.close(secondary)
        os.close(primary)
    assert result.returncode == 0
    assert result.stdout == "enqueued 20000 jobs\n"
    assert b"enqueueing" in drawn


# --- refusals: exit 2, one line, the queue unchanged ------------------------------------------

REFUSED: list[tuple[str, list[str], str | None, str]] = [
    # (case, argv, stdin, the message or a fragment of it)
    (
        "two JSON jobs",
        ["enqueue", '{"command": "a"}', '{"command": "b"}'],
        None,
        "one JSON job per argument list; use --file for several",
    ),
    (
        "two JSON jobs with options",
        ["enqueue", "--priority", "5", '{"command": "a"}', '{"command": "b"}'],
        None,
        "one JSON job per argument list",
    ),
    (
        "JSON job and words",
        ["enqueue", '{"command": "a"}', "extra"],
        None,
        "a JSON job takes no command words after it",
    ),
    (
        "bad option for a JSON job",
        ["enqueue", "--timeout", "soon", '{"command": "a"}'],
        None,
        "'timeout': invalid duration 'soon'",
    ),
    (
        "JSON job invalid with options",
        ["enqueue", "--priority", "5", '{"command": "a"'],
        None,
        "invalid JSON",
    ),
    ("relative --cwd missing", ["enqueue", "--cwd", "nope", "--", "ls"], None,
     "'nope' is not a directory"),
    ("--cwd a file", ["enqueue", "--cwd", "/etc/passwd", "--", "ls"], None, "is not a directory"),
    ("--env without a value", ["enqueue", "--env", "QUEUECTL_NOPE_X", "--", "env"], None,
     "QUEUECTL_NOPE_X is not set here; give QUEUECTL_NOPE_X=VALUE"),
    ("--env empty name", ["enqueue", "--env", "=1", "--", "env"], None, "invalid variable name"),
    ("empty --label", ["enqueue", "--label", "", "--", "true"], None, "'label' is empty"),
    ("--label newline", ["enqueue", "--label", "a\nb", "--", "true"], None, "control character"),
    ("--label too long", ["enqueue", "--label", "x" * 201, "--", "true"], None, "longer than 200"),
    ("JSON label", ["enqueue", '{"command": "x", "label": 5}'], None, "'label' must be a string"),
    ("timeout too long", ["enqueue", "--timeout", "3651d", "--", "true"], None, "at most 3650d"),
    ("JSON timeout too long", ["enqueue", '{"command": "x", "timeout": 400000000}'], None,
     "'timeout' is too long; use at most 3650d"),
    ("JSON timeout bad", ["enqueue", '{"command": "x", "timeout": "5 minutes"}'], None,
     "invalid duration '5 minutes'"),
    ("units out of order", ["enqueue", "--timeout", "30m1h", "--", "true"], None,
     "invalid duration"),
    ("config duration in units", ["config", "set", "job-timeout", "3651d"], None, "at most 3650d"),
    ("config size in units", ["config", "set", "output-limit", "2GiB"], None, "at most 1GiB"),
    ("--each without a command", ["enqueue", "--each", "-"], "a\n", "--each needs a command"),
    ("--each with --id", ["enqueue", "--each", "-", "--id", "x", "--", "echo"], "a\n",
     "--id names one job"),
    ("--each with --file", ["enqueue", "--each", "-", "--file", "-", "--", "echo"], "a\n",
     "--file takes no command, no --each"),
    ("--each with a JSON job", ["enqueue", "--each", "-", '{"command": "echo {}"}'], "a\n",
     "not a JSON job"),
    ("--each empty input", ["enqueue", "--each", "-", "--", "echo"], "\n \n",
     "stdin holds no lines"),
    ("--each missing file", ["enqueue", "--each", "/nonexistent/list", "--", "echo"], None,
     "cannot read '/nonexistent/list'"),
    ("--each NUL in a line", ["enqueue", "--each", "-", "--", "echo"], "ok\na\x00b\n",
     "stdin line 2: 'command' contains a NUL byte"),
    ("--each bad option", ["enqueue", "--each", "-", "--delay", "later", "--", "echo"], "a\n",
     "invalid duration 'later'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "stdin", "fragment"),
    [(argv, stdin, fragment) for _, argv, stdin, fragment in REFUSED],
    ids=[case for case, _, _, _ in REFUSED],
)
def test_refused(
    cli: Cli, backend: Backend, argv: list[str], stdin: str | None, fragment: str
) -> None:
    seed(backend, pending=["p1"])
    before = queue_snapshot(backend)
    result = cli(*argv, input=stdin)
    message = assert_one_line_error(result, 2)
    assert fragment in message
    assert "e+" not in message  # never "at most 3.1536e+08"
    assert result.stdout == ""
    assert queue_snapshot(backend) == before
