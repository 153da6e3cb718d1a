"""The engines of a database that many engines share, as `status` shows them to a human: one
line per engine (host, pid, busy slots, uptime, heartbeat, state), then its running jobs."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from queuectl import render_plain
from queuectl.models import EngineRecord
from queuectl.render import duration, printable, shorten


def engines(records: Sequence[EngineRecord], lease_time: float) -> None:
    if not records:
        return
    now = time.time()
    rows = []
    for engine in records:
        state = "lost" if engine.lost(lease_time) else "stopping" if engine.stopping else "live"
        slots = "?" if engine.concurrency is None else str(engine.concurrency)
        rows.append(
            (
                printable(engine.host),
                str(engine.pid),
                f"{len(engine.jobs)}/{slots}",
                duration(now - engine.started_at),
                f"{duration(engine.heartbeat_age)} ago",
                state,
            )
        )
    headers = ("HOST", "PID", "BUSY", "UP", "HEARTBEAT", "STATE")
    render_plain.table(sys.stdout, rows, headers, title="engines", right=(1, 2))
    jobs = [
        (
            printable(job.id),
            f"{printable(engine.host)}:{engine.pid}",
            duration(None if job.started_at is None else now - job.started_at),
            printable(shorten(job.command)),
        )
        for engine in records
        for job in engine.jobs
    ]
    if jobs:
        job_headers = ("ID", "ENGINE", "ELAPSED", "COMMAND")
        render_plain.table(sys.stdout, jobs, job_headers, title="running on the engines")
