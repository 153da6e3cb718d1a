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


class ScheduleNotFound(BadInput):
    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} not found; see `queuectl schedule list`")


class UniqueKeyHeld(BadInput):
    """A job would become live again (restart, dlq retry) while another live job holds its
    unique key: nothing is changed."""

    def __init__(self) -> None:
        super().__init__(
            "another live job holds the unique key of a job given; wait for it to end or "
            "cancel it, then try again"
        )


class InvalidTransition(QueuectlError):
    """A state change that no longer applies (the job moved on); reported, never forced."""


class StorageError(QueuectlError):
    """The queue's database cannot be opened or used."""


class ConnectionLost(StorageError):
    """The database server could not be reached, or dropped the connection: a failure that
    passes (a restart, a network cut), which the engine rides out, retrying with backoff."""


class QueueMissing(StorageError):
    """A command that only reads was pointed at a queue that does not exist: a typo in --home
    or --db must not silently create a new, empty queue."""


class EngineRunning(QueuectlError):
    exit_code = 2


class DuplicateJobId(BadInput):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job id {job_id!r} already exists; choose another id or omit it")
        self.job_id = job_id


class SpawnError(QueuectlError):
    """The command could not be started; the message is the reason, fit to show the user.

    `permanent`: starting it again will fail the same way (its working directory is missing,
    not a directory or not accessible) until someone fixes it; a fork or exec failure for lack
    of memory, processes or file descriptors is not, as it goes away with the load.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ControlError(QueuectlError):
    """The engine answered with an error, or could not be talked to."""


class NoEngine(ControlError):
    def __init__(self) -> None:
        super().__init__(
            "no engine is running on this queue; start one with `queuectl worker start`"
        )


class WaitTimeout(QueuectlError):
    """`wait` gave up: its own exit code, as timeout(1) has, so scripts can tell it apart."""

    exit_code = 124
