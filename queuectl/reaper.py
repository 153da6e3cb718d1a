"""Kill the process groups that a crashed engine left running.

A job runs in its own session, so `kill -9` of the engine does not reach it. On recovery the
engine kills the group it recorded for the job, but only after checking that a process of that
group still carries the job's id in its environment: a recycled pid must never be killed.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)
PROC = Path("/proc")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _belongs_to(pid: int, job_id: str) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"QUEUECTL_JOB_ID={job_id}".encode() in environ.split(b"\0")


def kill_orphan_group(pgid: int, job_id: str) -> bool:
    """SIGKILL process group `pgid` if it still runs job `job_id`; True if it was killed."""
    if not PROC.is_dir() or pgid <= 1:
        return False
    if not any(_belongs_to(pid, job_id) for pid in _group_members(pgid)):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    log.info("killed process group %d left running by a dead engine for job %s", pgid, job_id)
    return True
