"""The data a queue holds and passes around: job specs, jobs, attempts and attempt outcomes.

Plain frozen records with no behaviour beyond derived properties; parsing lives in specs.py and
every rule about states in states.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from queuectl.states import ErrorKind, JobState, OutcomeKind, outcome_kind


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated request to enqueue a job; None means 'take the queue's configured default'."""

    command: str
    cwd: str
    id: str | None = None
    max_retries: int | None = None
    priority: int = 0
    timeout: float | None = None
    run_at: float | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    command: str
    state: JobState
    priority: int
    max_retries: int
    timeout: float | None
    cwd: str
    env: dict[str, str]
    attempts: int
    runs: int
    created_at: float
    updated_at: float
    run_at: float
    next_run_at: float
    last_error: str | None
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    pid: int | None
    error_kind: ErrorKind | None = None  # of the last attempt that did not succeed


@dataclass(frozen=True, slots=True)
class Attempt:
    job_id: str
    run: int
    engine: str | None
    started_at: float
    finished_at: float | None
    exit_code: int | None
    error: str | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    error_kind: ErrorKind | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended; `error_kind` None means it succeeded."""

    error_kind: ErrorKind | None = None
    exit_code: int | None = None
    error: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def kind(self) -> OutcomeKind:
        return outcome_kind(self.error_kind)
