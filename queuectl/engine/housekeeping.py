"""Housekeeping: the engine purges finished jobs older than config `retention` and drops the
output of attempts older than `output-retention`, so that a queue left running for months does
not grow without bound.

It runs as a side task of the engine, watched like the lease keeper. The store does the work
in short batches (each its own transaction), so purging a million jobs never keeps the engine
from claiming and finishing jobs for more than a moment. A failed pass (a busy or full disk) is
logged and tried again at the next one; only a bug escapes, and the engine then stops rather
than run on with a queue that silently grows.
"""

from __future__ import annotations

import asyncio
import logging

from queuectl.config import Config
from queuectl.states import FINISHED
from queuectl.store import Store

log = logging.getLogger("queuectl.engine")

#: seconds between passes at most ("every minute or so")
INTERVAL = 60.0
#: and at least: a pass costs an index lookup or two even when there is nothing to do
MIN_INTERVAL = 1.0


def interval(config: Config) -> float:
    """A quarter of the shortest retention, within [MIN_INTERVAL, INTERVAL]: jobs then outlive
    their retention by at most a quarter of it (or a minute)."""
    periods = [p for p in (config.retention, config.output_retention) if p is not None]
    return max(MIN_INTERVAL, min([INTERVAL, *(p / 4 for p in periods)]))


class Housekeeping:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.purged = 0  # jobs purged since the engine started
        self.dropped = 0  # attempts whose output was dropped

    async def keep(self) -> None:
        """A pass at once, then one every `interval` until cancelled; the config is read at
        each pass, so `config set retention` takes effect without a restart."""
        config = Config()
        while True:
            try:
                config = await self.store.config()
                await self.run_once(config)
            except Exception as exc:  # the last config read still sets the pace
                log.error("housekeeping failed (tried again later): %s", exc)
            await asyncio.sleep(interval(config))

    async def run_once(self, config: Config) -> None:
        if config.retention is not None:
            purged = await self.store.purge(FINISHED, config.retention)
            self.purged += purged
            if purged:
                log.info(
                    "purged %d finished job%s older than the retention",
                    purged,
                    "" if purged == 1 else "s",
                )
        if config.output_retention is not None:
            dropped = await self.store.drop_output(config.output_retention)
            self.dropped += dropped
            if dropped:
                log.info(
                    "dropped the output of %d attempt%s older than the output retention",
                    dropped,
                    "" if dropped == 1 else "s",
                )
