"""Listing jobs, for every front end: the filter from what a user typed, and the matching jobs
streamed from the store, with their count for a "showing 50 of 602" line.

The jobs come as an async iterator from the store's pages, so a front end writes each as it
arrives and memory stays flat whatever the listing's length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from queuectl.errors import BadInput
from queuectl.models import Job
from queuectl.specs import parse_moment
from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.service import Queue
    from queuectl.store import JobFilter, Store


def parse_states(values: Iterable[str]) -> frozenset[JobState]:
    """`--state` values, each a state or a comma-separated list of them."""
    return frozenset(JobState.parse(name.strip()) for value in values for name in value.split(","))


def job_filter(
    *,
    states: Iterable[str] = (),
    grep: str | None = None,
    since: str | None = None,
    until: str | None = None,
    order: str = "created",
    limit: int | None = None,
    now: float,
    queue: str | None = None,
) -> JobFilter:
    """The filter a user's options describe; BadInput names the option that is wrong."""
    from queuectl.specs import validate_queue_name
    from queuectl.store import JobFilter, JobOrder

    if queue is not None:
        validate_queue_name(queue)

    if grep is not None and not grep:
        raise BadInput("--grep is empty; give the text to look for")
    start = _moment("--since", since, now)
    end = _moment("--until", until, now)
    if start is not None and end is not None and start >= end:
        raise BadInput(f"--since {since!r} is not before --until {until!r}; swap them")
    try:
        sort = JobOrder(order)
    except ValueError:
        names = ", ".join(o.value for o in JobOrder)
        raise BadInput(f"unknown sort {order!r}; use one of: {names}") from None
    return JobFilter(parse_states(states), grep, start, end, sort, limit, queue)


def _moment(option: str, text: str | None, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_moment(text, now)
    except BadInput as exc:
        raise BadInput(f"{option}: {exc}") from None


class Listing:
    """The jobs of one filter on an open store."""

    def __init__(self, store: Store, job_filter: JobFilter) -> None:
        self.store = store
        self.filter = job_filter
        self._open: list[AsyncIterator[Job]] = []

    def jobs(self) -> AsyncIterator[Job]:
        """The matching jobs as the store reads them, page by page."""
        jobs = self.store.iter_jobs(self.filter)
        self._open.append(jobs)
        return jobs

    async def total(self) -> int:
        """How many match, whatever the limit: from the counters the store keeps when only
        states and a queue narrow the listing (counting the rows cost ~120 ms at 1,000,000)."""
        wanted = self.filter
        if wanted.grep or wanted.since is not None or wanted.until is not None:
            return await self.store.count_jobs(wanted)
        from queuectl.service import counts_of

        counts = await counts_of(self.store, wanted.queue)
        return sum(counts[state] for state in wanted.states or JobState)

    async def close(self) -> None:
        """Stop the reads of a listing left unfinished (output closed, an error)."""
        for jobs in self._open:
            aclose = getattr(jobs, "aclose", None)
            if aclose is not None:
                await aclose()


@asynccontextmanager
async def listing(queue: Queue, job_filter: JobFilter) -> AsyncIterator[Listing]:
    """The listing, on a store that stays open while the caller reads it. A queue that does
    not exist is an error (QueueMissing), not a new empty queue: `list` only reads."""
    async with queue.store(create=False) as store:
        found = Listing(store, job_filter)
        try:
            yield found
        finally:
            await found.close()
