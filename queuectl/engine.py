"""The engine: one event loop that claims jobs while slots are free, runs them, records outcomes.

Shape (after procrastinate): a dispatcher claims as many jobs as there are free slots in one
transaction and starts a task per job; the task set is cleaned by a done callback that wakes the
dispatcher. Idle, the dispatcher sleeps until the next job is due, a slot frees, the stop event
fires, or the store reports that another process changed the queue. The engine never decides a
job's next state: it reports an Outcome and the store applies the transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from queuectl.backoff import retry_delay
from queuectl.errors import InvalidTransition, QueuectlError
from queuectl.faults import crash_point
from queuectl.models import Job, JobState, Outcome, OutcomeKind
from queuectl.reaper import kill_orphans
from queuectl.render import duration, local_time, shorten
from queuectl.runner import JobProcess, RunResult, SpawnError
from queuectl.store import Store

log = logging.getLogger(__name__)

STOP_REASON = "interrupted: the engine was stopped"
CANCEL_REASON = "canceled by user"
IDLE_POLL = 0.05  # seconds between checks for jobs enqueued by other processes
MAX_IDLE = 5.0  # re-read the queue at least this often even when nothing seems due


FOLLOW_BUFFER = 4 * 1024 * 1024  # bytes a slow `logs -f` client may fall behind before it is cut


class Follower:
    """One `logs -f` client: a bounded buffer of output chunks, closed when the job ends."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[str, bytes]] = deque()
        self.size = 0
        self.closed = False
        self.overflowed = False
        self.ready = asyncio.Event()

    def push(self, stream: str, data: bytes) -> None:
        if self.closed:
            return
        if self.size + len(data) > FOLLOW_BUFFER:
            self.overflowed = True
            self.close()
            return
        self.chunks.append((stream, data))
        self.size += len(data)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            await self.ready.wait()
            while self.chunks:
                stream, data = self.chunks.popleft()
                self.size -= len(data)
                yield stream, data
            if self.closed:
                return
            self.ready.clear()


@dataclass
class Slot:
    """A job this engine is running."""

    job: Job
    started: float
    task: asyncio.Task[None] | None = None
    process: JobProcess | None = None
    kill_reason: str | None = None
    followers: list[Follower] = field(default_factory=list)
    released: bool = False  # its process has ended; only the outcome is still being written

    def kill(self, reason: str) -> None:
        self.kill_reason = self.kill_reason or reason
        if self.process is not None:
            self.process.kill(self.kill_reason)

    def publish(self, stream: str, data: bytes) -> None:
        if any(follower.closed for follower in self.followers):
            self.followers = [follower for follower in self.followers if not follower.closed]
        for follower in self.followers:
            follower.push(stream, data)


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    completed: int = 0
    failed: int = 0


class Engine:
    def __init__(self, store: Store, concurrency: int, *, until_empty: bool = False) -> None:
        self.store = store
        self.concurrency = concurrency
        self.until_empty = until_empty
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.running: dict[str, Slot] = {}
        self.stats = Stats()
        self.paused = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._busy = 0  # slots whose job's process has not ended yet
        # Encoded once: encoding the whole environment for every job costs ~10% of a `true`.
        self._environ = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}

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
                slot.kill(STOP_REASON)

    def pause(self, paused: bool) -> None:
        self.paused = paused
        self.wake()

    def scale(self, concurrency: int) -> None:
        """Takes effect at the next claim; jobs above a lowered limit run to their end."""
        self.concurrency = concurrency
        self.wake()

    def cancel(self, job_id: str) -> bool:
        slot = self.running.get(job_id)
        if slot is None:
            return False
        slot.kill(CANCEL_REASON)
        return True

    def follow(self, job_id: str) -> Follower | None:
        """Output of a running job: what it printed so far, then each chunk as it comes."""
        slot = self.running.get(job_id)
        if slot is None:
            return None
        follower = Follower()
        if slot.process is not None:
            for stream, data in zip(("stdout", "stderr"), slot.process.output(), strict=True):
                if data:
                    follower.push(stream, data)
        slot.followers.append(follower)
        return follower

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {
            "id": self.id,
            "pid": os.getpid(),
            "started_at": self.stats.started_at,
            "uptime": now - self.stats.started_at,
            "concurrency": self.concurrency,
            "paused": self.paused,
            "stopping": self.stopping,
            "completed": self.stats.completed,
            "failed": self.stats.failed,
            "running_jobs": [
                {
                    "id": slot.job.id,
                    "command": slot.job.command,
                    "attempt": slot.job.attempts,
                    "elapsed": now - slot.started,
                    "pid": slot.process.pid if slot.process else None,
                }
                for slot in self.running.values()
                if not slot.released
            ],
        }

    async def run(self) -> None:
        config = await self.store.config()
        await self.recover(config)
        renewer = asyncio.create_task(self._renew_leases())
        try:
            try:
                await self._dispatch()
            except QueuectlError:  # the queue itself failed: results cannot be kept
                self.stop(kill=True)  # the caller reports the error, once
                await asyncio.gather(
                    *[slot.task for slot in self.running.values() if slot.task],
                    return_exceptions=True,
                )
                raise
            tasks = [slot.task for slot in self.running.values() if slot.task]
            if tasks:
                log.info(
                    "waiting for %d running job%s to finish",
                    len(tasks),
                    "" if len(tasks) == 1 else "s",
                )
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    # --- claiming -----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self.stopping:
            self._wake.clear()
            free = self.concurrency - self._busy
            if free > 0 and not self.paused:
                config = await self.store.config()
                jobs = await self.store.claim(self.id, free, time.time(), config["lease-time"])
                for job in jobs:
                    crash_point("claim", job.command)
                    self._start(job, config)
                if len(jobs) == free:
                    continue  # there may be more runnable jobs than there were slots
                if self.until_empty and not self.running and await self._drained():
                    log.info("queue is empty; engine exiting")
                    return
            await self._idle(full=free <= 0 or self.paused)

    async def _drained(self) -> bool:
        """Nothing runnable now and no failed job waiting for its retry."""
        return await self.store.next_due(retries_only=True) is None

    async def _idle(self, full: bool) -> None:
        """Sleep until woken, until the next job is due, or until another process commits."""
        if full:
            await self._wake.wait()
            return
        due = await self.store.next_due()
        timeout = MAX_IDLE if due is None else min(max(due - time.time(), 0.0), MAX_IDLE)
        deadline = time.monotonic() + timeout
        marker = await self.store.change_marker()
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(IDLE_POLL, left))
                return
            if await self.store.change_marker() != marker:
                return

    def _start(self, job: Job, config: dict[str, Any]) -> None:
        slot = Slot(job, time.time())
        self.running[job.id] = slot
        self._busy += 1
        slot.task = asyncio.create_task(self._execute(slot, config), name=f"job-{job.id}")
        slot.task.add_done_callback(lambda task, job_id=job.id: self._done(job_id, task))

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

    # --- running ------------------------------------------------------------------------------

    async def _execute(self, slot: Slot, config: dict[str, Any]) -> None:
        job = slot.job
        log.info(
            "%s started (attempt %d/%d): %s",
            job.id,
            job.attempts,
            job.max_retries + 1,
            shorten(job.command),
        )
        env = {
            **self._environ,
            **{os.fsencode(k): os.fsencode(v) for k, v in job.env.items()},
            b"QUEUECTL_JOB_ID": job.id.encode(),
            b"QUEUECTL_ATTEMPT": b"%d" % job.attempts,
            b"QUEUECTL_ENGINE": self.id.encode(),
        }
        try:
            outcome = await self._run(slot, env, config)
        finally:
            self._release(slot)
        crash_point("finish", job.command)  # here, not in _finish: recovery must not trip it
        try:
            await asyncio.shield(self._finish(job, outcome, config, time.time() - slot.started))
        finally:
            for follower in slot.followers:
                follower.close()

    async def _run(self, slot: Slot, env: dict[bytes, bytes], config: dict[str, Any]) -> Outcome:
        job = slot.job
        try:
            process = await JobProcess.spawn(
                job.command,
                cwd=job.cwd,
                env=env,
                output_limit=config["output-limit"],
                on_output=slot.publish,
            )
        except SpawnError as exc:
            return Outcome(OutcomeKind.FAILURE, error=str(exc))
        slot.process = process
        crash_point("spawn", job.command)
        if slot.kill_reason:
            process.kill(slot.kill_reason)
        # The pid is written while the job runs: nothing may stand between spawn and wait(),
        # which is what kills and reaps the process group on every way out.
        pid_written = asyncio.ensure_future(self.store.set_pid(job, process.pid))
        outcome = _outcome(await process.wait(job.timeout, config["kill-grace"]))
        try:
            await pid_written
        except Exception as exc:  # only `status` and `show` lose the pid
            log.warning("%s: could not record pid %d: %s", job.id, process.pid, exc)
        return outcome

    async def _finish(
        self, job: Job, outcome: Outcome, config: dict[str, Any], elapsed: float
    ) -> None:
        now = time.time()
        delay = retry_delay(
            job.attempts, config["backoff-base"], config["backoff-max"], config["backoff-jitter"]
        )
        try:
            state = await self.store.finish(job, outcome, now, now + delay)
        except InvalidTransition as exc:
            log.warning("%s: outcome not recorded: %s", job.id, exc)
            return
        if state is JobState.COMPLETED:
            self.stats.completed += 1
        elif state in (JobState.FAILED, JobState.DEAD):
            self.stats.failed += 1
        _log_transition(job, state, outcome, elapsed, now + delay)

    # --- leases and recovery ------------------------------------------------------------------

    async def recover(self, config: dict[str, Any]) -> int:
        """Settle the jobs of engines that died: kill their leftovers, then retry or bury."""
        orphans = await self.store.orphans(self.id, time.time())
        if orphans:
            await asyncio.to_thread(
                kill_orphans, [(job.id, job.lease_owner or "") for job in orphans]
            )
        for job in orphans:
            outcome = Outcome(
                OutcomeKind.FAILURE, error=f"the engine running the job died ({job.lease_owner})"
            )
            await self._finish(job, outcome, config, time.time() - (job.started_at or 0))
        if orphans:
            log.info(
                "recovered %d job%s left by a dead engine",
                len(orphans),
                "" if len(orphans) == 1 else "s",
            )
        return len(orphans)

    async def _renew_leases(self) -> None:
        """Keep our leases alive and rescue jobs whose engine's lease ran out."""
        while True:
            config = await self.store.config()
            await asyncio.sleep(config["lease-time"] / 3)
            try:
                await self.store.renew_leases(self.id, time.time() + config["lease-time"])
                await self.recover(config)
            except Exception as exc:  # a full disk must not kill the engine; retry next time
                log.error("could not renew leases: %s", exc)


def _outcome(result: RunResult) -> Outcome:
    if result.killed_by == STOP_REASON:
        kind = OutcomeKind.INTERRUPTED
    elif result.killed_by == CANCEL_REASON:
        kind = OutcomeKind.CANCELED
    elif result.error is None:
        kind = OutcomeKind.SUCCESS
    else:
        kind = OutcomeKind.FAILURE
    return Outcome(
        kind,
        exit_code=result.exit_code,
        error=result.error,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
    )


def _log_transition(
    job: Job, state: JobState, outcome: Outcome, elapsed: float, retry_at: float
) -> None:
    took = duration(elapsed)
    if state is JobState.COMPLETED:
        log.info("%s completed in %s", job.id, took)
    elif state is JobState.FAILED:
        log.warning(
            "%s failed after %s: %s; retry %d/%d at %s",
            job.id,
            took,
            outcome.error,
            job.attempts,
            job.max_retries,
            local_time(retry_at),
        )
    elif state is JobState.DEAD:
        log.error(
            "%s dead after %d attempt%s: %s",
            job.id,
            job.attempts,
            "" if job.attempts == 1 else "s",
            outcome.error,
        )
    else:
        log.warning("%s %s: %s", job.id, state.value, outcome.error)


def _short(command: str, width: int = 60) -> str:
    line = " ".join(command.split())
    return line if len(line) <= width else line[: width - 1] + "…"
