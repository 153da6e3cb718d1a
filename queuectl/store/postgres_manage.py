"""The PostgreSQL store's operations for managing jobs: restart, edit, delete, cancel many,
purge, and dropping old output.

Operations on ids given run in one transaction each (all or nothing: a refusal rolls the
transaction back). Operations on a whole state or age run in batches of BATCH rows, each its own
statement and so its own short transaction: PostgreSQL locks rows, not the database, so engines
go on claiming and finishing other jobs meanwhile, but one statement over a million rows would
hold their locks and its snapshot (which keeps vacuum from cleaning up) for its whole length.
Changes that may make jobs due (restart, edit) wake the listening engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from queuectl.errors import BadInput, JobNotFound
from queuectl.models import Job
from queuectl.states import (
    AT_REST,
    CANCELABLE,
    FINISHED,
    RESTARTABLE,
    JobState,
    KillReason,
    at_rest,
    can_cancel,
)
from queuectl.store import JobChanges, Progress
from queuectl.store.postgres_base import PostgresBase, Tx
from queuectl.store.postgres_db import job_of, translated

BATCH = 2000  # rows per statement of an operation on a whole state or age
OUTPUT_PAGE = 1000  # attempts looked at per statement while dropping old output


def _names(states: Sequence[JobState]) -> str:
    """'a, b or c'"""
    names = [state.value for state in states]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _refusal(job_id: str, state: JobState, action: str, allowed: Sequence[JobState]) -> BadInput:
    if state is JobState.PROCESSING:
        return BadInput(
            f"job {job_id!r} is running, so it cannot be {action}; cancel it "
            f"(`queuectl cancel {job_id}`) or wait for it to end (`queuectl wait {job_id}`)"
        )
    return BadInput(f"job {job_id!r} is {state.value}; only {_names(allowed)} jobs can be {action}")


async def _refuse_first(
    tx: Tx, ids: Sequence[str], done: set[str], action: str, allowed: Sequence[JobState]
) -> None:
    """Raise for the first of `ids` that the statement left alone (rolling back the rest)."""
    states = {str(row["id"]): JobState(row["state"]) for row in await tx.fetch("states_of", ids)}
    for job_id in ids:
        if job_id not in done:
            if job_id not in states:
                raise JobNotFound(job_id)
            raise _refusal(job_id, states[job_id], action, allowed)


def _count(status: str) -> int:
    """The row count of a command tag such as 'UPDATE 7'."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresManageOps(PostgresBase):
    # --- by id: one transaction each, all or nothing ------------------------------------------

    @translated
    async def restart(self, job_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(job_ids))  # naming a job twice restarts it once
        async with self._transaction() as tx:
            done = {str(row["id"]) for row in await tx.fetch("restart_jobs", ids)}
            if len(done) < len(ids):
                await _refuse_first(tx, ids, done, "restarted", RESTARTABLE)
            if ids:
                await tx.notify()
        return ids

    @translated
    async def edit(self, job_id: str, changes: JobChanges) -> Job:
        async with self._transaction() as tx:
            rows = await tx.fetch(
                "edit_job",
                job_id,
                changes.command,
                changes.priority,
                changes.max_retries,
                changes.timeout,
                changes.clear_timeout,
                changes.run_at,
                changes.delay,
            )
            if not rows:
                await _refuse_first(tx, [job_id], set(), "edited", AT_REST)
            await tx.notify()  # it may be due sooner, or rank higher
        return job_of(rows[0])

    @translated
    async def delete(self, job_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(job_ids))
        async with self._transaction() as tx:
            done = {str(row["id"]) for row in await tx.fetch("delete_jobs", ids)}
            if len(done) < len(ids):
                await _refuse_first(tx, ids, done, "deleted", AT_REST)
        return ids

    @translated
    async def cancel_many(self, job_ids: Sequence[str]) -> list[Job]:
        ids = list(dict.fromkeys(job_ids))
        async with self._transaction() as tx:
            rows = await tx.fetch("lock_states_of", ids)  # every one checked before any changes
            states = {str(row["id"]): JobState(row["state"]) for row in rows}
            for job_id in ids:
                if job_id not in states:
                    raise JobNotFound(job_id)
                if not can_cancel(states[job_id]):
                    raise BadInput(
                        f"job {job_id!r} is {states[job_id].value}; only "
                        f"{', '.join(CANCELABLE)} or running jobs can be canceled"
                    )
            await tx.execute("cancel_jobs", ids, KillReason.CANCEL.message)
            jobs = {job.id: job for job in map(job_of, await tx.fetch("jobs_of", ids))}
        return [jobs[job_id] for job_id in ids]

    # --- by state or age: batches -------------------------------------------------------------

    @translated
    async def restart_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        if state not in RESTARTABLE:
            return 0
        return await self._batched("restart_in_state_batch", (state.value,), progress, wake=True)

    @translated
    async def cancel_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        if state not in CANCELABLE:
            return 0
        args = (state.value, KillReason.CANCEL.message)
        return await self._batched("cancel_in_state_batch", args, progress)

    @translated
    async def purgeable(
        self, states: Sequence[JobState], older_than: float | None, queue: str | None = None
    ) -> int:
        finished, waiting = _purge_plan(states)
        count = 0
        if finished:
            count += int(await self._value("count_finished", older_than, finished, queue))
        for state in waiting:
            count += int(await self._value("count_waiting", older_than, state, queue))
        return count

    @translated
    async def purge(
        self,
        states: Sequence[JobState],
        older_than: float | None,
        progress: Progress | None = None,
        queue: str | None = None,
    ) -> int:
        finished, waiting = _purge_plan(states)
        deleted = 0
        if finished:
            args = (older_than, finished, queue)
            deleted += await self._batched("purge_finished_batch", args, progress)
        for state in waiting:
            one = (older_than, state, queue)
            deleted += await self._batched("purge_waiting_batch", one, progress)
        return deleted

    @translated
    async def drop_output(self, older_than: float, progress: Progress | None = None) -> int:
        """A page of attempts per statement, in key order: each looks at OUTPUT_PAGE attempts
        and drops the output of the stale ones among them."""
        after: tuple[str, int] = ("", 0)  # every real key sorts after this one
        dropped = 0
        while True:
            [row] = await self._fetch("drop_output_page", older_than, *after, OUTPUT_PAGE)
            count = int(row["dropped"])
            dropped += count
            if progress and count:
                progress(count)
            if int(row["seen"]) < OUTPUT_PAGE:
                return dropped
            after = (str(row["job_id"]), int(row["run"]))

    async def _batched(
        self, name: str, args: tuple[object, ...], progress: Progress | None, wake: bool = False
    ) -> int:
        """Run a *_batch statement until it changes fewer rows than BATCH; how many in all."""
        total = 0
        while True:
            if wake:
                async with self._transaction() as tx:
                    changed = _count(await tx.execute(name, *args, BATCH))
                    if changed:
                        await tx.notify()
            else:
                changed = _count(await self._execute(name, *args, BATCH))
            total += changed
            if progress and changed:
                progress(changed)
            if changed < BATCH:
                return total


def _purge_plan(states: Sequence[JobState]) -> tuple[list[str], list[str]]:
    """The finished states wanted, and the waiting ones; BadInput for a state an engine holds."""
    busy = [state for state in states if not at_rest(state)]
    if busy:
        raise BadInput(f"{busy[0].value} jobs cannot be purged; choose from {_names(AT_REST)}")
    wanted = list(dict.fromkeys(states))
    finished = [state.value for state in wanted if state in FINISHED]
    waiting = [state.value for state in wanted if state not in FINISHED]
    return finished, waiting
