"""The queue's workflows, shared by every front end (the CLI now, a web dashboard next).

A front end parses its input, calls one of these and renders the result; it never talks to the
store or the engine itself, so that both front ends behave the same. Nothing here prints:
failures are QueuectlError subclasses, progress goes to a callback, output to an iterator.

Start-up cost matters (`queuectl enqueue` is called in loops), so the store, the control
channel and the engine are imported inside the functions that need them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from queuectl.config import Config, config_key, parse_config_value
from queuectl.errors import BadInput, DuplicateJobId
from queuectl.models import Attempt, EngineRecord, Job, JobSpec
from queuectl.paths import LOCK_NAME, LOG_NAME, SOCKET_NAME, resolve_home
from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.engine.process import WorkerOptions
    from queuectl.engine.status import EngineReport
    from queuectl.service.stats import ExecStats
    from queuectl.specs import JobBatch
    from queuectl.store import Enqueued, Progress, Store

DB_ENV = "QUEUECTL_DB"
#: how long after the engine's kill grace a canceled running job may take to be recorded
CANCEL_SLACK = 10.0
POLL = 0.05

# --- where a queue is -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue as its users name it. The home holds what belongs to the engine on this machine
    (control socket, lock, log); `db` names the database when it is not the home's SQLite file,
    since jobs may live elsewhere (another file now, a database server next)."""

    home: Path
    db: str | None = None

    @classmethod
    def locate(cls, home: str | None = None, db: str | None = None) -> Queue:
        """From the options, falling back on the environment as documented for each."""
        return cls(resolve_home(home), db or os.environ.get(DB_ENV) or None)

    @property
    def socket(self) -> Path:
        return self.home / SOCKET_NAME

    @property
    def lock(self) -> Path:
        return self.home / LOCK_NAME

    @property
    def log(self) -> Path:
        return self.home / LOG_NAME

    @asynccontextmanager
    async def store(self, durable: bool = True, create: bool = True) -> AsyncIterator[Store]:
        """The store, closed however the caller leaves the block; create=False for a command
        that only reads (it says the queue does not exist instead of creating it)."""
        from queuectl.store import open_store

        store = await open_store(self.db or self.home, durable=durable, create=create)
        try:
            yield store
        finally:
            await store.close()


# --- enqueueing -------------------------------------------------------------------------------


class Enqueuing(NamedTuple):
    id: str
    existing: bool  # already queued under the spec's unique key: nothing was created


async def enqueue(queue: Queue, spec: JobSpec) -> Enqueuing:
    """Store the job and wake an idle engine, so it starts now rather than at its next poll."""
    async with queue.store() as store:
        enqueued = await store.enqueue([spec])
    await wake(queue)
    return Enqueuing(enqueued[0], enqueued[0] in enqueued.existing)


async def enqueue_batch(
    queue: Queue, batch: JobBatch, progress: Progress | None = None
) -> Enqueued:
    """All or none, in one transaction; `progress` is told how many jobs each step stored."""
    async with queue.store() as store:
        try:
            enqueued = await store.enqueue(batch.specs, progress=progress)
        except DuplicateJobId as exc:
            line = batch.line_of.get(exc.job_id, "?")
            raise BadInput(f"{batch.source} line {line}: {exc}") from None
    await wake(queue)
    return enqueued


# --- reading ----------------------------------------------------------------------------------


# The commands that only read open the store with create=False: a typo in --home or --db says
# that there is no queue there instead of creating an empty one that looks fine.


async def list_jobs(
    queue: Queue, state: JobState | None = None, limit: int = 50, queue_name: str | None = None
) -> list[Job]:
    """Newest first; of the named queue `queue_name` only, unless None."""
    if queue_name is None:
        async with queue.store(create=False) as store:
            return await store.list_jobs(state, limit)
    from queuectl.specs import validate_queue_name
    from queuectl.store import JobFilter

    validate_queue_name(queue_name)
    wanted = JobFilter(frozenset() if state is None else frozenset({state}), limit=limit)
    async with queue.store(create=False) as store:
        return [job async for job in store.iter_jobs(replace(wanted, queue=queue_name))]


async def job_detail(queue: Queue, job_id: str) -> tuple[Job, list[Attempt]]:
    async with queue.store(create=False) as store:
        return await store.get(job_id), await store.attempts(job_id)


async def job_relatives(queue: Queue, job_id: str) -> tuple[list[str], list[str]]:
    """The job's parents (enqueue --after) and children."""
    async with queue.store(create=False) as store:
        return await store.relatives(job_id)


class QueueStatus(NamedTuple):
    database: str
    counts: dict[JobState, int]
    paused: bool
    engine: EngineReport  # this host's engine, through its control socket
    #: every engine registered in a database that engines share (PostgreSQL), on any host
    engines: tuple[EngineRecord, ...] = ()
    lease_time: float = 30.0  # an engine whose heartbeat is older is lost
    queue: str | None = None  # the named queue whose jobs `counts` counts (None: all)
    execution: ExecStats | None = None  # execution statistics, when asked for

    def as_dict(self) -> dict[str, Any]:
        """The documented schema of `status --json` (README): the same keys in every state."""
        from queuectl.engine.status import registered_as_dict

        return {
            "database": self.database,
            "paused": self.paused,
            "queue": self.queue,
            "counts": {state.value: count for state, count in self.counts.items()},
            "engine": self.engine.as_dict(),
            "engines": [registered_as_dict(e, self.lease_time) for e in self.engines],
        }


async def status(
    queue: Queue, queue_name: str | None = None, execution: bool = False
) -> QueueStatus:
    """`queue_name`: count only that named queue's jobs (None: every queue's). `execution`:
    with the execution statistics too, read in the same opening of the store (each opening
    costs a command run in a loop its connection and schema check)."""
    if queue_name is not None:
        from queuectl.specs import validate_queue_name

        validate_queue_name(queue_name)
    stats = None
    async with queue.store(create=False) as store:
        counts, paused = await counts_of(store, queue_name), await store.paused()
        engines, config = await store.engines(), await store.config()
        database = store.location
        if execution:
            from queuectl.service.stats import read

            stats = await read(store)
    engine = await engine_status(queue)
    return QueueStatus(
        database, counts, paused, engine, tuple(engines), config.lease_time, queue_name, stats
    )


async def counts_of(store: Store, queue: str | None) -> dict[JobState, int]:
    """Jobs by state, of one named queue or (None) of all: read from the store's counters."""
    if queue is None:
        return await store.counts()
    named = [info for info in await store.queues() if info.name == queue]
    return named[0].counts if named else dict.fromkeys(JobState, 0)


async def engine_status(queue: Queue) -> EngineReport:
    """Never raises for an absent or stuck engine: a status must show what it can."""
    from queuectl.control.client import call
    from queuectl.engine.status import EngineReport
    from queuectl.errors import ControlError, NoEngine
    from queuectl.lock import holder

    try:
        return EngineReport.from_reply(await call(queue.socket, "status", timeout=3.0))
    except NoEngine:
        pid = holder(queue.lock)
        if pid is None:
            return EngineReport(running=False)
        return EngineReport(running=True, pid=pid, error="not answering on the control socket")
    except ControlError as exc:
        return EngineReport(running=True, pid=holder(queue.lock), error=str(exc))


# --- changing jobs ----------------------------------------------------------------------------


async def retry_dead(queue: Queue, job_ids: Sequence[str] | None) -> list[str]:
    """Dead jobs back to pending (None: every dead job); returns the ids retried."""
    async with queue.store() as store:
        retried = await store.retry_dead(job_ids)
    await wake(queue)
    return retried


# --- configuration ----------------------------------------------------------------------------


async def config(queue: Queue) -> Config:
    async with queue.store(create=False) as store:
        return await store.config()


async def get_config(queue: Queue, name: str) -> Any:
    config_key(name)  # an unknown key is refused before the queue is opened (or created)
    return (await config(queue)).get(name)


async def set_config(queue: Queue, name: str, text: str) -> Any:
    """Parse by the key's own rules; returns the value as stored."""
    value = parse_config_value(name, text)
    async with queue.store() as store:
        await store.set_config(name, value)
    return value


# --- the engine -------------------------------------------------------------------------------


async def engine_call(queue: Queue, op: str, **args: Any) -> dict[str, Any]:
    """One request to the running engine; the reply carries the engine's pid. Raises NoEngine
    (a ControlError) when none runs."""
    from queuectl.control.client import ControlClient

    client = await ControlClient.connect(queue.socket)
    reply = await client.request(op, **args)
    return {"pid": client.engine_pid, **reply}


async def wake(queue: Queue) -> None:
    """Tell a running engine that work arrived; silent when none runs."""
    from queuectl.control.client import try_wake

    await try_wake(queue.socket)


async def pause(queue: Queue) -> None:
    """Stored in the queue, so it holds with or without an engine and across restarts; the
    running engine (which would notice within a poll anyway) is woken to stop claiming now."""
    async with queue.store() as store:
        await store.set_paused(True)
    await wake(queue)


async def resume(queue: Queue) -> None:
    async with queue.store() as store:
        await store.set_paused(False)
    await wake(queue)


async def scale(queue: Queue, concurrency: int) -> None:
    await engine_call(queue, "scale", concurrency=concurrency)


class Stopping(NamedTuple):
    pid: int | None
    #: jobs the engine lets finish (or kills, with --now or after kill_after) before it exits
    running: int


async def stop_engine(queue: Queue, kill_after: float | None = None, now: bool = False) -> Stopping:
    """Ask the engine to stop, without waiting (see wait_stopped), so that a caller can say
    what the engine is waiting for meanwhile."""
    from queuectl.lock import holder

    reply = await engine_call(queue, "stop", kill_after=kill_after, now=now)
    return Stopping(reply.get("pid") or holder(queue.lock), reply["running"])


async def wait_stopped(queue: Queue, pid: int | None) -> None:
    """The lock goes before the process has finished exiting: wait for both, so that a new
    engine can start the moment this returns."""
    from queuectl.lock import holder
    from queuectl.procfs import alive

    while holder(queue.lock) is not None or (pid is not None and pid > 0 and alive(pid)):
        await asyncio.sleep(POLL)


def engine_options(
    queue: Queue,
    concurrency: int | None = None,
    *,
    until_empty: bool = False,
    quiet: bool = False,
    loop: str = "asyncio",
    until_idle: bool = False,
    queues: str | None = None,
) -> WorkerOptions:
    """`queues`: the named queues to run, comma-separated (None: every queue)."""
    from queuectl.engine.process import WorkerOptions

    if until_empty and until_idle:
        raise BadInput("--until-empty and --until-idle exclude each other; give one")
    names = None
    if queues is not None:
        from queuectl.specs import validate_queue_name

        names = tuple(dict.fromkeys(validate_queue_name(n.strip()) for n in queues.split(",")))
    return WorkerOptions(
        queue.home,
        queue.db,
        concurrency,
        until_empty,
        quiet,
        loop,
        until_idle=until_idle,
        queues=names,
    )


async def start_detached(queue: Queue, options: WorkerOptions) -> int:
    """Start the engine in the background once it answers; returns its pid."""
    from queuectl.engine.daemon import start_detached as start

    return await start(options, queue.log, queue.socket)


def run_engine(options: WorkerOptions) -> int:
    """Run the engine in this process until it stops; it needs an event loop of its own (uvloop
    or asyncio), so call this outside any running loop."""
    from queuectl.engine.process import run_worker

    return run_worker(options)
