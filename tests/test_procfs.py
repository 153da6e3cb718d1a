"""queuectl.procfs against real processes: running, zombie, gone, another user's, odd names.

Every process is started in its own session, so its process group holds only what the test
put there, and is killed and reaped when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import as_nobody, nobody_python, wait_for

from queuectl import procfs

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """`spawn(argv, env=None)`: a child in a new session, killed with its group at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def state(pid: int) -> bytes | None:
    fields = procfs.stat_fields(pid)
    return fields[0] if fields else None


def unused_pid() -> int:
    """pid_max is one more than the largest pid the kernel hands out."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_a_running_process_in_its_own_session(spawn: Spawn) -> None:
    env = {**os.environ, "QUEUECTL_JOB_ID": "job-1", "QUEUECTL_ENGINE": "engine-a=b"}
    proc = spawn(["sleep", "30"], env=env)
    wait_for(lambda: procfs.status(proc.pid).get("Name") == "sleep", timeout=5)

    assert procfs.alive(proc.pid)
    assert proc.pid in procfs.pids()
    fields = procfs.stat_fields(proc.pid)
    assert fields is not None and fields[0] in (b"S", b"R")
    assert int(fields[1]) == os.getpid()  # ppid
    assert procfs.process_group(proc.pid) == proc.pid  # a session leader leads its group
    assert procfs.group_members(proc.pid) == [proc.pid]
    assert proc.pid not in procfs.group_members(os.getpgrp())
    environ = procfs.environ(proc.pid)
    assert environ[b"QUEUECTL_JOB_ID"] == b"job-1"
    assert environ[b"QUEUECTL_ENGINE"] == b"engine-a=b"  # split at the first '=' only
    assert procfs.status(proc.pid)["PPid"] == str(os.getpid())


def test_our_own_process() -> None:
    pid = os.getpid()
    assert pid in procfs.pids()
    assert all(isinstance(other, int) and other > 0 for other in procfs.pids())
    assert procfs.alive(pid)
    assert procfs.process_group(pid) == os.getpgrp()
    assert pid in procfs.group_members(os.getpgrp())
    assert procfs.status(pid)["Pid"] == str(pid)


def test_every_member_of_a_group_and_none_once_it_is_killed(spawn: Spawn) -> None:
    proc = spawn(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    members = wait_for(lambda: len(got := procfs.group_members(proc.pid)) == 3 and got, timeout=5)
    assert proc.pid in members
    children = [pid for pid in members if pid != proc.pid]
    assert all(procfs.alive(pid) for pid in children)
    assert all(procfs.process_group(pid) == proc.pid for pid in children)

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    # the sleeps are orphans now: zombies until a reaper collects them, and not members then
    wait_for(lambda: procfs.group_members(proc.pid) == [], timeout=10)
    assert not any(procfs.alive(pid) for pid in children)


def test_a_zombie_is_not_alive_and_a_reaped_process_is_gone(spawn: Spawn) -> None:
    proc = spawn(["true"])
    wait_for(lambda: state(proc.pid) == b"Z", timeout=5)  # exited, not reaped: we never wait

    os.kill(proc.pid, 0)  # the kernel still answers for it...
    assert not procfs.alive(proc.pid)  # ...but it will never run again
    assert procfs.group_members(proc.pid) == []
    assert procfs.group_members(proc.pid, zombies=True) == [proc.pid]
    assert procfs.process_group(proc.pid) == proc.pid
    assert procfs.environ(proc.pid) == {}  # its memory is gone

    assert proc.wait(5) == 0
    assert procfs.stat_fields(proc.pid) is None
    assert procfs.process_group(proc.pid) is None
    assert procfs.group_members(proc.pid, zombies=True) == []
    assert procfs.environ(proc.pid) == {}
    assert procfs.status(proc.pid) == {}
    assert not procfs.alive(proc.pid)


def test_a_pid_that_does_not_exist() -> None:
    pid = unused_pid()
    assert pid not in procfs.pids()
    assert not procfs.alive(pid)
    assert procfs.stat_fields(pid) is None
    assert procfs.process_group(pid) is None
    assert procfs.group_members(pid, zombies=True) == []
    assert procfs.environ(pid) == {}
    assert procfs.status(pid) == {}


@pytest.mark.parametrize("name", ["a) b", "x) Z 1 1", "((", ") )"])
def test_a_command_name_with_parentheses_and_spaces(
    spawn: Spawn, tmp_path: Path, name: str
) -> None:
    """The name is cut at the last ')': 'x) Z 1 1' would otherwise read as a zombie in group 1."""
    program = tmp_path / name
    shutil.copy("/bin/sleep", program)
    proc = spawn([str(program), "30"])
    wait_for(lambda: procfs.status(proc.pid).get("Name") == name, timeout=5)

    fields = procfs.stat_fields(proc.pid)
    assert fields is not None and fields[0] in (b"S", b"R"), fields
    assert int(fields[1]) == os.getpid()
    assert procfs.process_group(proc.pid) == proc.pid
    assert procfs.alive(proc.pid)
    assert procfs.group_members(proc.pid) == [proc.pid]


def test_another_users_process_is_alive_and_its_environment_unreadable(spawn: Spawn) -> None:
    """Run procfs as user nobody against a root process: signal 0 is refused (EPERM), which
    means the process exists, and /proc/PID/environ cannot be read."""
    python = nobody_python()  # skips unless root
    proc = spawn(["sleep", "30"], env={**os.environ, "QUEUECTL_JOB_ID": "secret"})
    wait_for(lambda: procfs.status(proc.pid).get("Name") == "sleep", timeout=5)
    gone = unused_pid()
    # procfs needs only the standard library: its source runs as it is, even where nobody
    # cannot read this checkout or its virtualenv
    code = Path(procfs.__file__).read_text() + (
        f"\nprint(alive({proc.pid}), environ({proc.pid}), process_group({proc.pid}), alive({gone}))"
    )
    result = as_nobody([python, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"True {{}} {proc.pid} False"
