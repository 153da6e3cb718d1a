"""Engines on many hosts that share one database: stopping every one of them from anywhere.

`worker stop` reaches this host's engine through its control socket; `worker stop --all`
writes a stop request for every engine registered in the database, which each reads within a
second (engine/requests.py), then waits until each has detached. An engine that is lost (no
heartbeat for longer than a lease) cannot act on a request and is not waited for.
"""

from __future__ import annotations

import asyncio
import time

from queuectl.models import EngineRecord
from queuectl.service import Queue

WAIT_POLL = 0.2  # seconds between looks at the engines table while waiting


async def stop_all(queue: Queue, kill: bool) -> tuple[list[EngineRecord], list[EngineRecord]]:
    """Ask every registered engine to stop (killing their running jobs if `kill`); the live
    engines asked, and the lost ones. Both empty where engines do not register (SQLite)."""
    async with queue.store(create=False) as store:
        engines = await store.engines()
        if not engines:
            return [], []
        lease_time = (await store.config()).lease_time
        asked = set(await store.request_stop(None, kill))
    live = [e for e in engines if e.id in asked and not e.lost(lease_time)]
    return live, [e for e in engines if e.lost(lease_time)]


async def wait_detached(
    queue: Queue, engines: list[EngineRecord], kill_after: float | None
) -> None:
    """Until none of `engines` is registered any more; after `kill_after` seconds, the ones
    left are asked again, to kill their running jobs."""
    waiting = {engine.id for engine in engines}
    deadline = None if kill_after is None else time.monotonic() + kill_after
    async with queue.store(create=False) as store:
        while waiting:
            if deadline is not None and time.monotonic() >= deadline:
                await store.request_stop(sorted(waiting), kill=True)
                deadline = None
            await asyncio.sleep(WAIT_POLL)
            waiting &= {engine.id for engine in await store.engines()}
