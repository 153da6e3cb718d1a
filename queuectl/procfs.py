"""The one reader of /proc, for what signals cannot tell: zombies, process groups, environments.

Signal 0 cannot tell a zombie from a running process, nor find a process by its environment;
the engine needs both (a group is over when only zombies are left, a dead engine's jobs are
found by what it put in their environment). Any process can exit between being listed and being
read, so every reader answers "gone" (None, [] or {}) instead of raising.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

PROC = "/proc"


def available() -> bool:
    """Without procfs (not Linux, or a sandbox without it) callers must trust signals alone."""
    return os.path.isdir(PROC)


def pids() -> Iterator[int]:
    """Empty without /proc, so a scan finds nothing rather than failing."""
    try:
        entries = os.listdir(PROC)
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            yield int(entry)


def _read(pid: int, name: str) -> bytes | None:
    try:
        with open(f"{PROC}/{pid}/{name}", "rb") as file:
            return file.read()
    except OSError:  # gone, or another user's and unreadable
        return None


def stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat after the command name: [0] state, [1] ppid, [2] pgrp, ... (proc(5)'s
    field n is [n - 3]); None if the process is gone.

    The name is cut at the last ')': it may hold ')' and spaces, and a program that names
    itself 'x) Z 1 1' must not be able to forge its own state or group."""
    stat = _read(pid, "stat")
    if stat is None:
        return None
    end = stat.rfind(b")")
    return stat[end + 2 :].split() if end >= 0 else None


def process_group(pid: int) -> int | None:
    """Jobs are killed by group, since a job's shell may have children the engine never saw."""
    fields = stat_fields(pid)
    return int(fields[2]) if fields is not None and len(fields) > 2 else None


def alive(pid: int) -> bool:
    """A zombie is not alive: it has exited and only waits for its parent (or init) to reap it.

    The kernel decides first (signal 0), so this costs no /proc read for a pid that is gone;
    another user's process (PermissionError) exists, so it counts as alive. Without procfs a
    zombie cannot be told apart, and the kernel's answer stands."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = stat_fields(pid)
    if fields is None:
        return not available()  # gone while we looked, or no procfs to ask
    return fields[:1] != [b"Z"]


def group_members(pgid: int, *, zombies: bool = False) -> list[int]:
    """The processes of group `pgid` that still run; with `zombies`, unreaped ones too.

    killpg(pgid, 0) cannot answer this: it succeeds while the group holds only zombies, and an
    orphaned zombie may wait seconds for init."""
    found: list[int] = []
    for pid in pids():
        fields = stat_fields(pid)
        if fields is None or len(fields) < 3 or int(fields[2]) != pgid:
            continue
        if zombies or fields[0] != b"Z":
            found.append(pid)
    return found


def environ(pid: int) -> dict[bytes, bytes]:
    """The environment the process started with (later changes do not show); {} when gone or
    unreadable (another user's). Bytes, because an environment need not be text."""
    raw = _read(pid, "environ")
    env: dict[bytes, bytes] = {}
    for entry in (raw or b"").split(b"\0"):
        if entry:
            name, _, value = entry.partition(b"=")
            env[name] = value
    return env


def status(pid: int) -> dict[str, str]:
    """/proc/PID/status by key (VmRSS, VmHWM, SigIgn, ...), values stripped; {} when gone.

    Decoded leniently: the Name line is the program's own choice of bytes."""
    raw = _read(pid, "status")
    fields: dict[str, str] = {}
    for line in (raw or b"").decode(errors="replace").splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields
