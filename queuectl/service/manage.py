"""Managing jobs after they were enqueued: restart, edit, delete, purge, cancel, kill, wait.

Shared by every front end like the rest of the service layer: input arrives as text from the
user and is parsed here with the parsers that `enqueue` uses (queuectl/specs.py), so a value
that enqueue refuses is refused by `edit` too, with the same message. Which states each
operation takes is decided in queuectl/states.py; the store applies it, guarded by state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from queuectl.errors import BadInput, QueuectlError, WaitTimeout
from queuectl.models import Job
from queuectl.service import CANCEL_SLACK, Queue, engine_call, wake
from queuectl.specs import Shorthand, parse_duration, shorthand_spec
from queuectl.states import (
    AT_REST,
    CANCELABLE,
    FINISHED,
    RESTARTABLE,
    JobState,
    at_rest,
    can_restart,
    is_finished,
)

if TYPE_CHECKING:
    from queuectl.store import JobChanges, Progress, Store

#: `wait` re-reads its jobs at least this often, even if no change was signalled
WAIT_POLL = 1.0
CANCEL_POLL = 0.05
#: the states `purge` takes when none are given
PURGE_DEFAULT = FINISHED
_NO_TIMEOUT = ("none", "off")

#: told the number of jobs a long operation will change; returns where to report progress
StartProgress = Callable[[int], "Progress | None"]


def plural(count: int, noun: str = "job") -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _names(states: Sequence[JobState]) -> str:
    """'a, b or c'"""
    names = [state.value for state in states]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# --- parsing ----------------------------------------------------------------------------------


def parse_states(texts: Sequence[str], default: Sequence[JobState]) -> list[JobState]:
    return [JobState.parse(text) for text in texts] if texts else list(default)


def parse_signal(text: str) -> int:
    """A signal by name (TERM, SIGUSR1, usr1) or number."""
    import signal

    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        if number in {int(s) for s in signal.valid_signals()} and number > 0:
            return number
    else:
        try:
            return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
        except KeyError:
            pass
    raise BadInput(f"unknown signal {text!r}; use a name like TERM, INT or USR1, or a number")


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def job_changes(
    *,
    command: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
    timeout: str | None = None,
    run_at: str | None = None,
    delay: str | None = None,
) -> JobChanges:
    """What `edit` was asked to change, validated by enqueue's own parser (specs.shorthand_spec)
    so that both accept and refuse alike, with the same messages; `--timeout none` removes the
    job's timeout."""
    from queuectl.store import JobChanges  # the store's module is not needed to start up

    clear = timeout is not None and timeout.strip().lower() in _NO_TIMEOUT
    options = Shorthand(
        max_retries=max_retries,
        priority=priority,
        timeout=None if clear else timeout,
        run_at=run_at,
        delay=delay,
    )
    checked = shorthand_spec("true" if command is None else command, "/", options)
    changes = JobChanges(
        command=None if command is None else checked.command,
        priority=None if priority is None else checked.priority,
        max_retries=checked.max_retries,
        timeout=checked.timeout,
        clear_timeout=clear,
        run_at=checked.run_at if run_at is not None else None,
        # a duration from the store's clock: the store, not this host, says what "now" is
        delay=parse_duration(delay) if delay is not None else None,
    )
    if changes.empty:
        raise BadInput(
            "nothing to change; give --command, --priority, --run-at, --delay, --max-retries "
            "or --timeout"
        )
    return changes


def _one_of(job_ids: Sequence[str], state: str | None, what: str) -> JobState | None:
    if bool(job_ids) == (state is not None):
        raise BadInput(f"give the ids of the jobs to {what}, or --state STATE (not both)")
    return None if state is None else JobState.parse(state)


# --- restart, edit, delete, purge -------------------------------------------------------------


async def restart(
    queue: Queue,
    job_ids: Sequence[str],
    state: str | None = None,
    start: StartProgress | None = None,
) -> int:
    """Jobs back to pending, attempts reset and history kept: the ids given (all or none), or
    every job in `state`; how many. A running engine is woken to take them at once."""
    wanted = _one_of(job_ids, state, "restart")
    if wanted is not None and not can_restart(wanted):
        raise BadInput(f"{wanted.value} jobs cannot be restarted; use one of {_names(RESTARTABLE)}")
    async with queue.store(create=False) as store:
        if wanted is None:
            count = len(await store.restart(job_ids))
        else:
            count = await store.restart_in_state(wanted, await _progress(store, start, wanted))
    if count:
        await wake(queue)
    return count


async def edit(queue: Queue, job_id: str, changes: JobChanges) -> Job:
    async with queue.store(create=False) as store:
        job = await store.edit(job_id, changes)
    await wake(queue)  # it may be due sooner, or rank higher, than the engine thinks
    return job


async def delete(queue: Queue, job_ids: Sequence[str]) -> int:
    if not job_ids:
        raise BadInput("give the ids of the jobs to delete (see `queuectl purge` for many)")
    async with queue.store(create=False) as store:
        return len(await store.delete(job_ids))


async def purge(
    queue: Queue,
    states: Sequence[JobState],
    older_than: float | None,
    *,
    dry_run: bool = False,
    start: StartProgress | None = None,
    queue_name: str | None = None,
) -> int:
    """Delete jobs in `states` older than `older_than` seconds (or count them, with dry_run),
    of the named queue `queue_name` (None: every queue).

    Opened without durability: a power cut can only undo the last batches of a purge, which
    leaves jobs that the next purge deletes, so waiting for the disk at each batch buys nothing.
    """
    busy = [state for state in states if not at_rest(state)]
    if busy:
        raise BadInput(f"{busy[0].value} jobs cannot be purged; choose from {_names(AT_REST)}")
    async with queue.store(durable=False, create=False) as store:
        if dry_run:
            return await store.purgeable(states, older_than, queue_name)
        progress = None
        if start is not None:
            progress = start(await store.purgeable(states, older_than, queue_name))
        return await store.purge(states, older_than, progress, queue_name)


async def _progress(store: Store, start: StartProgress | None, state: JobState) -> Progress | None:
    if start is None:
        return None
    return start((await store.counts())[state])


# --- cancel and kill --------------------------------------------------------------------------


async def cancel(
    queue: Queue,
    job_ids: Sequence[str],
    state: str | None = None,
    start: StartProgress | None = None,
) -> int:
    """Cancel the jobs given (all or none) or every job in `state`: a waiting one in the store,
    a running one by its engine killing its process group; returns once every one is recorded
    as canceled, so the caller can rely on it. How many."""
    wanted = _one_of(job_ids, state, "cancel")
    if wanted is JobState.PROCESSING:
        async with queue.store(create=False) as store:
            job_ids = [job.id for job in await store.list_jobs(wanted, 2**31)]
        wanted = None
        if not job_ids:
            return 0
    if wanted is not None:
        if wanted not in CANCELABLE:
            raise BadInput(
                f"{wanted.value} jobs cannot be canceled; use one of {', '.join(CANCELABLE)} "
                "or processing"
            )
        async with queue.store(create=False) as store:
            return await store.cancel_in_state(wanted, await _progress(store, start, wanted))
    async with queue.store(create=False) as store:
        jobs = await _jobs(store, job_ids)
        await _can_kill(queue, store, [j for j in jobs if j.state is JobState.PROCESSING])
        jobs = await store.cancel_many(job_ids)
        running = [job for job in jobs if job.state is JobState.PROCESSING]
        if running:
            await asyncio.gather(*(_kill_to_cancel(queue, store, job) for job in running))
            grace = (await store.config()).kill_grace
            from queuectl.engine.requests import POLL as REQUEST_POLL  # the engine's pace

            deadline = time.monotonic() + REQUEST_POLL + grace + CANCEL_SLACK
            jobs = await _settled(store, jobs, deadline)
    for job in jobs:
        if job.state is JobState.PROCESSING:
            raise QueuectlError(
                f"job {job.id!r} is still running: its engine ({job.lease_owner}) did not act "
                "on the cancel in time; see `queuectl status`"
            )
        if job.state is not JobState.CANCELED:  # it ended by itself before the engine killed it
            raise BadInput(f"job {job.id!r} is {job.state.value}; it ended before it was canceled")
    return len(jobs)


async def _can_kill(queue: Queue, store: Store, running: Sequence[Job]) -> None:
    """Raise, before anything is changed, unless an engine can kill each running job: the
    one engine behind its socket (SQLite), or, where engines share the database, each job's
    own engine, alive by its heartbeat."""
    if not running:
        return
    engines = {engine.id: engine for engine in await store.engines()}
    if not engines:
        await engine_call(queue, "status")  # NoEngine when none runs
        return
    lease_time = (await store.config()).lease_time
    for job in running:
        engine = engines.get(job.lease_owner or "")
        if engine is None or engine.lost(lease_time):
            raise QueuectlError(
                f"job {job.id!r} is running under engine {job.lease_owner}, which is lost (no "
                "heartbeat for longer than a lease): nothing can kill it now; it is rescued "
                "when its lease runs out, cancel it then"
            )


async def _kill_to_cancel(queue: Queue, store: Store, job: Job) -> None:
    """Through the database when engines share it (the job's engine, on whichever host, reads
    the request within a second); else through the engine's control socket."""
    from queuectl.errors import ControlError

    if await store.request_cancel([job.id]):
        return
    try:
        await engine_call(queue, "cancel", id=job.id)
    except ControlError as exc:
        if (await store.get(job.id)).state is JobState.PROCESSING:
            raise QueuectlError(
                f"job {job.id!r} is running but its engine cannot be asked to cancel it: {exc}"
            ) from None
        # it ended meanwhile: the caller reports how


async def _jobs(store: Store, job_ids: Sequence[str]) -> list[Job]:
    return [await store.get(job_id) for job_id in dict.fromkeys(job_ids)]


async def _settled(store: Store, jobs: list[Job], deadline: float) -> list[Job]:
    """The jobs once none is processing any more (or at the deadline)."""
    while any(job.state is JobState.PROCESSING for job in jobs) and time.monotonic() < deadline:
        await asyncio.sleep(CANCEL_POLL)
        jobs = [await store.get(job.id) for job in jobs]
    return jobs


async def kill(queue: Queue, job_id: str, signum: int) -> int:
    """Send `signum` to a running job's process group through its engine; the job then ends
    however its command ends. Returns the process group's id."""
    from queuectl.errors import ControlError, NoEngine

    async with queue.store(create=False) as store:
        job = await store.get(job_id)
        if job.state is not JobState.PROCESSING:
            raise BadInput(f"job {job_id!r} is {job.state.value}, not running; nothing to signal")
        try:
            reply = await engine_call(queue, "kill", id=job_id, signal=signum)
        except NoEngine:  # a job processing under a dead engine: `worker start` recovers it
            raise
        except ControlError as exc:
            job = await store.get(job_id)
            if job.state is not JobState.PROCESSING:
                raise BadInput(f"job {job_id!r} ended before it could be signalled") from None
            raise QueuectlError(f"cannot signal job {job_id!r}: {exc}") from None
    return int(reply.get("pgid") or 0)


# --- wait -------------------------------------------------------------------------------------


async def wait(
    queue: Queue,
    job_ids: Sequence[str],
    timeout: float | None = None,
    on_finished: Callable[[Job], None] | None = None,
) -> list[Job]:
    """Block until every job is finished (completed, dead or canceled); returns them in the
    order they finished, each also told to `on_finished` as it finishes. Raises WaitTimeout
    after `timeout` seconds.

    Woken by the store's change notification; it looks again at least every WAIT_POLL seconds
    in case a change went unnoticed. Only reads: a queue that does not exist is an error.
    """
    if not job_ids:
        raise BadInput("give the ids of the jobs to wait for")
    deadline = None if timeout is None else time.monotonic() + timeout
    async with queue.store(create=False) as store:
        waiting = {job.id: job for job in await _jobs(store, job_ids)}  # unknown ids: exit 2
        done: list[Job] = []
        while True:
            for job_id in list(waiting):
                job = await store.get(job_id)
                waiting[job_id] = job
                if is_finished(job.state):
                    del waiting[job_id]
                    done.append(job)
                    if on_finished is not None:
                        on_finished(job)
            if not waiting:
                return done
            left = WAIT_POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(_timed_out(timeout or 0.0, list(waiting.values())))
            await store.wait_for_change(min(left, WAIT_POLL))


def _timed_out(timeout: float, jobs: Sequence[Job]) -> str:
    shown = ", ".join(f"{job.id} ({job.state.value})" for job in jobs[:5])
    more = f" and {len(jobs) - 5} more" if len(jobs) > 5 else ""
    return f"timed out after {timeout:g}s; still not finished: {shown}{more}"
