"""Requests to this engine from other hosts, through the database: `worker stop --all` and
`cancel ID` of a job it runs, from any machine (the control socket reaches only this one).

Read every second: one indexed read per engine per second, so that a request is carried out
within a second whatever the backend's notifications do. A backend with one engine per queue
(SQLite) has none to give.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuectl.engine.dispatch import Engine

log = logging.getLogger("queuectl.engine")

POLL = 1.0  # seconds


class Requests:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop: str | None = None  # the stop already carried out ('finish' or 'kill')
        self._canceled: set[str] = set()

    async def keep(self) -> None:
        """Until cancelled; a failed read (a lost connection, reported by the dispatcher) is
        tried again at the next poll."""
        while True:
            await asyncio.sleep(POLL)
            try:
                await self.apply_once()
            except Exception as exc:
                log.debug("could not read the requests to this engine: %s", exc)

    async def apply_once(self) -> None:
        engine = self.engine
        asked = await engine.store.engine_requests(engine.id)
        if asked.stop is not None and asked.stop != self._stop and self._stop != "kill":
            self._stop = asked.stop
            kill = asked.stop == "kill"
            log.info(
                "stop requested through the database; %s",
                "killing the running jobs" if kill else "running jobs will finish",
            )
            engine.stop(kill=kill)
        self._canceled &= set(engine.running)
        for job_id in asked.cancel:
            if job_id not in self._canceled and engine.cancel(job_id):
                self._canceled.add(job_id)
                log.info("%s: cancel requested through the database", job_id)
