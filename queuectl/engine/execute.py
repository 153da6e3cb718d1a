"""Running one job: its environment, its process, its outcome, and the transition that follows.

The engine never decides a job's next state itself: the outcome goes through
states.next_state() and the store applies the result, guarded by the lease the job was claimed
under; a refused result (the job was rescued meanwhile) is counted and logged, never forced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from queuectl.backoff import retry_delay
from queuectl.config import Config
from queuectl.engine.events import EventKind, Events, JobEvent, OutputFanout
from queuectl.engine.runner import JobProcess
from queuectl.errors import SpawnError
from queuectl.faults import crash_point
from queuectl.models import Job, Outcome
from queuectl.render import duration, local_time, shorten
from queuectl.states import ErrorKind, JobState, KillReason, next_state
from queuectl.store import Finish
from queuectl.store.batching import GroupCommit

log = logging.getLogger("queuectl.engine")
#: seconds a job runs before its pid is stored (for `show` and other hosts' `status`)
PID_DELAY = 0.25


@dataclass
class Slot:
    """A job this engine is running."""

    job: Job
    started: float
    task: asyncio.Task[None] | None = None
    process: JobProcess | None = None
    kill_reason: KillReason | None = None
    kill_grace: float | None = None
    output: OutputFanout = field(default_factory=OutputFanout)
    released: bool = False  # its process has ended; only the outcome is still being written
    #: when the claim's answer arrived (monotonic): a lease renewal that began earlier may not
    #: have seen the claim, so it says nothing about whether the job is still this engine's
    claimed: float = field(default_factory=time.monotonic)

    def kill(self, reason: KillReason, grace: float | None = None) -> None:
        """Stop the job's process group (now, or as soon as it is spawned); `grace` replaces
        the configured time between SIGTERM and SIGKILL."""
        self.kill_reason = self.kill_reason or reason
        self.kill_grace = grace if grace is not None else self.kill_grace
        if self.process is not None:
            self.process.kill(self.kill_reason, self.kill_grace)


class Executor:
    def __init__(self, engine_id: str, commits: GroupCommit, events: Events) -> None:
        self.engine_id = engine_id
        self.commits = commits
        self.events = events
        self.fenced = 0  # outcomes refused because the job was no longer ours
        # Encoded once: encoding the whole environment for every job costs ~10% of a `true`.
        self._environ = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}

    def environment(self, job: Job) -> dict[bytes, bytes]:
        return {
            **self._environ,
            **{os.fsencode(k): os.fsencode(v) for k, v in job.env.items()},
            b"QUEUECTL_JOB_ID": job.id.encode(),
            b"QUEUECTL_ATTEMPT": b"%d" % job.attempts,
            b"QUEUECTL_ENGINE": self.engine_id.encode(),
        }

    async def run(self, slot: Slot, config: Config) -> Outcome:
        """Run the job's process to its end; every way out leaves none of its group alive."""
        job = slot.job
        if slot.kill_reason is not None:  # killed between its claim and this start
            reason = slot.kill_reason
            return Outcome(reason.error_kind, error=reason.message, output=())
        log.info(
            "%s started (attempt %d/%d): %s",
            job.id,
            job.attempts,
            job.max_retries + 1,
            shorten(job.command),
        )
        self.events.publish(JobEvent(EventKind.STARTED, job.id, job.runs))
        try:
            process = await JobProcess.spawn(
                job.command,
                cwd=job.cwd,
                env=self.environment(job),
                output_limit=config.output_limit,
                on_output=slot.output.publish,
            )
        except SpawnError as exc:
            if not exc.permanent:
                return Outcome(ErrorKind.SPAWN, error=str(exc), output=())
            # states.next_state buries a permanent failure at once; the error says why
            error = f"{exc} (a permanent error: not retried)"
            return Outcome(ErrorKind.SPAWN, error=error, output=(), permanent=True)
        slot.process = process
        crash_point("spawn", job.command)
        if slot.kill_reason:
            process.kill(slot.kill_reason, slot.kill_grace)
        # The pid is written once the job has run PID_DELAY, in the group commit: a short job
        # never costs that write. Nothing may stand between spawn and wait(), which is what
        # kills and reaps the process group on every way out.
        writes: list[asyncio.Future[None]] = []
        timer = asyncio.get_running_loop().call_later(
            PID_DELAY,
            lambda: writes.append(asyncio.ensure_future(self.commits.set_pid(job, process.pid))),
        )
        try:
            outcome = await process.wait(job.timeout, config.kill_grace)
        finally:
            timer.cancel()
        for write in writes:
            try:
                await write
            except Exception as exc:  # only `status` and `show` lose the pid
                log.warning("%s: could not record pid %d: %s", job.id, process.pid, exc)
        return outcome

    def finish(
        self, job: Job, outcome: Outcome, config: Config, elapsed: float
    ) -> Coroutine[Any, Any, JobState | None]:
        """Apply the outcome; awaited, the job's new state, or None when it had moved on.

        The write is queued before this returns, not when the result is awaited: a claim the
        engine makes next is then written after it, so a slot's next job never shows (or
        logs) as started before its previous one as finished."""
        delay = retry_delay(
            job.attempts, config.backoff_base, config.backoff_max, config.backoff_jitter
        )
        transition = next_state(job, outcome, delay)
        applied = self.commits.submit(Finish(job, transition, outcome))
        return self._finished(job, transition.state, outcome, elapsed, delay, applied)

    async def _finished(
        self,
        job: Job,
        state: JobState,
        outcome: Outcome,
        elapsed: float,
        delay: float,
        applied: asyncio.Future[bool],
    ) -> JobState | None:
        if not await applied:
            self.fenced += 1
            self.events.publish(JobEvent(EventKind.FENCED, job.id, job.runs, elapsed=elapsed))
            log.warning(
                "%s: outcome of run %d not recorded: the job is no longer held by this engine",
                job.id,
                job.runs,
            )
            return None
        self.events.publish(
            JobEvent(
                EventKind.FINISHED,
                job.id,
                job.runs,
                state=state,
                error_kind=outcome.error_kind,
                elapsed=elapsed,
            )
        )
        _log_transition(job, state, outcome, elapsed, delay)
        return state


def _log_transition(
    job: Job, state: JobState, outcome: Outcome, elapsed: float, delay: float
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
            local_time(time.time() + delay),
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
