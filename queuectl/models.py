"""The data a queue holds and passes around: job specs, jobs, attempts and attempt outcomes.

Plain frozen records with no behaviour beyond derived properties; parsing lives in specs.py and
every rule about states in states.py.

Every CLI command imports this module, and a dataclass costs its import about half a
millisecond (dataclasses compile the methods they write): the records that nothing replaces
or copies field by field, and that are never compared with other tuples, are NamedTuples
(about a tenth of that); the jobs, specs, attempts and outcomes stay dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from queuectl.states import ErrorKind, JobState, OutcomeKind, outcome_kind

Stream = Literal["stdout", "stderr"]
DEFAULT_QUEUE = "default"


class Chunk(NamedTuple):
    """A piece of an attempt's output: what one stream wrote, in its place among the others."""

    stream: Stream
    data: bytes


def in_order(output: tuple[Chunk, ...] | None, stdout: bytes, stderr: bytes) -> tuple[Chunk, ...]:
    """The output in the order it was written; where that order is unknown (an attempt stored
    before it was recorded, an outcome built from the two streams alone), stdout then stderr."""
    if output is not None:
        return output
    both = (Chunk("stdout", stdout), Chunk("stderr", stderr))
    return tuple(chunk for chunk in both if chunk.data)


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
    label: str | None = None  # free text for people: shown in listings, found by list --grep
    queue: str = DEFAULT_QUEUE
    #: ids of jobs that must complete first (they exist already, or come earlier in the batch)
    after: tuple[str, ...] = ()
    #: while a job with this key is live (states.LIVE), enqueueing another creates nothing
    unique_key: str | None = None


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
    label: str | None = None
    queue: str = DEFAULT_QUEUE
    unique_key: str | None = None


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
    #: both streams' chunks in the order written (stdout and stderr are their bytes per stream);
    #: None for an attempt stored without the order
    output: tuple[Chunk, ...] | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def chunks(self) -> tuple[Chunk, ...]:
        return in_order(self.output, self.stdout, self.stderr)


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
    #: both streams' chunks in the order written; None: only stdout and stderr are known
    output: tuple[Chunk, ...] | None = None
    #: the failure will not go away by itself (the job's cwd is gone): no retry is worth it
    permanent: bool = False

    @property
    def kind(self) -> OutcomeKind:
        return outcome_kind(self.error_kind)

    def chunks(self) -> tuple[Chunk, ...]:
        return in_order(self.output, self.stdout, self.stderr)


class Ended(NamedTuple):
    """How and when a job last ended, and when that run began: what the execution statistics
    need of each job, read without building whole Job rows (Store.ended_since)."""

    state: JobState
    started_at: float | None
    finished_at: float | None


class EngineJob(NamedTuple):
    """A job running under an engine's lease, as the database shows it."""

    id: str
    command: str
    started_at: float | None


class EngineRecord(NamedTuple):
    """An engine as registered in a database that many engines share (PostgreSQL)."""

    id: str
    host: str
    pid: int
    version: str
    concurrency: int | None
    started_at: float
    heartbeat_at: float
    heartbeat_age: float  # seconds, by the database's clock
    stopping: bool  # a stop was asked of it through the database
    jobs: tuple[EngineJob, ...]

    def lost(self, lease_time: float) -> bool:
        """No heartbeat for longer than a lease: the engine died without detaching (or is
        cut off); its jobs are rescued and its row is cleaned up by the other engines."""
        return self.heartbeat_age > lease_time


class EngineRequests(NamedTuple):
    """What others asked of an engine through the database: to stop (letting its running jobs
    finish, or killing them), and which of its running jobs to cancel."""

    stop: Literal["finish", "kill"] | None = None
    cancel: tuple[str, ...] = ()


class QueueInfo(NamedTuple):
    """A named queue as `queue list` shows it: its limit (None: only the engines' slots), its
    pause, and how many of its jobs are in each state (every state, 0 included)."""

    name: str
    concurrency: int | None
    paused: bool
    counts: dict[JobState, int]
