"""Leases: keep this engine's alive, and settle the jobs of engines that died.

A job in processing is held under its engine's lease. The engine renews its leases every third
of the lease time; a job whose lease ran out (or, where the store allows one engine only, any
job another engine holds) is an orphan: its leftover processes on this host are killed, then
the attempt is recorded as "the engine running the job died" and the retry rules apply.
"""

from __future__ import annotations

import asyncio
import logging
import time

from queuectl.config import Config
from queuectl.engine.execute import Executor
from queuectl.engine.reaper import kill_orphans
from queuectl.models import Outcome
from queuectl.states import ErrorKind
from queuectl.store import Store

log = logging.getLogger("queuectl.engine")


class Leases:
    def __init__(self, store: Store, owner: str, executor: Executor) -> None:
        self.store = store
        self.owner = owner
        self.executor = executor

    async def recover(self, config: Config) -> int:
        """Settle the jobs of engines that died: kill their leftovers, then retry or bury."""
        orphans = await self.store.orphans(self.owner)
        if not orphans:
            return 0
        await asyncio.to_thread(kill_orphans, [(job.id, job.lease_owner or "") for job in orphans])
        for job in orphans:
            outcome = Outcome(
                ErrorKind.ENGINE_DIED,
                error=f"the engine running the job died ({job.lease_owner})",
            )
            await self.executor.finish(job, outcome, config, time.time() - (job.started_at or 0))
        log.info(
            "recovered %d job%s left by a dead engine",
            len(orphans),
            "" if len(orphans) == 1 else "s",
        )
        return len(orphans)

    async def keep(self, config: Config) -> None:
        """Renew and rescue until cancelled. A failure (a full disk, a lost connection) is
        logged and retried at the next beat; anything that escapes ends the engine, since
        leases that silently lapse would let another engine run our jobs a second time."""
        while True:
            await asyncio.sleep(config.lease_time / 3)
            try:
                config = await self.store.config()
                await self.store.renew_leases(self.owner, config.lease_time)
                await self.recover(config)
            except Exception as exc:
                log.error("could not renew leases: %s", exc)
