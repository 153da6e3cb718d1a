"""The engine's own report of itself, for `queuectl status` (and, next, the dashboard)."""

from __future__ import annotations

import os
import time
from typing import Any

from queuectl.engine.dispatch import Engine


def snapshot(engine: Engine) -> dict[str, Any]:
    now = time.time()
    return {
        "id": engine.id,
        "pid": os.getpid(),
        "started_at": engine.started_at,
        "uptime": now - engine.started_at,
        "concurrency": engine.concurrency,
        "paused": engine.paused,
        "stopping": engine.stopping,
        "completed": engine.completed,
        "failed": engine.failed,
        "running_jobs": [
            {
                "id": slot.job.id,
                "command": slot.job.command,
                "attempt": slot.job.attempts,
                "elapsed": now - slot.started,
                "pid": slot.process.pid if slot.process else None,
            }
            for slot in engine.running.values()
            if not slot.released
        ],
    }
