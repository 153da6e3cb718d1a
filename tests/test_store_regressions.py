"""Store bugs found by the state machine (tests/reliability/test_state_machine.py), each as its
minimal example, on both backends: each failed before its fix."""

from __future__ import annotations

import pytest
from helpers import Backend, failure, finish, in_store, spec

from queuectl.errors import BadInput
from queuectl.states import JobState
from queuectl.store import Store


def test_parent_named_again_through_a_unique_key_stand_in(backend: Backend) -> None:
    """j1 repeats j0's unique key, so j1 stands for j0: `after` (j0, j1) names j0 twice."""

    async def use(store: Store) -> tuple[list[str], JobState, tuple[list[str], list[str]]]:
        await store.enqueue([spec(id="j0", unique_key="k1")])
        ids = await store.enqueue(
            [spec(id="j1", unique_key="k1"), spec(id="j2", after=("j0", "j1"))]
        )
        return list(ids), (await store.get("j2")).state, await store.relatives("j2")

    ids, state, relatives = in_store(backend, use)
    assert ids == ["j0", "j2"]
    assert state is JobState.BLOCKED
    assert relatives == (["j0"], [])


def test_delete_a_parent_and_its_blocked_child_at_once(backend: Backend) -> None:
    """PostgreSQL once failed here: a BEFORE DELETE trigger canceled the child that the same
    DELETE then reached (TriggeredDataChangeViolationError)."""

    async def use(store: Store) -> list[str]:
        await store.enqueue([spec(id="j0"), spec(id="j2", after=("j0",))])
        deleted = await store.delete(["j0", "j2"])
        assert await store.list_jobs(None, 10) == []
        return deleted

    assert in_store(backend, use) == ["j0", "j2"]


@pytest.mark.parametrize("revive", ["restart", "retry_dead"])
def test_reviving_a_job_whose_key_is_taken_is_refused(backend: Backend, revive: str) -> None:
    """j0 (key k1) ended; j1 took k1; bringing j0 back would give k1 two live jobs."""

    async def use(store: Store) -> None:
        await store.enqueue([spec(id="j0", unique_key="k1", max_retries=0)])
        if revive == "restart":
            await store.cancel("j0")
        else:
            [job] = await store.claim("engine", 1, 30.0)

            await finish(store, job, failure())
            assert (await store.get("j0")).state is JobState.DEAD
        await store.enqueue([spec(id="j1", unique_key="k1")])
        with pytest.raises(BadInput):
            if revive == "restart":
                await store.restart(["j0"])
            else:
                await store.retry_dead(["j0"])
        assert (await store.get("j1")).state is JobState.PENDING

    in_store(backend, use)
