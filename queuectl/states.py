"""The state machine of a job: its states, how an attempt can end, and what follows from that.

Every decision about a job's next state is made here and nowhere else. A store only applies a
computed Transition, guarded by the state the job must still be in and by the lease (owner and
run number) it was decided under, so a decision that no longer applies changes nothing.

    pending ──claim──► processing ──success──────────────► completed
       ▲  ▲                │ ├──failure, retries left──► failed ──due──► (claimed again)
       │  └─interrupted────┘ ├──failure, retries spent─► dead ──retry──► pending
       │                     └──canceled───────────────► canceled
       └──────── retry (from dead) ◄──────────────────────────────────────┘
    pending, failed ──cancel──► canceled
    completed, failed, dead, canceled ──restart──► pending (attempts reset, history kept)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from queuectl.errors import BadInput, InvalidTransition

if TYPE_CHECKING:
    from queuectl.models import Job, Outcome


class JobState(enum.StrEnum):
    BLOCKED = "blocked"  # waiting for its parents (enqueue --after) to complete
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # waiting for its retry
    DEAD = "dead"
    CANCELED = "canceled"

    @classmethod
    def parse(cls, text: str) -> JobState:
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise BadInput(f"unknown state {text!r}; use one of: {names}") from None


#: A claim takes jobs in these states once they are due (the stores' partial indexes match).
RUNNABLE = (JobState.PENDING, JobState.FAILED)
#: A job here is over: only a user (retry) brings it back.
FINISHED = (JobState.COMPLETED, JobState.DEAD, JobState.CANCELED)
#: The user may cancel these in the store; a running job is canceled by killing it.
CANCELABLE = (JobState.BLOCKED, JobState.PENDING, JobState.FAILED)
#: `dlq retry` takes these back to pending.
RETRYABLE = (JobState.DEAD,)
#: `restart` takes these back to pending: a job that is over, or one waiting for its retry.
RESTARTABLE = (*FINISHED, JobState.FAILED)
#: A user may edit, delete or purge these: every job its engine does not hold (processing).
AT_REST = (JobState.BLOCKED, JobState.PENDING, JobState.FAILED, *FINISHED)
#: A job here is live: it holds its unique key (enqueue --unique-key), which is free again
#: once the job is over. The stores' partial unique indexes name these states.
LIVE = (JobState.BLOCKED, JobState.PENDING, JobState.FAILED, JobState.PROCESSING)


class ErrorKind(enum.StrEnum):
    """Why an attempt did not succeed: stable names for tests, filters and the dashboard."""

    EXIT = "exit"  # the command exited non-zero or was killed by a signal of its own
    TIMEOUT = "timeout"
    SPAWN = "spawn"  # the command could not be started (missing cwd, fork failure)
    ENGINE_DIED = "engine_died"  # found processing under a dead engine's lease
    INTERRUPTED = "interrupted"  # the engine was stopped with --now or a second signal
    CANCELED = "canceled"


class OutcomeKind(enum.StrEnum):
    """What an attempt's end means for the job."""

    SUCCESS = "success"
    FAILURE = "failure"  # counts against max_retries: retried later, or dead
    INTERRUPTED = "interrupted"  # back to pending, no retry used
    CANCELED = "canceled"


_OUTCOME_OF_ERROR = {
    ErrorKind.EXIT: OutcomeKind.FAILURE,
    ErrorKind.TIMEOUT: OutcomeKind.FAILURE,
    ErrorKind.SPAWN: OutcomeKind.FAILURE,
    ErrorKind.ENGINE_DIED: OutcomeKind.FAILURE,
    ErrorKind.INTERRUPTED: OutcomeKind.INTERRUPTED,
    ErrorKind.CANCELED: OutcomeKind.CANCELED,
}


def outcome_kind(error: ErrorKind | None) -> OutcomeKind:
    return OutcomeKind.SUCCESS if error is None else _OUTCOME_OF_ERROR[error]


class KillReason(enum.Enum):
    """Why the engine killed a running job; the kill's error kind and message follow from it."""

    STOP = (ErrorKind.INTERRUPTED, "interrupted: the engine was stopped")
    CANCEL = (ErrorKind.CANCELED, "canceled by user")
    #: the engine could not renew its lease on the job for half a lease, or found the job held
    #: by another engine: it must stop before another engine runs the job again
    FENCE = (
        ErrorKind.INTERRUPTED,
        "interrupted: the engine lost its hold on the job (its lease could not be renewed)",
    )

    @property
    def error_kind(self) -> ErrorKind:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Transition:
    """A decided change of one job, applied only if the job is still in `from_state` under
    the same lease (owner and run) it was decided under."""

    from_state: JobState
    state: JobState
    attempts: int
    #: seconds from the moment it is applied until the job is due; None keeps next_run_at
    due_in: float | None = None


def next_state(job: Job, outcome: Outcome, retry_delay: float) -> Transition:
    """The job's next state after the attempt it is running (`job` as claimed) ended so.

    `retry_delay` is the backoff to wait before the next attempt if this one failed with
    retries left; the caller computes it (backoff.retry_delay) so that this stays pure. A
    permanent failure (outcome.permanent: the job's cwd is missing, not a directory or not
    accessible) is dead at once: every retry would fail the same way, only later.
    """
    if job.state is not JobState.PROCESSING:
        raise InvalidTransition(f"job {job.id!r} is {job.state.value}, not processing")
    match outcome.kind:
        case OutcomeKind.SUCCESS:
            return Transition(job.state, JobState.COMPLETED, job.attempts)
        case OutcomeKind.INTERRUPTED:  # the attempt is given back
            return Transition(job.state, JobState.PENDING, job.attempts - 1, due_in=0.0)
        case OutcomeKind.CANCELED:
            return Transition(job.state, JobState.CANCELED, job.attempts)
        case OutcomeKind.FAILURE if outcome.permanent or job.attempts > job.max_retries:
            return Transition(job.state, JobState.DEAD, job.attempts)  # a permanent one at once
        case _:
            return Transition(job.state, JobState.FAILED, job.attempts, due_in=retry_delay)


def can_cancel(state: JobState) -> bool:
    """A user may cancel a job in this state: in the store, or (processing) through its engine."""
    return state in CANCELABLE or state is JobState.PROCESSING


def is_finished(state: JobState) -> bool:
    """Over for good unless a user brings it back: what `wait` waits for."""
    return state in FINISHED


def can_restart(state: JobState) -> bool:
    return state in RESTARTABLE


def at_rest(state: JobState) -> bool:
    """No engine holds it, so a user may edit, delete or purge it without racing a run."""
    return state in AT_REST
