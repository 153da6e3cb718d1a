"""Crash injection for the reliability suite: inert unless QUEUECTL_FAULT is set.

QUEUECTL_FAULT=POINT[:TEXT] makes the engine SIGKILL itself at POINT of a job's life (`claim`:
right after the claim committed; `spawn`: right after the process started; `finish`: just
before the outcome is written), for jobs whose command contains TEXT (any job without it).
A real kill, not an exception, so the test sees exactly what a crash leaves behind.
"""

from __future__ import annotations

import os
import signal

POINTS = ("claim", "spawn", "finish")
_POINT, _, _TEXT = os.environ.get("QUEUECTL_FAULT", "").partition(":")


def crash_point(point: str, command: str) -> None:
    if point == _POINT and _TEXT in command:
        os.kill(os.getpid(), signal.SIGKILL)
