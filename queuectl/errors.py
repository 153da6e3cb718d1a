"""Errors a user can act on.

Every expected failure is a QueuectlError whose message names the problem and the fix; the CLI
prints it on one line and exits with `exit_code`, never with a traceback.
"""


class QueuectlError(Exception):
    """An operational failure: the request was valid but could not be carried out."""

    exit_code = 1


class BadInput(QueuectlError):
    """The user's input is wrong; nothing was changed."""

    exit_code = 2


class JobNotFound(BadInput):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found; see `queuectl list`")


class InvalidTransition(QueuectlError):
    """A state change that no longer applies (the job moved on); reported, never forced."""


class StorageError(QueuectlError):
    """The queue's database cannot be opened or used."""


class QueueMissing(StorageError):
    """A command that only reads was pointed at a queue that does not exist: a typo in --home
    or --db must not silently create a new, empty queue."""


class EngineRunning(QueuectlError):
    exit_code = 2


class DuplicateJobId(BadInput):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job id {job_id!r} already exists; choose another id or omit it")
        self.job_id = job_id
