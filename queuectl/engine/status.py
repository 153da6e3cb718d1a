"""The engine's report of itself: made by the engine (`snapshot`, the control channel's `status`
reply) and read by `queuectl status` (`EngineReport`), so that both sides of it live here.

The reply is internal (POSIX times, the protocol's own fields); what users and scripts see is
EngineReport.as_dict(): one documented schema (README, "status --json") with the same keys
whether an engine runs, does not, or does not answer (null where unknown), ISO 8601 UTC times
and durations in seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuectl.models import EngineRecord
from queuectl.render import iso

if TYPE_CHECKING:
    from queuectl.engine.dispatch import Engine


def snapshot(engine: Engine) -> dict[str, Any]:
    now = time.time()
    return {
        "id": engine.id,
        "pid": os.getpid(),
        "started_at": engine.started_at,
        "uptime": now - engine.started_at,
        "concurrency": engine.concurrency,
        "queues": None if engine.queues is None else list(engine.queues),
        "stopping": engine.stopping,
        "completed": engine.completed,
        "failed": engine.failed,
        "fenced": engine.executor.fenced,
        "running_jobs": [
            {
                "id": slot.job.id,
                "command": slot.job.command,
                "attempt": slot.job.attempts,
                "started_at": slot.started,
                "elapsed": now - slot.started,
                "pid": slot.process.pid if slot.process else None,
            }
            for slot in engine.running.values()
            if not slot.released
        ],
    }


@dataclass(frozen=True, slots=True)
class RunningJob:
    id: str
    command: str
    attempt: int
    pid: int | None
    started_at: float | None
    elapsed: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command,
            "attempt": self.attempt,
            "pid": self.pid,
            "started_at": iso(self.started_at),
            "elapsed": self.elapsed,
        }


@dataclass(frozen=True, slots=True)
class EngineReport:
    """What is known of the queue's engine on this host: everything when it answered, else
    whether the home's lock says one runs (and its pid) and why it did not answer."""

    running: bool
    pid: int | None = None
    id: str | None = None
    started_at: float | None = None
    uptime: float | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] | None = None  # the named queues it runs (None: every queue)
    stopping: bool | None = None
    completed: int | None = None  # since it started
    failed: int | None = None  # attempts that failed (retried or dead) since it started
    #: outcomes refused since it started: the job was no longer its own (rescued meanwhile)
    fenced: int | None = None
    running_jobs: tuple[RunningJob, ...] = ()
    error: str | None = None  # why a running engine did not answer

    @property
    def answered(self) -> bool:
        return self.concurrency is not None

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> EngineReport:
        """From the `status` reply; a field the engine did not send stays unknown."""
        jobs = tuple(
            RunningJob(
                id=str(job["id"]),
                command=str(job["command"]),
                attempt=int(job["attempt"]),
                pid=job.get("pid"),
                started_at=job.get("started_at"),
                elapsed=job.get("elapsed"),
            )
            for job in reply.get("running_jobs") or ()
        )
        return cls(
            running=True,
            pid=reply.get("pid"),
            id=reply.get("id"),
            started_at=reply.get("started_at"),
            uptime=reply.get("uptime"),
            concurrency=reply.get("concurrency"),
            queues=None if reply.get("queues") is None else tuple(reply["queues"]),
            stopping=reply.get("stopping"),
            completed=reply.get("completed"),
            failed=reply.get("failed"),
            fenced=reply.get("fenced"),
            running_jobs=jobs,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "id": self.id,
            "started_at": iso(self.started_at),
            "uptime": self.uptime,
            "concurrency": self.concurrency,
            "queues": None if self.queues is None else list(self.queues),
            "stopping": self.stopping,
            "completed": self.completed,
            "failed": self.failed,
            "fenced": self.fenced,
            "running_jobs": [job.as_dict() for job in self.running_jobs],
            "error": self.error,
        }


def registered_as_dict(engine: EngineRecord, lease_time: float) -> dict[str, Any]:
    """An engine as the database shows it (`status --json`'s "engines"; README): `state` is
    "live", "stopping" (asked to stop through the database) or "lost" (no heartbeat for longer
    than a lease: it died or is cut off, and its jobs are rescued by the others)."""
    state = "lost" if engine.lost(lease_time) else "stopping" if engine.stopping else "live"
    return {
        "id": engine.id,
        "host": engine.host,
        "pid": engine.pid,
        "version": engine.version,
        "concurrency": engine.concurrency,
        "state": state,
        "started_at": iso(engine.started_at),
        "heartbeat_at": iso(engine.heartbeat_at),
        "heartbeat_age": engine.heartbeat_age,
        "running_jobs": [
            {"id": job.id, "command": job.command, "started_at": iso(job.started_at)}
            for job in engine.jobs
        ],
    }
