"""The state machine as a table: every state a job can be in × every way an attempt can end."""

from __future__ import annotations

import dataclasses

import pytest

from queuectl.errors import BadInput, InvalidTransition
from queuectl.models import Job, Outcome
from queuectl.states import (
    CANCELABLE,
    FINISHED,
    LIVE,
    RETRYABLE,
    RUNNABLE,
    ErrorKind,
    JobState,
    KillReason,
    OutcomeKind,
    Transition,
    can_cancel,
    next_state,
    outcome_kind,
)

P, F, D, C, X = (
    JobState.PENDING,
    JobState.FAILED,
    JobState.DEAD,
    JobState.CANCELED,
    JobState.COMPLETED,
)
DELAY = 8.0


def job(state: JobState = JobState.PROCESSING, attempts: int = 1, max_retries: int = 2) -> Job:
    return Job(
        id="j",
        command="true",
        state=state,
        priority=0,
        max_retries=max_retries,
        timeout=None,
        cwd="/",
        env={},
        attempts=attempts,
        runs=attempts,
        created_at=0.0,
        updated_at=0.0,
        run_at=0.0,
        next_run_at=0.0,
        last_error=None,
        exit_code=None,
        started_at=0.0,
        finished_at=None,
        lease_owner="e1",
        lease_expires_at=30.0,
        pid=None,
    )


# error kind (None: success) -> (state, attempts, due_in) with retries left / retries spent
TABLE: list[
    tuple[ErrorKind | None, tuple[JobState, int, float | None], tuple[JobState, int, float | None]]
] = [
    (None, (X, 1, None), (X, 3, None)),
    (ErrorKind.EXIT, (F, 1, DELAY), (D, 3, None)),
    (ErrorKind.TIMEOUT, (F, 1, DELAY), (D, 3, None)),
    (ErrorKind.SPAWN, (F, 1, DELAY), (D, 3, None)),
    (ErrorKind.ENGINE_DIED, (F, 1, DELAY), (D, 3, None)),
    (ErrorKind.INTERRUPTED, (P, 0, 0.0), (P, 2, 0.0)),
    (ErrorKind.CANCELED, (C, 1, None), (C, 3, None)),
]


def test_the_table_covers_every_error_kind() -> None:
    assert {row[0] for row in TABLE} == {None, *ErrorKind}


@pytest.mark.parametrize(("error", "retries_left", "retries_spent"), TABLE)
def test_next_state_of_a_processing_job(
    error: ErrorKind | None,
    retries_left: tuple[JobState, int, float | None],
    retries_spent: tuple[JobState, int, float | None],
) -> None:
    outcome = Outcome(error)
    for attempts, (state, want_attempts, due_in) in ((1, retries_left), (3, retries_spent)):
        transition = next_state(job(attempts=attempts), outcome, DELAY)
        assert transition == Transition(JobState.PROCESSING, state, want_attempts, due_in), (
            error,
            attempts,
        )


@pytest.mark.parametrize("state", [s for s in JobState if s is not JobState.PROCESSING])
@pytest.mark.parametrize("error", [None, *ErrorKind])
def test_only_a_processing_job_has_an_attempt_to_end(
    state: JobState, error: ErrorKind | None
) -> None:
    with pytest.raises(InvalidTransition, match=state.value):
        next_state(job(state), Outcome(error), DELAY)


def test_the_last_retry_is_the_boundary() -> None:
    """attempts counts the one that just ended: max_retries=2 allows attempts 1, 2 and 3."""
    failed = Outcome(ErrorKind.EXIT)
    assert next_state(job(attempts=2, max_retries=2), failed, DELAY).state is F
    assert next_state(job(attempts=3, max_retries=2), failed, DELAY).state is D
    assert next_state(job(attempts=1, max_retries=0), failed, DELAY).state is D


def test_the_retry_delay_is_passed_through_unchanged() -> None:
    for delay in (0.0, 0.5, 3600.0):
        assert next_state(job(), Outcome(ErrorKind.TIMEOUT), delay).due_in == delay


def test_outcome_kinds() -> None:
    assert outcome_kind(None) is OutcomeKind.SUCCESS
    assert Outcome(None).kind is OutcomeKind.SUCCESS
    assert {outcome_kind(k) for k in ErrorKind} == {
        OutcomeKind.FAILURE,
        OutcomeKind.INTERRUPTED,
        OutcomeKind.CANCELED,
    }
    assert Outcome(ErrorKind.ENGINE_DIED).kind is OutcomeKind.FAILURE


def test_kill_reasons_carry_their_error_kind_and_message() -> None:
    assert KillReason.STOP.error_kind is ErrorKind.INTERRUPTED
    assert KillReason.CANCEL.error_kind is ErrorKind.CANCELED
    assert KillReason.STOP.message == "interrupted: the engine was stopped"
    assert KillReason.CANCEL.message == "canceled by user"
    assert KillReason.FENCE.error_kind is ErrorKind.INTERRUPTED
    assert "lost its hold" in KillReason.FENCE.message
    assert len(set(KillReason)) == 3  # FENCE is not an alias of STOP
    for reason in KillReason:  # a kill's outcome goes where the table says
        outcome = Outcome(reason.error_kind, error=reason.message)
        expected = C if reason is KillReason.CANCEL else P
        assert next_state(job(), outcome, DELAY).state is expected


def test_state_sets() -> None:
    assert set(RUNNABLE) == {P, F}
    assert set(FINISHED) == {X, D, C}
    assert set(CANCELABLE) == {JobState.BLOCKED, P, F}
    assert set(RETRYABLE) == {D}
    assert set(LIVE) == {JobState.BLOCKED, P, F, JobState.PROCESSING}
    assert not set(RUNNABLE) & set(FINISHED)
    assert not set(LIVE) & set(FINISHED)
    assert JobState.BLOCKED not in RUNNABLE  # a blocked job is never claimed
    assert [s for s in JobState if can_cancel(s)] == [JobState.BLOCKED, P, JobState.PROCESSING, F]


def test_parse_state() -> None:
    assert JobState.parse("DEAD") is D
    with pytest.raises(BadInput, match="unknown state 'zombie'; use one of: blocked, pending, "):
        JobState.parse("zombie")


def test_a_transition_is_a_value() -> None:
    transition = next_state(job(), Outcome(ErrorKind.EXIT), DELAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        transition.state = X  # type: ignore[misc]
