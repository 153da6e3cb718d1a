"""Fuzzing the two ways in: the real CLI (job JSON, --file, config values) and the control socket
of a live engine.

The CLI contract: any input ends either in success (exit 0) or in a clear error (exit 2, exactly
one line on stderr, no traceback) that changed nothing in the queue (every job, attempt and
config value, as the Store reads them back). The validators are pure,
so they serve as the oracle for which of the two must happen.

The socket contract: any bytes a client sends get an error reply or are dropped; the engine stays
up, still answers, and still runs jobs.

CLI processes cost ~0.3 s each, so the CLI fuzzers run few examples and never shrink (a shrink
would replay hundreds of processes); a failure reports the example as found. No engine ever
runs on the CLI fuzzers' queues: fuzzed shell commands are stored, never executed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_process import StartEngine
from helpers import (
    Backend,
    Cli,
    all_jobs,
    assert_one_line_error,
    in_store,
    job_state,
    queue_snapshot,
    seed,
    wait_for,
)
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from queuectl.config import CONFIG_KEYS, Config, parse_config_value
from queuectl.control.protocol import MAX_LINE, OPS
from queuectl.errors import BadInput
from queuectl.paths import SOCKET_NAME
from queuectl.specs import ID_PATTERN, parse_job_json, validate_command
from queuectl.store import Store

FIELDS = ("id", "command", "max_retries", "priority", "timeout", "run_at", "cwd", "env")
SEEDED = ("dead-1", "pending-1", "pending-2")
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def cli_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, phases=NO_SHRINK)


# --- strategies -------------------------------------------------------------------------------

huge_ints = st.sampled_from(
    [2**62, 2**62 + 1, -(2**62) - 1, 2**63, -(2**63), 2**64, 10**30, -(10**30), 10**400]
)
numbers = (
    st.integers()
    | huge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 0.0, 1e-300])
)
json_scalars = st.none() | st.booleans() | numbers | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
iso_times = st.builds(
    lambda moment, zone: moment.isoformat() + zone,
    st.datetimes(),
    st.sampled_from(["", "Z", "+00:00", "-05:00", "+14:00", "+25:00"]),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.from_regex(ID_PATTERN, fullmatch=True) | st.sampled_from(SEEDED) | json_values,
    "command": st.text(max_size=30)
    | st.sampled_from(["", "  ", "true", "echo \x00"])
    | json_values,
    "max_retries": st.integers(-3, 10) | json_values,
    "priority": st.integers(-10, 10) | json_values,
    "timeout": st.floats(-10, 1e12) | json_values,
    "run_at": iso_times | json_values,
    "cwd": st.sampled_from(["/", "/tmp", "relative/dir", "", "/a\x00b"]) | json_values,
    "env": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | json_values, max_size=3)
    | json_values,
}
job_objects = st.fixed_dictionaries({}, optional=FIELD_VALUES) | st.fixed_dictionaries(
    {"command": st.just("true")},
    optional={
        "id": FIELD_VALUES["id"],
        "bogus": json_values,
        "ID": json_values,
        "command ": json_values,
    },
)


@st.composite
def json_texts(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> str:
    value = draw(values)
    return json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)


def fits_argv(text: str) -> bool:
    """Passable as one argument: no NUL, and encodable as the OS will (lone surrogates from
    \\udc80-\\udcff travel as the undecodable bytes they stand for)."""
    if "\x00" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


job_arguments = st.one_of(
    json_texts(job_objects),
    json_texts(json_values),
    st.builds(lambda text: "{" + text, st.text(max_size=40)),
    st.text(max_size=40),
).filter(fits_argv)


def expect_ok(check: Callable[[], Any]) -> bool:
    try:
        check()
    except BadInput:
        return False
    return True


def job_ids_of(snapshot: Any) -> set[str]:
    return {job.id for job in snapshot["jobs"]} if snapshot else set()


def job_ids(backend: Backend) -> set[str]:
    return job_ids_of(queue_snapshot(backend))


def command_of(backend: Backend, job_id: str) -> str:
    return all_jobs(backend)[job_id].command


def stored_config(backend: Backend) -> Config:
    async def read(store: Store) -> Config:
        return await store.config()

    return in_store(backend, read)


def assert_rejected(result: subprocess.CompletedProcess[str], backend: Backend, before: Any) -> str:
    message = assert_one_line_error(result, code=2)
    assert queue_snapshot(backend) == before, "a rejected command changed the queue"
    return message


# --- 1. one job on the command line -----------------------------------------------------------


def test_fuzzed_job_argument_is_stored_or_clearly_refused(backend: Backend, cli: Cli) -> None:
    seed(backend, dead=[SEEDED[0]], pending=SEEDED[1:])
    cwd = os.getcwd()

    @cli_settings(45)
    @given(text=job_arguments)
    @example(text='{"command": "true", "priority": ' + "[" * 20_000 + "]" * 20_000 + "}")
    @example(text='{"command": "true", "max_retries": ' + "9" * 5000 + "}")
    @example(text='{"command": "true", "timeout": 1e999}')
    @example(text='{"command": "true", "timeout": NaN}')
    @example(text='{"command": "echo \\ud800"}')
    @example(text='{"command": "true", "env": {"A": "\\udfff"}}')
    @example(text="echo \udcff")
    @example(text='{"command": "true", "run_at": "9999-12-31T23:59:59+00:00"}')
    @example(text='{"command": "true", "id": "' + "a" * 129 + '"}')
    def check(text: str) -> None:
        if text.lstrip().startswith("{"):
            ok = expect_ok(lambda: parse_job_json(text, cwd))
            given_id = parse_job_json(text, cwd).id if ok else None
            if given_id in job_ids(backend):
                ok = False  # a duplicate id
        else:
            ok = expect_ok(lambda: validate_command(text))
        before = queue_snapshot(backend)
        result = cli("enqueue", "--", text)
        assert "Traceback" not in result.stderr, (text, result.stderr)
        if ok:
            assert result.returncode == 0, (text, result.stdout, result.stderr)
            new_id = result.stdout.strip()
            assert job_ids(backend) == job_ids_of(before) | {new_id}
            assert command_of(backend, new_id) == (
                json.loads(text)["command"] if text.lstrip().startswith("{") else text
            )
        else:
            assert_rejected(result, backend, before)

    check()


# --- 2. many jobs from a file -----------------------------------------------------------------


def breaks_lines(text: str) -> bool:
    """Characters that str.splitlines() treats as line ends (\\x85, U+2028, ...)."""
    return any(len(f"a{char}b".splitlines()) > 1 for char in text)


@st.composite
def file_lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "object", "value", "text", "blank"]))
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t"]))
    if kind == "text":
        return draw(
            st.text(max_size=30).filter(lambda t: not breaks_lines(t) and expect_encodable(t))
        )
    if kind == "valid":
        value: Any = {"command": draw(st.sampled_from(["true", "echo hi", "sleep 0"]))}
        if draw(st.booleans()):
            value["id"] = draw(
                st.sampled_from(["f1", "f2", "f3", "f4", *SEEDED])
                | st.from_regex(ID_PATTERN, fullmatch=True)
            )
    else:
        value = draw(job_objects if kind == "object" else json_values)
    line = json.dumps(value, ensure_ascii=False, allow_nan=True)
    if breaks_lines(line) or not expect_encodable(line):
        line = json.dumps(value, allow_nan=True)  # \\u escapes: one line in any reader
    return line


def expect_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def file_oracle(lines: list[str], existing: set[str], cwd: str) -> tuple[str, Any]:
    """('ok', jobs), ('empty', None) or ('bad', {line numbers the error may name})."""
    line_of: dict[str, int] = {}
    jobs = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not expect_ok(lambda line=line: parse_job_json(line, cwd)):
            return "bad", {number}
        job_id = parse_job_json(line, cwd).id
        if job_id is not None:
            if job_id in line_of:
                return "bad", {number}
            line_of[job_id] = number
        jobs += 1
    if not jobs:
        return "empty", None
    taken = {number for job_id, number in line_of.items() if job_id in existing}
    return ("bad", taken) if taken else ("ok", jobs)


def test_fuzzed_job_file_is_all_or_nothing_naming_the_bad_line(backend: Backend, cli: Cli) -> None:
    seed(backend, dead=[SEEDED[0]], pending=SEEDED[1:])
    cwd = os.getcwd()
    path = backend.home / "jobs.jsonl"
    outcomes: dict[str, int] = {}

    @cli_settings(25)
    @given(lines=st.lists(file_lines(), min_size=1, max_size=40))
    def check(lines: list[str]) -> None:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kind, detail = file_oracle(lines, job_ids(backend), cwd)
        outcomes[kind] = outcomes.get(kind, 0) + 1
        before = queue_snapshot(backend)
        result = cli("enqueue", "--file", str(path))
        if kind == "ok":
            assert result.returncode == 0, (lines, result.stderr)
            plural = "" if detail == 1 else "s"
            assert result.stdout.strip() == f"enqueued {detail} job{plural}", result.stdout
            assert len(job_ids(backend)) == len(job_ids_of(before)) + detail
            return
        message = assert_rejected(result, backend, before)
        if kind == "empty":
            assert "holds no jobs" in message, message
        else:
            assert message.startswith(f"{path} line "), message
            number = int(message.removeprefix(f"{path} line ").split(":")[0])
            assert number in detail, (message, detail, lines)

    check()
    assert outcomes.get("bad", 0) > 0, outcomes


def test_json_lines_with_unicode_line_separators_in_strings(backend: Backend, cli: Cli) -> None:
    """JSON text may hold U+2028, U+2029 and U+0085 raw inside strings (json.dumps with
    ensure_ascii=False writes them so); a JSON Lines reader must split on \\n only."""
    path = backend.home / "jobs.jsonl"
    lines = [
        json.dumps({"id": "sep-1", "command": "echo 'a\u2028b'"}, ensure_ascii=False),
        json.dumps({"id": "sep-2", "command": "echo 'c\x85d'"}, ensure_ascii=False),
        json.dumps({"id": "sep-3", "command": "true"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("enqueue", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "enqueued 3 jobs"
    assert command_of(backend, "sep-1") == "echo 'a\u2028b'"
    assert command_of(backend, "sep-2") == "echo 'c\x85d'"

    bad = [lines[0], '{"command": 5}']
    path.write_text("\n".join(bad) + "\n", encoding="utf-8")
    before = queue_snapshot(backend)
    message = assert_rejected(cli("enqueue", "--file", str(path)), backend, before)
    assert message.startswith(f"{path} line 2: "), "the error names the wrong line"


# --- 3. configuration values ------------------------------------------------------------------

config_values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A\s?-?[0-9]{1,25}(\.[0-9]{0,6})?\s?(ms|s|m|h|d|k|KiB|mb|GiB|x)?\s?\Z"),
    st.integers(20, 400).map(lambda n: "9" * n),
    st.sampled_from(
        [
            "",
            " ",
            "none",
            "OFF",
            "nan",
            "inf",
            "-inf",
            "1e999",
            "-0",
            "0",
            "1",
            "1024",
            "1025",
            "0.5",
            "1GiB",
            "2GiB",
            "١٢",
            "１２",
        ]
    ),
).filter(fits_argv)


def test_fuzzed_config_values_are_stored_or_clearly_refused(backend: Backend, cli: Cli) -> None:
    seed(backend, pending=SEEDED[1:])

    @cli_settings(36)
    @given(key=st.sampled_from(sorted(CONFIG_KEYS)), value=config_values)
    def check(key: str, value: str) -> None:
        try:
            parsed = parse_config_value(key, value)
        except BadInput:
            ok = False
        else:
            ok = True
        before = queue_snapshot(backend)
        result = cli("config", "set", "--", key, value)
        assert "Traceback" not in result.stderr, (key, value, result.stderr)
        if not ok:
            assert_rejected(result, backend, before)
            return
        assert result.returncode == 0, (key, value, result.stderr)
        stored = stored_config(backend).get(key)
        assert stored == parsed and type(stored) is type(parsed), (key, value, stored, parsed)

    check()


@pytest.mark.parametrize(
    "key",
    ["output-limit", "max-retries", "concurrency", "backoff-base", "backoff-max", "job-timeout"],
)
def test_config_value_with_thousands_of_digits_is_a_clear_error(
    backend: Backend, cli: Cli, key: str
) -> None:
    """Python refuses int() of more than 4300 digits with a ValueError; a huge number is bad
    input like any other out-of-range value."""
    seed(backend, pending=SEEDED[1:])
    before = queue_snapshot(backend)
    message = assert_rejected(cli("config", "set", key, "9" * 5000), backend, before)
    assert key in message, message


# --- 4. garbage on the control socket of a live engine ----------------------------------------

HELLO = b'{"op":"hello","version":1}\n'

bad_kill_after = (
    st.text(max_size=5)
    | st.integers(max_value=-1)
    | st.floats(max_value=-1e-9)
    | st.lists(json_scalars, max_size=2)
    | st.dictionaries(st.text(max_size=3), json_scalars)
)
field_values = json_values | huge_ints | st.sampled_from([0, 1, 1024, 1025, -1, "", "x" * 300])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request object with a random op and random fields; never a valid `stop` (that would
    legitimately end the engine)."""
    op = draw(st.sampled_from([*OPS, "hello", "STATUS", "", "launch"]) | json_values)
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["op"] = op
    for name in ("concurrency", "id", "kill_after", "now", "version"):
        if draw(st.booleans()):
            message[name] = draw(field_values)
    message.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)))
    if message.get("op") == "stop":
        message["kill_after"] = draw(bad_kill_after)
    return message


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "hello+bytes", "hello+request", "request", "bad hello"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "hello+bytes":
        return HELLO + draw(st.binary(max_size=300))
    if kind == "bad hello":
        hello = {"op": "hello", "version": draw(field_values.filter(lambda v: v != 1))}
        return json.dumps(hello, allow_nan=True).encode() + b"\n"
    request = json.dumps(draw(requests()), allow_nan=True).encode() + b"\n"
    return (HELLO if kind == "hello+request" else b"") + request


def exchange(path: Path, payload: bytes) -> list[dict[str, Any]]:
    """Send the payload, close our side, read every reply line until the engine closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    assert data == b"" or data.endswith(b"\n"), data
    return [json.loads(line) for line in data.splitlines()]


def check_replies(payload: bytes, replies: list[dict[str, Any]], engine_pid: int) -> None:
    for reply in replies:
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), (payload, reply)
        if reply["ok"] is False:
            assert reply.get("end") is True, (payload, reply)
            error = reply.get("error")
            assert isinstance(error, str) and error and "\n" not in error, (payload, reply)
            assert "internal error" not in error, (payload, reply)
    if replies:
        assert replies[-1].get("end") is True or replies[-1].get("version") == 1, (payload, replies)
    if len(replies) > 1:
        assert replies[0] == {"ok": True, "version": 1, "pid": engine_pid}, (payload, replies)


def test_garbage_on_the_control_socket(
    home: Path, backend: Backend, cli: Cli, engines: StartEngine
) -> None:
    engine = engines("-c", "2")
    wait_for(engine.started, timeout=20)
    sock = home / SOCKET_NAME
    seen = {"replies": 0, "dropped": 0}

    @settings(max_examples=300, deadline=None)
    @given(payload=payloads())
    @example(payload=b"x" * (MAX_LINE + 10) + b"\n")
    @example(payload=HELLO + b"y" * (MAX_LINE + 10) + b"\n")
    @example(payload=HELLO + b'{"op":"scale","concurrency":' + b"9" * 5000 + b"}\n")
    @example(payload=HELLO + b'{"op":"scale","concurrency":1e999}\n')
    @example(payload=HELLO + b'{"op":"scale","concurrency":NaN}\n')
    @example(payload=HELLO + b'{"op":"scale","concurrency":true}\n')
    @example(payload=HELLO + b'{"op":"cancel","id":{"a":[1,{"b":null}]}}\n')
    @example(payload=HELLO + b'{"op":"follow","id":""}\n')
    @example(payload=HELLO + b'{"op":"stop","kill_after":"soon"}\n')
    @example(payload=HELLO + b'{"op":"stop","kill_after":-1}\n')
    @example(payload=HELLO + b'{"op":["status"]}\n')
    @example(payload=HELLO + b"\xff\xfe\x00\n")
    def check(payload: bytes) -> None:
        replies = exchange(sock, payload)
        check_replies(payload, replies, engine.pid)
        seen["replies" if replies else "dropped"] += 1
        assert engine.alive(), engine.log()

    check()
    assert seen["replies"] > 50, seen

    # Whatever the fuzz paused or scaled, set it back; then the engine must still work.
    cli("resume", check=True)
    cli("worker", "scale", "2", check=True)
    status = json.loads(cli("status", "--json", check=True).stdout)
    assert status["engine"]["running"] is True and status["engine"]["pid"] == engine.pid
    job_id = cli("enqueue", "--", "echo after-the-fuzz", check=True).stdout.strip()
    wait_for(
        lambda: job_state(backend, job_id) == "completed",
        timeout=20,
        message=f"a job enqueued after the fuzz did not complete:\n{engine.log()}",
    )
    assert engine.alive()
    log = engine.log()
    assert "Traceback" not in log and "control request failed" not in log, log


def test_deeply_nested_request_gets_a_clear_error(
    home: Path, cli: Cli, engines: StartEngine
) -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting: that is invalid input
    like any other, not an internal error with a traceback in the engine log."""
    engine = engines("-c", "1")
    wait_for(engine.started, timeout=20)
    sock = home / SOCKET_NAME
    deep = b"[" * 5000 + b"]" * 5000
    for payload in (
        b'{"op":"hello","version":' + deep + b"}\n",
        HELLO + b'{"op":"scale","concurrency":' + deep + b"}\n",
    ):
        replies = exchange(sock, payload)
        assert replies, "dropped without an answer"
        assert replies[-1]["ok"] is False, replies
        assert "internal error" not in replies[-1]["error"], replies
        assert engine.alive()
    assert "Traceback" not in engine.log(), engine.log()


@pytest.mark.parametrize("kill_after", [b"NaN", b"true"])
def test_stop_with_a_kill_after_that_is_not_seconds_is_refused(
    home: Path, backend: Backend, cli: Cli, engines: StartEngine, kill_after: bytes
) -> None:
    """`kill_after` is seconds >= 0: NaN (which Python's json accepts) and booleans are not;
    a refused stop leaves the engine running its jobs."""
    engine = engines("-c", "1")
    wait_for(engine.started, timeout=20)
    job_id = cli("enqueue", "--", "sleep 3", check=True).stdout.strip()
    wait_for(lambda: job_state(backend, job_id) == "processing", timeout=15)
    replies = exchange(
        home / SOCKET_NAME, HELLO + b'{"op":"stop","kill_after":' + kill_after + b"}\n"
    )
    assert len(replies) == 2, replies
    assert replies[1]["ok"] is False and "kill_after" in replies[1]["error"], replies
    assert engine.alive()
    assert job_state(backend, job_id) == "processing"
