"""Execution statistics, for `queuectl status`, the dashboard's chart and its metrics: jobs
completed and failed in the last minute and hour, per minute, their mean and 95th percentile
duration, and the current throughput.

They are computed from what the queue stores (Store.finished_since: the jobs whose last attempt
ended in the window), not from any process's memory, so every front end on every host shows the
same figures, with or without an engine. What is counted is each job's latest attempt: a job
that failed and was retried within the window counts once, as it last ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuectl.models import Ended, Job
from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.service import Queue
    from queuectl.store import Store

WINDOW = 3600.0  # the last hour
MINUTE = 60.0
#: the most finished jobs read for one computation: beyond it (a sustained 14 jobs a second
#: over the hour) the figures cover the newest LIMIT jobs and say so (`capped`)
LIMIT = 50_000
#: what counts as failed: a last attempt that did not succeed (canceled jobs are neither)
FAILED = frozenset({JobState.FAILED, JobState.DEAD})


@dataclass(frozen=True, slots=True)
class Minute:
    start: float  # POSIX time of the minute's start
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class ExecStats:
    now: float
    completed_minute: int
    failed_minute: int
    completed_hour: int
    failed_hour: int
    #: of the attempts that completed or failed in the last hour; None when there were none
    mean_duration: float | None
    p95_duration: float | None
    #: jobs finished (completed or failed) per minute, over the last minute
    throughput: float
    minutes: tuple[Minute, ...]  # the last 60 minutes, oldest first (the current one last)
    capped: bool  # more than LIMIT jobs ended in the hour: the figures cover the newest LIMIT

    def as_dict(self) -> dict[str, Any]:
        from queuectl.render import iso

        return {
            "completed_last_minute": self.completed_minute,
            "failed_last_minute": self.failed_minute,
            "completed_last_hour": self.completed_hour,
            "failed_last_hour": self.failed_hour,
            "mean_duration": self.mean_duration,
            "p95_duration": self.p95_duration,
            "throughput_per_minute": self.throughput,
            "capped": self.capped,
            "per_minute": [
                {"start": iso(m.start), "completed": m.completed, "failed": m.failed}
                for m in self.minutes
            ],
        }


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values` (sorted or not); None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def compute(jobs: Sequence[Ended | Job], now: float, capped: bool = False) -> ExecStats:
    """The statistics of the jobs that ended in the hour before `now` (pure: tests and the
    metrics share it)."""
    first = math.floor(now / MINUTE) * MINUTE - (59 * MINUTE)
    completed = [0] * 60
    failed = [0] * 60
    durations: list[float] = []
    last_minute = [0, 0]
    for job in jobs:
        if job.finished_at is None or job.finished_at < now - WINDOW:
            continue
        ok = job.state is JobState.COMPLETED
        if not ok and job.state not in FAILED:
            continue
        index = int((job.finished_at - first) // MINUTE)
        if 0 <= index < 60:
            (completed if ok else failed)[index] += 1
        if job.finished_at >= now - MINUTE:
            last_minute[0 if ok else 1] += 1
        if job.started_at is not None:
            durations.append(max(0.0, job.finished_at - job.started_at))
    minutes = tuple(
        Minute(first + i * MINUTE, completed[i], failed[i]) for i in range(len(completed))
    )
    return ExecStats(
        now=now,
        completed_minute=last_minute[0],
        failed_minute=last_minute[1],
        completed_hour=sum(completed),
        failed_hour=sum(failed),
        mean_duration=sum(durations) / len(durations) if durations else None,
        p95_duration=percentile(durations, 0.95),
        throughput=float(sum(last_minute)),
        minutes=minutes,
        capped=capped,
    )


async def read(store: Store, now: float | None = None) -> ExecStats:
    moment = time.time() if now is None else now
    ended = await store.ended_since(moment - WINDOW, LIMIT)
    return compute(ended, moment, capped=len(ended) >= LIMIT)


async def stats(queue: Queue) -> ExecStats:
    """For `queuectl status`: reads only (a queue that does not exist is an error)."""
    async with queue.store(create=False) as store:
        return await read(store)
