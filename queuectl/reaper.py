"""Kill the processes that a crashed engine's jobs left running.

A job runs in its own session, so `kill -9` of the engine does not reach it. Recorded pids are
not enough: the engine can die between starting a process and writing its pid, and a recorded
pid may since belong to someone else. So the processes are found by what the engine put in
their environment, QUEUECTL_JOB_ID and QUEUECTL_ENGINE (which engine ran them), and only those
process groups are killed. A job that scrubs its environment escapes this; it is documented.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)
PROC = Path("/proc")


def _environ(pid: str) -> dict[bytes, bytes]:
    try:
        raw = (PROC / pid / "environ").read_bytes()
    except OSError:
        return {}
    return dict(entry.partition(b"=")[::2] for entry in raw.split(b"\0") if entry)


def _group_of(pid: str) -> int | None:
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[2]) if len(fields) > 2 else None


def kill_orphans(jobs: Collection[tuple[str, str]]) -> int:
    """SIGKILL the process groups running any (job id, engine id) pair; returns how many."""
    if not jobs or not PROC.is_dir():
        return 0
    wanted = {(job_id.encode(), engine.encode()) for job_id, engine in jobs}
    own_group = os.getpgrp()
    groups: set[int] = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(entry.name)
        key = (env.get(b"QUEUECTL_JOB_ID", b""), env.get(b"QUEUECTL_ENGINE", b""))
        if key in wanted:
            group = _group_of(entry.name)
            if group is not None and group != own_group:
                groups.add(group)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue
        log.info("killed process group %d left running by a dead engine", group)
    return len(groups)
