"""The runner against real shell processes: capture, errors, timeouts, kills and stragglers.

A process counts as gone when it is no longer running: a zombie is dead, but it must be reaped
soon (the shell at once, by us; an orphaned grandchild within seconds, by init).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from helpers import async_wait_for

from queuectl import procfs
from queuectl.engine.runner import JobProcess, OutputRecord, Tail
from queuectl.errors import SpawnError
from queuectl.models import Chunk, Outcome
from queuectl.states import ErrorKind, KillReason, OutcomeKind

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
Spawn = Callable[..., Awaitable[JobProcess]]


# --- looking at processes ---------------------------------------------------------------------


def running(pid: int) -> bool:
    return procfs.alive(pid)


def running_in_group(pgid: int) -> list[int]:
    return procfs.group_members(pgid)


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


async def assert_no_survivors(proc: JobProcess, pids: Sequence[int] = ()) -> None:
    assert running_in_group(proc.pid) == []
    assert [pid for pid in pids if running(pid)] == []
    with pytest.raises(ProcessLookupError):  # the shell is our child: already reaped
        os.kill(proc.pid, 0)
    await async_wait_for(
        lambda: all(procfs.stat_fields(pid) is None for pid in pids),
        timeout=15,
        message=f"zombies never reaped: {pids}",
    )


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """JobProcess.spawn with test defaults; whatever a failing test leaves behind is killed."""
    started: list[JobProcess] = []

    async def start(
        command: str,
        *,
        cwd: str = "/",
        env: dict[str, str] | None = None,
        output_limit: int = 65536,
        **kwargs: object,
    ) -> JobProcess:
        proc = await JobProcess.spawn(
            command, cwd=cwd, env=ENV if env is None else env, output_limit=output_limit, **kwargs
        )  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


async def run(
    spawn: Spawn, command: str, timeout: float | None = None, grace: float = 2.0, **kwargs: object
) -> Outcome:
    proc = await spawn(command, **kwargs)
    return await proc.wait(timeout, grace)


# --- Tail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 7, 100])
@pytest.mark.parametrize("sizes", [[], [3], [7], [150], [1] * 300, [5, 0, 90, 2, 7, 1, 64, 33]])
def test_tail_keeps_the_last_bytes(limit: int, sizes: list[int]) -> None:
    tail, written = Tail(limit), b""
    for n, size in enumerate(sizes):
        chunk = bytes((n + i) % 251 for i in range(size))
        tail.append(chunk)
        written += chunk
        assert tail.value() == (written[-limit:] if limit else b"")
        assert tail.truncated == (len(written) > limit)
        assert tail.total == len(written)


def test_tail_memory_is_bounded() -> None:
    tail = Tail(1000)
    for _ in range(10_000):
        tail.append(b"y" * 333)
        assert len(tail._buf) <= 2 * 1000 + 333
    assert tail.value() == b"y" * 1000


def test_tail_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        Tail(-1)


# --- OutputRecord: both streams in order, each bounded -----------------------------------------


def _expected_record(writes: list[tuple[str, bytes]], limit: int) -> list[tuple[str, int]]:
    """Byte by byte, what a record of `limit` per stream keeps: each stream's last bytes, in
    the order written."""
    flat = [(stream, byte) for stream, data in writes for byte in data]
    keep: set[int] = set()
    for stream in ("stdout", "stderr"):
        positions = [i for i, (s, _) in enumerate(flat) if s == stream]
        keep |= set(positions[max(0, len(positions) - limit) :] if limit else [])
    return [flat[i] for i in sorted(keep)]


@pytest.mark.parametrize("limit", [0, 1, 5, 64])
@pytest.mark.parametrize("seed", range(40))
def test_output_record_keeps_each_streams_tail_in_order(limit: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    record, writes = OutputRecord(limit), []
    for _ in range(rng.randrange(1, 80)):
        stream = rng.choice(["stdout", "stderr"])
        data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 7, 40, 100])))
        record.append(stream, data)  # type: ignore[arg-type]
        writes.append((stream, data))
        chunks = record.chunks()
        assert [(c.stream, b) for c in chunks for b in c.data] == _expected_record(writes, limit)
        assert all(c.data for c in chunks)
        assert all(a.stream != b.stream for a, b in itertools.pairwise(chunks)), chunks
        for name in ("stdout", "stderr"):
            written = b"".join(d for s, d in writes if s == name)
            assert record.value(name) == (written[-limit:] if limit else b"")  # type: ignore[arg-type]
            assert record.truncated(name) == (len(written) > limit)  # type: ignore[arg-type]


def test_output_record_memory_is_bounded_however_interleaved() -> None:
    """One byte to each stream in turn is the worst case for the order's bookkeeping: it must
    still not grow with what is written, only with what is kept."""
    record = OutputRecord(1000)
    for n in range(200_000):
        record.append("stdout" if n % 2 else "stderr", b"x")
    assert len(record._runs) <= 2 * 1000 + 1
    assert len(record._tails["stdout"]._buf) <= 2 * 1000 + 1
    chunks = record.chunks()
    assert len(chunks) == 2000 and sum(len(c.data) for c in chunks) == 2000
    record.append("stdout", b"y" * 5000)  # one chunk larger than the limit
    assert [c.stream for c in record.chunks()][-1] == "stdout"
    assert record.value("stdout") == b"y" * 1000
    assert b"".join(c.data for c in record.chunks() if c.stream == "stdout") == b"y" * 1000
    assert len([c for c in record.chunks() if c.stream == "stderr"]) == 1  # rejoined


# --- results ----------------------------------------------------------------------------------


async def test_success_captures_both_streams(spawn: Spawn) -> None:
    started = time.monotonic()
    result = await run(spawn, "echo out; echo err >&2")
    assert 0 <= time.monotonic() - started < 30
    assert result.exit_code == 0 and result.error is None
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert sorted(result.chunks()) == [Chunk("stderr", b"err\n"), Chunk("stdout", b"out\n")]
    assert not (result.stdout_truncated or result.stderr_truncated)
    assert result.error_kind is None and result.kind is OutcomeKind.SUCCESS


async def test_failure_names_the_exit_code_and_last_stderr_line(spawn: Spawn) -> None:
    result = await run(spawn, "echo noise >&2; echo '  boom  ' >&2; echo >&2; exit 3")
    assert result.exit_code == 3
    assert result.error == "exit code 3 (stderr: boom)"
    assert result.error_kind is ErrorKind.EXIT and result.kind is OutcomeKind.FAILURE


async def test_failure_without_stderr_and_long_stderr_lines(spawn: Spawn) -> None:
    result = await run(spawn, "exit 4")
    assert (result.error, result.error_kind) == ("exit code 4", ErrorKind.EXIT)
    error = (await run(spawn, "printf '%0500d' 0 >&2; exit 1")).error
    assert error is not None and error.startswith("exit code 1 (stderr: 000")
    assert len(error) < 250


async def test_command_not_found(spawn: Spawn) -> None:
    result = await run(spawn, "no-such-command-qctl")
    assert (result.exit_code, result.error_kind) == (127, ErrorKind.EXIT)
    assert result.error is not None
    assert result.error.startswith("exit code 127: command not found (stderr: ")
    assert "no-such-command-qctl" in result.error


async def test_not_executable(spawn: Spawn, tmp_path: Path) -> None:
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    result = await run(spawn, "./script", cwd=str(tmp_path))
    assert (result.exit_code, result.error_kind) == (126, ErrorKind.EXIT)
    assert result.error is not None
    assert result.error.startswith("exit code 126: permission denied or not executable")


async def test_death_by_signal(spawn: Spawn) -> None:
    result = await run(spawn, "kill -KILL $$")
    assert result.exit_code is None
    assert result.error == "killed by signal SIGKILL"
    assert result.error_kind is ErrorKind.EXIT  # a signal of its own, not a kill by us


async def test_env_is_the_whole_environment(spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_TEST_LEAK", "leaked")
    result = await run(spawn, 'echo "$FOO ${QUEUECTL_TEST_LEAK-unset}"', env={**ENV, "FOO": "bar"})
    assert result.stdout == b"bar unset\n"


async def test_cwd_is_used(spawn: Spawn, tmp_path: Path) -> None:
    assert (await run(spawn, "pwd", cwd=str(tmp_path))).stdout == f"{tmp_path}\n".encode()


async def test_bad_cwd_is_a_permanent_spawn_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(SpawnError, match=f"^working directory '{missing}' does not exist$") as err:
        await JobProcess.spawn("true", cwd=str(missing), env=ENV, output_limit=10)
    assert err.value.permanent
    (tmp_path / "file").write_text("")
    with pytest.raises(SpawnError, match="is not a directory") as err:
        await JobProcess.spawn("true", cwd=str(tmp_path / "file"), env=ENV, output_limit=10)
    assert err.value.permanent


async def test_a_spawn_error_that_goes_away_is_not_permanent() -> None:
    with pytest.raises(SpawnError, match="could not start the command") as err:
        await JobProcess.spawn("true", cwd="/", env={"BAD\0NAME": "x"}, output_limit=10)
    assert not err.value.permanent


# --- output in order --------------------------------------------------------------------------


async def test_output_keeps_the_order_of_the_streams(spawn: Spawn) -> None:
    """Each write waits until the engine has read the one before, so the order is the job's:
    the pause between writes is what tells them apart (see OutputRecord)."""
    steps = ["echo one", "echo e1 >&2", "printf two", "printf e2 >&2", "echo three", "echo e3 >&2"]
    result = await run(spawn, "; sleep 0.1; ".join(steps))
    assert result.chunks() == (
        Chunk("stdout", b"one\n"),
        Chunk("stderr", b"e1\n"),
        Chunk("stdout", b"two"),
        Chunk("stderr", b"e2"),
        Chunk("stdout", b"three\n"),
        Chunk("stderr", b"e3\n"),
    )
    assert (result.stdout, result.stderr) == (b"one\ntwothree\n", b"e1\ne2e3\n")
    assert result.output == result.chunks()


async def test_ordered_output_beyond_the_limit_drops_each_streams_oldest(spawn: Spawn) -> None:
    command = (
        r"head -c 3000 /dev/zero | tr '\0' a; sleep 0.1; echo E1 >&2; sleep 0.1; "
        r"head -c 3000 /dev/zero | tr '\0' b; sleep 0.1; echo E2 >&2"
    )
    result = await run(spawn, command, output_limit=1000)
    assert result.chunks() == (
        Chunk("stderr", b"E1\n"),
        Chunk("stdout", b"b" * 1000),
        Chunk("stderr", b"E2\n"),
    )
    assert result.stdout_truncated and not result.stderr_truncated


# --- output limits ----------------------------------------------------------------------------


async def test_output_beyond_the_limit_keeps_the_tail(spawn: Spawn) -> None:
    result = await run(
        spawn, r"head -c 5000000 /dev/zero | tr '\0' x; echo y; echo e >&2", output_limit=1000
    )
    assert result.exit_code == 0
    assert result.stdout == b"x" * 998 + b"y\n"
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stderr == b"e\n"


def _rss_kib() -> int:
    return int(procfs.status(os.getpid())["VmRSS"].split()[0])


async def test_huge_output_without_newlines_keeps_memory_bounded(spawn: Spawn) -> None:
    baseline, peak = _rss_kib(), [0]

    def sample(stream: str, chunk: bytes) -> None:
        peak[0] = max(peak[0], _rss_kib())

    result = await run(
        spawn, "head -c 50000000 /dev/zero", output_limit=1_000_000, on_output=sample
    )
    assert result.exit_code == 0
    assert result.stdout == bytes(1_000_000) and result.stdout_truncated
    assert max(peak[0], _rss_kib()) - baseline < 30 * 1024


async def test_live_output_arrives_while_the_job_runs(spawn: Spawn) -> None:
    chunks: list[tuple[str, bytes]] = []
    proc = await spawn(
        "echo first; sleep 1; echo second; echo e >&2",
        on_output=lambda stream, chunk: chunks.append((stream, chunk)),
    )
    task = asyncio.create_task(proc.wait(None, 2.0))
    await async_wait_for(lambda: chunks, timeout=10)
    assert not task.done()
    assert chunks[0] == ("stdout", b"first\n")
    assert proc.output() == (Chunk("stdout", b"first\n"),)
    result = await task
    assert b"".join(c for s, c in chunks if s == "stdout") == result.stdout == b"first\nsecond\n"
    assert b"".join(c for s, c in chunks if s == "stderr") == b"e\n"


async def test_a_failing_output_callback_does_not_break_capture(spawn: Spawn) -> None:
    def broken(stream: str, chunk: bytes) -> None:
        raise RuntimeError("follower went away")

    result = await run(spawn, "echo a; sleep 0.1; echo b", on_output=broken)
    assert (result.exit_code, result.stdout) == (0, b"a\nb\n")


# --- ending processes -------------------------------------------------------------------------


async def test_timeout_kills_the_whole_group(spawn: Spawn, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"sleep 300 & echo $$ $! > {pids}; sleep 300")
    result = await proc.wait(1.0, 2.0)
    assert result.error_kind is ErrorKind.TIMEOUT and result.exit_code is None
    assert result.kind is OutcomeKind.FAILURE
    assert result.error == "timed out after 1s; process group killed"
    await assert_no_survivors(proc, read_pids(pids))


async def test_a_job_ignoring_sigterm_is_sigkilled_after_the_grace(
    spawn: Spawn, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; sleep 300")
    started = time.monotonic()
    result = await proc.wait(0.5, 1.0)
    took = time.monotonic() - started
    assert 1.4 <= took < 10
    assert result.error_kind is ErrorKind.TIMEOUT and result.exit_code is None
    assert result.error == "timed out after 0.5s; process group killed"
    await assert_no_survivors(proc, read_pids(pids))


@pytest.mark.parametrize(
    "command",
    [
        "sh -c 'sleep 300 & echo $! > {pids}; echo hi'",
        "(sleep 300 & echo $! > {pids}); echo hi",
        "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {pids}; echo hi",
    ],
)
async def test_stragglers_are_killed_when_the_shell_exits(
    spawn: Spawn, tmp_path: Path, command: str
) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(command.format(pids=pids))
    started = time.monotonic()
    result = await proc.wait(None, 2.0)
    assert time.monotonic() - started < 3
    assert (result.exit_code, result.error, result.stdout) == (0, None, b"hi\n")
    assert result.error_kind is None
    await assert_no_survivors(proc, read_pids(pids))


async def test_a_pipe_held_by_another_session_does_not_hang(spawn: Spawn, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"setsid sleep 300 & echo $! > {pids}; echo hi")
    try:
        started = time.monotonic()
        result = await proc.wait(None, 2.0)
        assert time.monotonic() - started < 3
        assert (result.exit_code, result.stdout) == (0, b"hi\n")
    finally:
        for pid in read_pids(pids):
            os.kill(pid, signal.SIGKILL)


async def test_kill_returns_promptly_with_the_reason(spawn: Spawn, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"sleep 300 & echo $$ $! > {pids}; sleep 300")
    task = asyncio.create_task(proc.wait(None, 5.0))
    await async_wait_for(pids.exists)
    started = time.monotonic()
    proc.kill(KillReason.CANCEL)
    proc.kill(KillReason.STOP)  # a second reason is ignored
    result = await task
    assert time.monotonic() - started < 3
    assert result.error_kind is KillReason.CANCEL.error_kind is ErrorKind.CANCELED
    assert result.error == KillReason.CANCEL.message == "canceled by user"
    assert result.kind is OutcomeKind.CANCELED
    await assert_no_survivors(proc, read_pids(pids))
    proc.kill(KillReason.STOP)  # after the end: harmless


async def test_kill_before_wait_and_with_its_own_grace(spawn: Spawn, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"trap '' TERM; echo $$ > {pids}; sleep 300")
    await async_wait_for(pids.exists)
    proc.kill(KillReason.STOP, grace=0.3)
    started = time.monotonic()
    result = await proc.wait(None, 60.0)
    assert time.monotonic() - started < 10
    assert result.error_kind is KillReason.STOP.error_kind is ErrorKind.INTERRUPTED
    assert result.error == KillReason.STOP.message == "interrupted: the engine was stopped"
    assert result.kind is OutcomeKind.INTERRUPTED and result.exit_code is None
    await assert_no_survivors(proc, read_pids(pids))


async def test_cancelling_wait_still_kills_and_reaps(spawn: Spawn, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = await spawn(f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; sleep 300")
    task = asyncio.create_task(proc.wait(None, 0.5))
    await async_wait_for(pids.exists)
    await asyncio.sleep(0.2)  # a task cancelled before it first runs never enters wait() at all
    task.cancel()
    await asyncio.sleep(0.1)
    task.cancel()  # a second cancel must not cut the cleanup short
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_no_survivors(proc, read_pids(pids))


# --- under uvloop, which the engine may use ---------------------------------------------------


def test_the_same_under_uvloop(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        pids = tmp_path / "pids"
        proc = await JobProcess.spawn(
            f"sh -c 'sleep 300 & echo $! > {pids}; echo hi'", cwd="/", env=ENV, output_limit=100
        )
        result = await proc.wait(None, 2.0)
        assert (result.exit_code, result.stdout) == (0, b"hi\n")
        await assert_no_survivors(proc, read_pids(pids))
        proc = await JobProcess.spawn("sleep 300", cwd="/", env=ENV, output_limit=100)
        result = await proc.wait(0.3, 2.0)
        assert result.error_kind is ErrorKind.TIMEOUT
        await assert_no_survivors(proc)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
