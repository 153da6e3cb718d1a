"""Each way engine/child.py starts and watches a shell gives the same process: glibc's
posix_spawn, Popen where glibc is missing, and a waiting thread where pidfds are missing.
Real processes throughout."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from queuectl.engine import child as child_module
from queuectl.engine import spawn
from queuectl.engine.child import Child

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "MARK": "x y"}
SCRIPT = (
    'pwd; echo "$MARK"; echo oops >&2; ps -o sid= -p $$; grep -E "^Sig(Ign|Blk)" /proc/self/status;'
    " exit 3"
)


async def run(command: str, cwd: Path) -> tuple[Child, dict[int, bytes]]:
    output: dict[int, bytes] = {1: b"", 2: b""}

    def on_data(stream: int, data: bytes) -> None:
        output[stream] += data

    process = await Child.spawn(command, cwd=str(cwd), env=ENV, on_data=on_data)
    await asyncio.wait_for(process.exited.wait(), 10)
    await asyncio.wait_for(process.drained.wait(), 10)
    process.close()
    return process, output


def check(process: Child, output: dict[int, bytes], cwd: Path) -> None:
    lines = output[1].decode().splitlines()
    assert lines[:2] == [str(cwd), "x y"]
    assert int(lines[2]) == process.pid  # a session of its own, led by the shell
    masks = dict(line.split(":\t") for line in lines[3:5])
    assert int(masks["SigBlk"], 16) == 0  # nothing blocked
    for number in (signal.SIGPIPE, signal.SIGXFSZ):  # not ignored, as Python ignores them
        assert not int(masks["SigIgn"], 16) & (1 << (number - 1))
    assert output[2] == b"oops\n"
    assert process.returncode == 3


@pytest.fixture(params=["posix_spawn", "popen", "no-pidfd"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    if name == "popen":
        monkeypatch.setattr(spawn, "available", lambda: False)
    elif name == "no-pidfd":
        monkeypatch.setattr(child_module, "_PIDFD", False)
    return name


async def test_every_way_starts_the_same_process(way: str, tmp_path: Path) -> None:
    if way != "popen" and not spawn.available():
        pytest.skip("glibc's posix_spawn_file_actions_addchdir_np is not available here")
    process, output = await run(SCRIPT, tmp_path)
    check(process, output, tmp_path)


async def test_a_killed_shell_reports_the_signal(way: str, tmp_path: Path) -> None:
    process, _ = await run("kill -TERM $$", tmp_path)
    assert process.returncode == -15


async def test_a_missing_directory_is_an_os_error(way: str, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await Child.spawn("true", cwd=str(tmp_path / "gone"), env=ENV, on_data=print)


@pytest.mark.parametrize("env", [{"A=B": "1"}, {"A": "x\0y"}])
async def test_a_bad_environment_is_refused_before_anything_starts(
    way: str, tmp_path: Path, env: dict[str, str]
) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError):
        await Child.spawn("true", cwd=str(tmp_path), env=env, on_data=print)
    assert set(os.listdir("/proc/self/fd")) == before  # its pipes were closed again
