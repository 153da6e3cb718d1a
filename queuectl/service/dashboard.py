"""Read models of the web dashboard (queuectl/web): what its pages, its JSON API and its metrics
show, computed on an open Store with the service layer's own functions, so that the web app
only parses, calls these (or the service's actions) and renders.

The dashboard keeps one store open for its reads (opening one per request would cost a
connection pool on PostgreSQL); its actions go through the same service functions as the CLI.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from queuectl.errors import BadInput
from queuectl.models import Job
from queuectl.service import Queue, QueueStatus, engine_status
from queuectl.service import stats as stats_service
from queuectl.service.listing import job_filter
from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.engine.status import EngineReport
    from queuectl.store import JobFilter, Store

#: jobs per page of the jobs table
PAGE_SIZE = 50
#: events shown in the overview's feed
FEED = 20
#: dead jobs read to group the DLQ; beyond this the groups cover the newest ones (and say so)
DLQ_SCAN = 2_000
#: groups shown on the DLQ page, the largest first
GROUPS_SHOWN = 50


# --- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the overview's feed: a job started, completed, failed, went dead, ..."""

    at: float
    kind: str  # started, completed, failed, dead, canceled
    job_id: str
    attempt: int
    detail: str  # the command (started) or the error (failed, dead)


@dataclass(frozen=True, slots=True)
class Overview:
    status: QueueStatus
    stats: stats_service.ExecStats
    #: seconds the longest-waiting due pending job has waited; None when none is due
    oldest_pending_age: float | None
    events: tuple[Event, ...]


async def queue_status(queue: Queue, store: Store) -> QueueStatus:
    """`service.status` on an open store: the same record, the same `status --json` keys."""
    counts, paused = await store.counts(), await store.paused()
    engines, config = await store.engines(), await store.config()
    engine = await engine_status(queue)
    return QueueStatus(store.location, counts, paused, engine, tuple(engines), config.lease_time)


async def oldest_pending_age(store: Store, now: float | None = None) -> float | None:
    """How long the pending job due first has been due (the claim's own index: one row)."""
    from queuectl.store import JobFilter, JobOrder

    moment = time.time() if now is None else now
    wanted = JobFilter(frozenset({JobState.PENDING}), order=JobOrder.NEXT_RUN, limit=1)
    async for job in store.iter_jobs(wanted):
        return max(0.0, moment - job.next_run_at) if job.next_run_at <= moment else None
    return None


def events(finished: Sequence[Job], engine: EngineReport, limit: int = FEED) -> tuple[Event, ...]:
    """The latest starts (the engine's running jobs) and ends (the jobs that finished), newest
    first."""
    found = [
        Event(job.started_at or 0.0, "started", job.id, job.attempt, job.command)
        for job in engine.running_jobs
    ]
    for job in finished[:limit]:
        kind = job.state.value
        found.append(
            Event(job.finished_at or 0.0, kind, job.id, job.attempts, job.last_error or "")
        )
    found.sort(key=lambda event: event.at, reverse=True)
    return tuple(found[:limit])


async def overview(queue: Queue, store: Store) -> Overview:
    now = time.time()
    status = await queue_status(queue, store)
    execution = await stats_service.read(store, now)
    finished = await store.finished_since(now - stats_service.WINDOW, FEED)
    return Overview(
        status=status,
        stats=execution,
        oldest_pending_age=await oldest_pending_age(store, now),
        events=events(finished, status.engine),
    )


# --- the jobs table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of the newest-first listing ends: its last job's creation time and id.
    Jobs created in the same instant (one batch) are listed in enqueue order, newest first;
    the next page starts after the job named here."""

    created_at: float
    job_id: str

    def token(self) -> str:
        return f"{self.created_at!r}~{self.job_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        at, sep, job_id = text.partition("~")
        try:
            created = float(at)
        except ValueError:
            created = math.nan
        if not sep or not job_id or not math.isfinite(created):
            raise BadInput(f"invalid page cursor {text!r}; start again from the first page")
        return cls(created, job_id)


@dataclass(frozen=True, slots=True)
class JobsPage:
    jobs: tuple[Job, ...]
    next: Cursor | None  # None: this is the last page
    filter: JobFilter


def parse_filter(
    states: Sequence[str], text: str | None, since: str | None, until: str | None
) -> JobFilter:
    """The filter of the jobs page's form, by the `list` command's own parser."""
    return job_filter(
        states=[s for s in states if s],
        grep=text or None,
        since=since or None,
        until=until or None,
        now=time.time(),
    )


async def jobs_page(
    store: Store, wanted: JobFilter, after: Cursor | None = None, size: int = PAGE_SIZE
) -> JobsPage:
    """One page of the listing, newest first, keyset-paged: the store walks its index from the
    cursor's instant (`until` just above it), and only the jobs of that same instant that were
    on the previous page are passed over."""
    walk = replace(wanted, limit=None)
    if after is not None:
        bound = math.nextafter(after.created_at, math.inf)
        walk = replace(walk, until=bound if walk.until is None else min(walk.until, bound))
    # Read what the page needs: the jobs of the cursor's instant before it, then size + 1.
    # Those are not known in advance: read more each time the instant is not passed yet.
    extra = 0 if after is None else 64
    while True:
        jobs, more, whole = await _page(store, replace(walk, limit=size + 1 + extra), after, size)
        if whole or extra >= 2**24:
            break
        extra = max(64, extra * 16)
    last = jobs[-1] if jobs and more else None
    return JobsPage(tuple(jobs), Cursor(last.created_at, last.id) if last else None, wanted)


async def _page(
    store: Store, walk: JobFilter, after: Cursor | None, size: int
) -> tuple[list[Job], bool, bool]:
    """The page's jobs, whether more follow, and whether that is the whole answer: the page
    was filled, or the walk ended before its limit (so reading more would not help)."""
    jobs: list[Job] = []
    skip = after  # until the cursor's job is passed
    more = False
    read = 0
    iterator = store.iter_jobs(walk)
    try:
        async for job in iterator:
            read += 1
            if skip is not None:
                if job.created_at == skip.created_at:
                    if job.id == skip.job_id:
                        skip = None
                    continue
                skip = None  # the cursor's job is gone: carry on from its instant
            if len(jobs) == size:
                more = True
                break
            jobs.append(job)
    finally:
        if isinstance(iterator, AsyncGenerator):
            await iterator.aclose()
    return jobs, more, more or walk.limit is None or read < walk.limit


# --- the dead letter queue --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadGroup:
    error_kind: str  # "" for none recorded
    message: str
    count: int
    jobs: tuple[Job, ...]  # the newest few
    newest: float

    @property
    def key(self) -> str:
        """Names the group in a form (a digest: forms rewrite the newlines of a value)."""
        return _digest(f"{self.error_kind}\n{self.message}")


@dataclass(frozen=True, slots=True)
class DeadLetters:
    groups: tuple[DeadGroup, ...]  # the largest GROUPS_SHOWN
    total: int
    scanned: int  # < total: the groups cover the newest `scanned` dead jobs
    group_count: int  # how many groups those make


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def group_key(job: Job) -> str:
    return f"{job.error_kind.value if job.error_kind else ''}\n{job.last_error or ''}"


async def dead_jobs(store: Store, limit: int = DLQ_SCAN) -> list[Job]:
    from queuectl.store import JobFilter

    return [
        job async for job in store.iter_jobs(JobFilter(frozenset({JobState.DEAD}), limit=limit))
    ]


async def dead_letters(store: Store, shown: int = 5) -> DeadLetters:
    """Dead jobs grouped by error kind and message, the largest group first."""
    from queuectl.store import JobFilter

    jobs = await dead_jobs(store)
    total = await store.count_jobs(JobFilter(frozenset({JobState.DEAD})))
    grouped: dict[str, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(group_key(job), []).append(job)
    groups = [
        DeadGroup(
            error_kind=members[0].error_kind.value if members[0].error_kind else "",
            message=members[0].last_error or "",
            count=len(members),
            jobs=tuple(members[:shown]),
            newest=members[0].finished_at or members[0].created_at,
        )
        for members in grouped.values()
    ]
    groups.sort(key=lambda group: (-group.count, -group.newest))
    return DeadLetters(tuple(groups[:GROUPS_SHOWN]), total, len(jobs), len(groups))


async def group_ids(store: Store, key: str) -> list[str]:
    """The ids of the dead jobs of one group (as dead_letters made it), for `retry group`."""
    ids = [job.id for job in await dead_jobs(store) if _digest(group_key(job)) == key]
    if not ids:
        raise BadInput("no dead job has that error any more; reload the DLQ page")
    return ids
