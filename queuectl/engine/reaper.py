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

from queuectl import procfs

log = logging.getLogger(__name__)


def kill_orphans(jobs: Collection[tuple[str, str]]) -> int:
    """SIGKILL the process groups running any (job id, engine id) pair; returns how many."""
    if not jobs or not procfs.available():
        return 0
    wanted = {(job_id.encode(), engine.encode()) for job_id, engine in jobs}
    own_group = os.getpgrp()
    groups: set[int] = set()
    for pid in procfs.pids():
        env = procfs.environ(pid)
        key = (env.get(b"QUEUECTL_JOB_ID", b""), env.get(b"QUEUECTL_ENGINE", b""))
        if key in wanted:
            group = procfs.process_group(pid)
            if group is not None and group != own_group:
                groups.add(group)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue
        log.info("killed process group %d left running by a dead engine", group)
    return len(groups)
