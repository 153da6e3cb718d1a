"""Engines on many hosts, seen and steered through the database they share: `status` lists
every engine with its running jobs, `worker stop --all` and `cancel` of a job that runs on
another host are requests written here, which each engine reads every second
(engine/requests.py). Engines whose heartbeat stopped are cleaned up once their jobs were
rescued.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from queuectl.models import EngineJob, EngineRecord, EngineRequests
from queuectl.store.postgres_base import PostgresBase
from queuectl.store.postgres_db import Row, translated

#: engines whose heartbeat is this many leases old, holding nothing, are forgotten
FORGET_AFTER_LEASES = 2


class PostgresClusterOps(PostgresBase):
    @translated
    async def engines(self) -> list[EngineRecord]:
        return [_engine_of(row) for row in await self._fetch("engines")]

    @translated
    async def request_stop(self, engine_ids: Sequence[str] | None, kill: bool) -> list[str]:
        ids = None if engine_ids is None else list(engine_ids)
        rows = await self._fetch("request_stop", ids, "kill" if kill else "finish")
        return [str(row["id"]) for row in rows]

    @translated
    async def request_cancel(self, job_ids: Sequence[str]) -> list[str]:
        rows = await self._fetch("request_cancel", list(job_ids))
        return [str(row["id"]) for row in rows]

    @translated
    async def engine_requests(self, engine_id: str) -> EngineRequests:
        rows = await self._fetch("engine_requests", engine_id)
        stop: Literal["finish", "kill"] | None = None
        if rows and rows[0]["stop"] in ("finish", "kill"):
            stop = "kill" if rows[0]["stop"] == "kill" else "finish"
        cancel = tuple(str(job_id) for job_id in rows[0]["cancel"]) if rows else ()
        return EngineRequests(stop, cancel)

    async def _forget_lost_engines(self) -> None:
        """Run with each rescue of orphans: engines of any host that died without detaching,
        once their jobs were rescued."""
        lease_time = self._config_of(await self._fetch("get_config")).lease_time
        await self._execute("forget_lost_engines", FORGET_AFTER_LEASES * lease_time)


def _engine_of(row: Row) -> EngineRecord:
    jobs = tuple(
        EngineJob(str(job_id), str(command), None if started is None else float(started))
        for job_id, command, started in zip(
            row["job_ids"], row["job_commands"], row["job_started"], strict=True
        )
    )
    return EngineRecord(
        id=str(row["id"]),
        host=str(row["host"]),
        pid=int(row["pid"]),
        version=str(row["version"]),
        concurrency=None if row["concurrency"] is None else int(row["concurrency"]),
        started_at=float(row["started_at"]),
        heartbeat_at=float(row["heartbeat_at"]),
        heartbeat_age=float(row["heartbeat_age"]),
        stopping=row["stop_requested"] is not None,
        jobs=jobs,
    )
