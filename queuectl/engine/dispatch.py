"""The engine: one event loop that claims jobs while slots are free and runs a task per job.

Shape (after procrastinate): a dispatcher claims as many jobs as there are free slots in one
transaction and starts a task per job; the task set is cleaned by a done callback that wakes the
dispatcher. Idle, the dispatcher sleeps until the next job is due, a slot frees, the stop event
fires, or the store reports that another process changed the queue. Side tasks (the lease
keeper, housekeeping) are watched: if one dies, the engine says so and stops. A lost database
connection stops nothing: claims and writes are retried with backoff (outage.py) while the
running jobs go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time

from queuectl.config import Config
from queuectl.engine.events import EventKind, Events, Follower, JobEvent
from queuectl.engine.execute import Executor, Slot
from queuectl.engine.housekeeping import Housekeeping
from queuectl.engine.leases import Leases
from queuectl.engine.outage import Outage, backoff
from queuectl.engine.requests import Requests
from queuectl.engine.scheduler import Scheduler
from queuectl.errors import ConnectionLost, QueuectlError
from queuectl.faults import crash_point
from queuectl.models import Job
from queuectl.states import RUNNABLE, JobState, KillReason
from queuectl.store import Store
from queuectl.store.batching import GroupCommit

log = logging.getLogger("queuectl.engine")

MAX_IDLE = 5.0  # re-read the queue at least this often even when nothing seems due
#: how long a stopping engine keeps unwritten outcomes for a database that does not answer;
#: then it exits, and their jobs' leases run out and they run again (rescued)
STOP_PATIENCE = 30.0
#: seconds a config read by the dispatcher is used before it is read again
CONFIG_AGE = 1.0


class Engine:
    def __init__(
        self,
        store: Store,
        concurrency: int,
        *,
        until_empty: bool = False,
        until_idle: bool = False,
        queues: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        #: the named queues whose jobs this engine runs (None: every queue)
        self.queues = queues
        #: exit once no job is pending, processing or waiting for a retry, however far off
        self.until_empty = until_empty
        #: exit once nothing runs and nothing may start now (none due, or the queue paused)
        self.until_idle = until_idle
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.running: dict[str, Slot] = {}
        self.started_at = time.time()
        self.completed = 0
        self.failed = 0
        self.events = Events()
        self.events.subscribe(self._count)
        self.outage = Outage()
        self.executor = Executor(self.id, GroupCommit(store, self._retry_write), self.events)
        self.leases = Leases(
            store, self.id, self.executor, self.running, self.outage, on_rescued=self.wake
        )
        self.housekeeping = Housekeeping(store)
        self.requests = Requests(self)
        self.scheduler = Scheduler(store, self.wake)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._busy = 0  # slots whose job's process has not ended yet
        self._config: tuple[float, Config] | None = None  # (when read, what was read)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wake(self) -> None:
        """Look for work now (a slot freed, a job was enqueued, or the engine must stop)."""
        self._wake.set()

    def stop(self, kill: bool = False, after: float | None = None) -> None:
        """Stop claiming; with kill, also kill running jobs (now, or `after` seconds if they
        have not finished by then), which go back to pending without using a retry."""
        self._stopping.set()
        self.wake()
        if after is not None and not kill:
            asyncio.get_running_loop().call_later(after, self.stop, True)
        elif kill:
            for slot in self.running.values():
                slot.kill(KillReason.STOP)

    async def pause(self, paused: bool) -> None:
        """Pause or resume the queue (stored in it: the store's claim honours it, for this
        engine and any other, also after a restart)."""
        await self.store.set_paused(paused)
        self.wake()

    def scale(self, concurrency: int) -> None:
        """Takes effect at the next claim; jobs above a lowered limit run to their end."""
        self.concurrency = concurrency
        self.wake()

    def cancel(self, job_id: str) -> bool:
        slot = self.running.get(job_id)
        if slot is None:
            return False
        slot.kill(KillReason.CANCEL)
        return True

    def signal(self, job_id: str, signum: int) -> int | None:
        """Send `signum` to a running job's process group; its pgid, or None when the job is
        not running here (or its process has already ended: the group id may be reused)."""
        slot = self.running.get(job_id)
        if slot is None or slot.process is None or slot.released:
            return None
        try:
            os.killpg(slot.process.pid, signum)
        except ProcessLookupError:
            return None
        return slot.process.pid

    def follow(self, job_id: str) -> Follower | None:
        """Output of a running job: what it printed so far, then each chunk as it comes."""
        slot = self.running.get(job_id)
        if slot is None:
            return None
        follower = Follower()
        if slot.process is not None:
            for stream, data in slot.process.output():  # what it wrote so far, in order
                follower.push(stream, data)
        slot.output.add(follower)
        return follower

    def _count(self, event: JobEvent) -> None:
        if event.kind is EventKind.FINISHED:
            if event.state is JobState.COMPLETED:
                self.completed += 1
            elif event.state in (JobState.FAILED, JobState.DEAD):
                self.failed += 1

    async def run(self) -> None:
        """Until stopped (or drained, with until_empty); raises QueuectlError when the queue
        itself failed, after killing the running jobs whose results could not be kept."""
        await self.store.attach_engine(self.id, self.concurrency)
        try:
            config = await self.store.config()
            await self.leases.recover(config)
            keeper = asyncio.create_task(self.leases.keep(config), name="leases")
            others = (
                asyncio.create_task(self.housekeeping.keep(), name="housekeeping"),
                asyncio.create_task(self.requests.keep(), name="requests"),
                asyncio.create_task(self.scheduler.keep(), name="scheduler"),
            )
            try:
                await self._run_watched(keeper, *others)
            finally:
                for side in (keeper, *others):
                    side.cancel()  # its failure, if it had one, was reported by _run_watched
                await asyncio.gather(keeper, *others, return_exceptions=True)
        finally:
            await self.store.detach_engine(self.id)

    async def _run_watched(self, keeper: asyncio.Task[None], *others: asyncio.Task[None]) -> None:
        """Dispatch until stopped; if a side task (`keeper`, the lease keeper, or one of
        `others`) ends first, kill the running jobs and raise: our leases would lapse, or the
        queue would grow without bound."""
        dispatcher = asyncio.create_task(self._dispatch(), name="dispatch")
        await asyncio.wait({dispatcher, keeper, *others}, return_when=asyncio.FIRST_COMPLETED)
        if not dispatcher.done():
            side = next(task for task in (keeper, *others) if task.done())
            reason = side.exception() if not side.cancelled() else "cancelled"
            what = "lease renewal" if side is keeper else side.get_name()
            log.error("%s stopped (%s); stopping the engine", what, reason)
            self.stop(kill=True)
            await asyncio.gather(dispatcher, return_exceptions=True)  # it sees the stop
            self.stop(kill=True)  # and whatever its last claim started
            await self._drain_tasks()
            raise QueuectlError(f"the engine stopped: {what} failed ({reason})")
        try:
            dispatcher.result()
        except QueuectlError:  # the queue itself failed: results cannot be kept
            self.stop(kill=True)  # the caller reports the error, once
            await self._drain_tasks()
            raise
        if self.running:
            log.info(
                "waiting for %d running job%s to finish",
                len(self.running),
                "" if len(self.running) == 1 else "s",
            )
        await self._drain_tasks()

    async def _drain_tasks(self) -> None:
        tasks = [slot.task for slot in self.running.values() if slot.task]
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- claiming -----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        failures = 0  # lost connections in a row
        while not self.stopping:
            try:
                if await self._dispatch_once():
                    return
            except ConnectionLost as exc:
                failures += 1
                self.outage.failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff(failures))
                continue
            failures = 0
            self.outage.ok()  # whichever task ran into the outage, it is over

    async def _dispatch_once(self) -> bool:
        """Claim for the free slots, or sleep; True when an --until-empty or --until-idle
        engine is done."""
        self._wake.clear()
        free = self.concurrency - self._busy
        if free > 0:
            config = await self._current_config()
            # none while paused; of self.queues only, within each queue's limit
            jobs = await self.store.claim(self.id, free, config.lease_time, self.queues)
            for job in jobs:
                crash_point("claim", job.command)
                self._start(job, config)
            if len(jobs) == free:
                return False  # there may be more runnable jobs than there were slots
            if (self.until_empty or self.until_idle) and not self.running:
                reason = await self._done_reason()
                if reason is not None:
                    log.info("%s; engine exiting", reason)
                    return True
        await self._idle(full=free <= 0)
        return False

    async def _current_config(self) -> Config:
        """The queue's config, read at most every CONFIG_AGE: reading it for every claim cost
        a database round trip per job (a third of a claim's time at concurrency 1)."""
        now = time.monotonic()
        if self._config is None or now - self._config[0] > CONFIG_AGE:
            self._config = (now, await self.store.config())
        return self._config[1]

    def _retry_write(self, exc: ConnectionLost, tries: int) -> float | None:
        """The group commit's retry: until the database answers, unless the engine is
        stopping and has waited STOP_PATIENCE for it."""
        self.outage.failed(exc)
        if self.stopping and self.outage.lasted() > STOP_PATIENCE:
            log.error("stopping without the outcomes the database did not take; they run again")
            return None
        return backoff(tries)

    async def _done_reason(self) -> str | None:
        """Why an --until-empty or --until-idle engine with nothing running may exit now."""
        due = await self.store.due_in(queues=self.queues)
        if due is None:
            if self.until_empty and await self._held_back():
                return None  # as it waits through the queue-wide pause
            return "queue is empty"
        if self.until_idle and due > 0:
            return "nothing is due now"
        if self.until_idle and await self.store.paused():
            return "queue is paused"
        return None

    async def _held_back(self) -> bool:
        """Whether a job of this engine's queues waits although none is due for it: held by
        a paused named queue, or by a limited one that other engines keep full."""
        from queuectl.store import JobFilter

        for name in self.queues or (None,):
            for state in RUNNABLE:
                wanted = JobFilter(frozenset({state}), limit=1, queue=name)
                async for _ in self.store.iter_jobs(wanted):  # one page of one: nothing left
                    return True
        return False

    async def _idle(self, full: bool) -> None:
        """Sleep until woken, until the next job is due, or until another process commits."""
        if full:
            await self._wake.wait()
            return
        # only the jobs it could claim: a paused or full named queue wakes it by a change
        due = await self.store.due_in(queues=self.queues)
        if due is not None and due <= 0 and await self.store.paused():
            due = None  # held by the pause: wait for the resume (a wake or a commit), not a timer
        timeout = MAX_IDLE if due is None else min(max(due, 0.0), MAX_IDLE)
        woken = asyncio.ensure_future(self._wake.wait())
        changed = asyncio.ensure_future(self.store.wait_for_change(timeout))
        try:
            await asyncio.wait({woken, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (woken, changed):
                waiter.cancel()
        if changed.done() and not changed.cancelled():
            changed.result()  # re-raises the store's error

    def _start(self, job: Job, config: Config) -> None:
        slot = Slot(job, time.time())
        self.running[job.id] = slot
        self._busy += 1
        slot.task = asyncio.create_task(self._execute(slot, config), name=f"job-{job.id}")
        slot.task.add_done_callback(functools.partial(self._done, job.id))

    def _release(self, slot: Slot) -> None:
        """The job's process is over: its slot may run the next job while the outcome is
        still being committed (with short jobs, waiting for the commit idles slots ~30%)."""
        if not slot.released:
            slot.released = True
            self._busy -= 1
            self.wake()

    def _done(self, job_id: str, task: asyncio.Task[None]) -> None:
        slot = self.running.pop(job_id, None)
        if slot is not None:
            self._release(slot)
        self.wake()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "job %s: the engine could not record its outcome: %s", job_id, task.exception()
            )

    async def _execute(self, slot: Slot, config: Config) -> None:
        try:
            try:
                outcome = await self.executor.run(slot, config)
                crash_point("finish", slot.job.command)  # here: recovery must not trip it
                elapsed = time.time() - slot.started
                finished = self.executor.finish(slot.job, outcome, config, elapsed)
            finally:
                self._release(slot)  # after the outcome's write is queued: the next claim follows
            await asyncio.shield(finished)
        finally:
            slot.output.close()
