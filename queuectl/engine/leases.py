"""Leases: keep this engine's alive, fence the jobs it can no longer vouch for, and settle the
jobs of engines that died.

A job in processing is held under its engine's lease. The engine renews its leases every third
of the lease time; a job whose lease ran out (or, where the store allows one engine only, any
job another engine holds) is an orphan: its leftover processes on this host are killed, then
the attempt is recorded as "the engine running the job died" and the retry rules apply.

Self-fencing: an engine that cannot renew for half a lease (its database connection is gone)
kills its running jobs itself, before their leases run out and another engine runs them again;
an engine whose renewal shows a running job held by someone else (it was frozen, say, past its
lease, and the job was rescued) kills that job at once. Its late results are refused by the
store (the fence: lease owner and run number) and counted. A job that the renewal shows held by
this engine but that it does not run (a claim committed whose answer the lost connection ate)
goes back to pending, its attempt recorded as interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from queuectl.config import Config
from queuectl.engine.execute import Executor, Slot
from queuectl.engine.outage import Outage, backoff
from queuectl.engine.reaper import kill_orphans
from queuectl.errors import ConnectionLost, JobNotFound
from queuectl.models import Outcome
from queuectl.render import duration
from queuectl.states import ErrorKind, JobState, KillReason
from queuectl.store import Store

log = logging.getLogger("queuectl.engine")

STRAY = "interrupted: the engine never saw its claim of the job (the database connection was lost)"


class Leases:
    def __init__(
        self,
        store: Store,
        owner: str,
        executor: Executor,
        running: Mapping[str, Slot],
        outage: Outage,
        on_rescued: Callable[[], None],
    ) -> None:
        self.store = store
        self.owner = owner
        self.executor = executor
        self.running = running  # the engine's running jobs, by id
        self.outage = outage
        self.on_rescued = on_rescued  # rescued jobs are due again: look for work now
        self.fenced_kills = 0  # running jobs this engine killed because its hold lapsed
        self._strays: dict[str, int] = {}  # held, not run, at the last renewal: id -> run
        self._fence_timer: asyncio.TimerHandle | None = None
        self._renewal: asyncio.Future[tuple[Config, dict[str, int]]] | None = None

    async def recover(self, config: Config) -> int:
        """Settle the jobs of engines that died: kill their leftovers, then retry or bury.
        One engine at a time (the store's rescue lock): another engine that finds the lock
        taken leaves the orphans to the one holding it."""
        async with self.store.rescuing() as ours:
            orphans = await self.store.orphans(self.owner) if ours else []
            if not orphans:
                return 0
            owners = [(job.id, job.lease_owner or "") for job in orphans]
            await asyncio.to_thread(kill_orphans, owners)
            for job in orphans:
                outcome = Outcome(
                    ErrorKind.ENGINE_DIED,
                    error=f"the engine running the job died ({job.lease_owner})",
                )
                elapsed = time.time() - (job.started_at or 0)
                await self.executor.finish(job, outcome, config, elapsed)
        log.info(
            "recovered %d job%s left by a dead engine",
            len(orphans),
            "" if len(orphans) == 1 else "s",
        )
        self.on_rescued()
        return len(orphans)

    async def keep(self, config: Config) -> None:
        """Renew, fence and rescue until cancelled. A failure is logged and retried, sooner
        while the connection is down; anything that escapes ends the engine, since leases that
        silently lapse would let another engine run our jobs again.

        The fence is a timer, re-armed by each renewal that went through, for half a lease
        after it began: a server that stops answering holds up the renewal, not the fence."""
        self._arm(time.monotonic(), config)
        failures = 0
        try:
            while True:
                retry = min(backoff(failures), config.lease_time / 10)
                await asyncio.sleep(retry if failures else config.lease_time / 3)
                began = time.monotonic()
                try:
                    config, held = await self._renewed(config)
                except (ConnectionLost, TimeoutError) as exc:
                    failures += 1
                    self.outage.failed(_lost(exc, config))
                    continue
                except Exception as exc:
                    log.error("could not renew leases: %s", exc)
                    continue
                self._arm(began, config)
                failures = 0
                self.outage.ok()
                lost = [
                    slot
                    for slot in self.running.values()
                    if slot.claimed < began and held.get(slot.job.id) != slot.job.runs
                ]
                self._fence(lost, "another engine holds it now", config)
                try:
                    await self._release_strays(held, config)
                    await self.recover(config)
                except Exception as exc:
                    log.error("could not rescue jobs: %s", exc)
        finally:
            if self._fence_timer is not None:
                self._fence_timer.cancel()
            if self._renewal is not None:
                self._renewal.cancel()

    async def _renewed(self, config: Config) -> tuple[Config, dict[str, int]]:
        """A renewal's answer, or TimeoutError after a third of a lease. An unanswered renewal
        is left to finish (cancelling a statement sent to a server that does not answer waits
        for it as well) and awaited again at the next beat rather than sent a second time."""
        if self._renewal is None:
            self._renewal = asyncio.ensure_future(self._renew())
        done, _ = await asyncio.wait({self._renewal}, timeout=config.lease_time / 3)
        if not done:
            raise TimeoutError
        renewal, self._renewal = self._renewal, None
        return renewal.result()

    def _arm(self, renewed: float, config: Config) -> None:
        """Fence every running job half a lease after `renewed` (monotonic), unless a later
        renewal goes through first."""
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        at = renewed + config.lease_time / 2
        self._fence_timer = asyncio.get_running_loop().call_later(
            max(0.0, at - time.monotonic()),
            lambda: self._fence(
                list(self.running.values()),
                f"its lease was not renewed for {duration(time.monotonic() - renewed)}",
                config,
            ),
        )

    async def _renew(self) -> tuple[Config, dict[str, int]]:
        config = await self.store.config()
        return config, await self.store.renew_leases(self.owner, config.lease_time)

    def _fence(self, slots: Sequence[Slot], why: str, config: Config) -> None:
        """Kill these running jobs now (their grace shortened, so that they are gone before
        their leases run out); their outcome goes back as interrupted, if it still applies."""
        for slot in slots:
            if slot.released or slot.kill_reason is not None:
                continue
            slot.kill(KillReason.FENCE, grace=min(config.kill_grace, config.lease_time / 4))
            self.fenced_kills += 1
            log.warning("%s: killed (run %d): %s", slot.job.id, slot.job.runs, why)

    async def _release_strays(self, held: Mapping[str, int], config: Config) -> None:
        """Jobs held by this engine that it does not run, seen so at two renewals in a row (a
        claim's answer may still be on its way at the first), go back to pending."""
        strays = {job_id: run for job_id, run in held.items() if job_id not in self.running}
        confirmed = [job_id for job_id, run in strays.items() if self._strays.get(job_id) == run]
        self._strays = {job_id: run for job_id, run in strays.items() if job_id not in confirmed}
        for job_id in confirmed:
            try:
                job = await self.store.get(job_id)
            except JobNotFound:
                continue
            if (
                job.state is not JobState.PROCESSING
                or job.lease_owner != self.owner
                or job.runs != strays[job_id]
            ):
                continue
            await self.executor.finish(job, Outcome(ErrorKind.INTERRUPTED, error=STRAY), config, 0)
            log.warning("%s: held by this engine but never started; back to pending", job_id)


def _lost(exc: ConnectionLost | TimeoutError, config: Config) -> ConnectionLost:
    if isinstance(exc, ConnectionLost):
        return exc
    return ConnectionLost(
        f"the database did not answer the lease renewal within {duration(config.lease_time / 3)}"
    )
