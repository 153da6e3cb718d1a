"""Riding out a lost database connection: the engine keeps its running jobs and retries.

A database server that restarts, or a network that drops for a while, must not stop an engine
that has jobs running: the dispatcher stops claiming, the group commit holds the outcomes, and
each retries with backoff until the server answers again (the lease keeper meanwhile fences
the jobs whose lease it can no longer vouch for: leases.py). The outage is logged once when it
begins and once when it ends, however many of the engine's tasks ran into it.
"""

from __future__ import annotations

import logging
import random
import time

from queuectl.errors import ConnectionLost
from queuectl.render import duration

log = logging.getLogger("queuectl.engine")

FIRST_DELAY = 0.1  # seconds before the first retry: a cut pooled connection is replaced at once
MAX_DELAY = 5.0


class Outage:
    """Whether the engine is cut off from its database now, and since when."""

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time the outage began
        self.outages = 0  # how many the engine rode out (status)

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: ConnectionLost) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            log.error("%s; retrying with backoff (running jobs go on)", exc)

    def lasted(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    def ok(self) -> None:
        if self.since is not None:
            log.warning("the database answers again, after %s", duration(self.lasted()))
            self.since = None


def backoff(tries: int) -> float:
    """Seconds before retry number `tries` (1, 2, ...): doubling from FIRST_DELAY up to
    MAX_DELAY, with jitter, so that engines cut off together do not all come back at once."""
    delay: float = min(MAX_DELAY, FIRST_DELAY * 2.0 ** (tries - 1))
    return delay * random.uniform(0.5, 1.0)
