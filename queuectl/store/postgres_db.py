"""The PostgreSQL database itself: where it is, its SQL, connecting, rows to models, and the
translation of asyncpg's errors into one line naming the server and the database.

Kept apart from the store's operations so that each stays small; nothing here knows of the
engine or the CLI. asyncpg is untyped: its records stop here, converted field by field into
the models, so that no Any leaks into the rest of queuectl.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import os
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg

from queuectl.errors import BadInput, ConnectionLost, QueuectlError, StorageError, UniqueKeyHeld
from queuectl.models import Attempt, Job
from queuectl.states import (
    AT_REST,
    CANCELABLE,
    FINISHED,
    LIVE,
    RESTARTABLE,
    RETRYABLE,
    RUNNABLE,
    ErrorKind,
    JobState,
)
from queuectl.store.sqlite_output import decode as decode_output

P = ParamSpec("P")
R = TypeVar("R")

CONNECT_TIMEOUT = 10.0  # seconds to wait for a server that does not answer
POOL_SIZE = 4  # the engine's concurrent users: dispatch, group commit, leases, the CLI's one
APPLICATION_NAME = "queuectl"

#: the store's "now": the injected clock ($1) or, when it is NULL, the server's transaction time
NOW = "coalesce($1::float8, extract(epoch FROM now())::float8)"

JOB_COLUMNS = (
    "id, command, label, state, priority, max_retries, timeout, cwd, env::text AS env, "
    "attempts, runs, created_at, updated_at, run_at, next_run_at, last_error, error_kind, "
    "exit_code, started_at, finished_at, lease_owner, lease_expires_at, pid, queue, unique_key"
)
ATTEMPT_COLUMNS = (
    "a.job_id, a.run, a.engine, a.started_at, a.finished_at, a.exit_code, a.error, "
    "a.error_kind, a.stdout, a.stderr, a.stdout_truncated, a.stderr_truncated, a.output"
)


# --- where the database is ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgTarget:
    """A postgresql:// URL, with what the messages name: server, port, database, user. The
    defaults are libpq's (and asyncpg's): $PGHOST, $PGPORT, $PGUSER, $PGDATABASE."""

    url: str
    host: str
    port: str
    database: str
    user: str

    @classmethod
    def parse(cls, url: str) -> PgTarget:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BadInput(
                f"invalid database URL: {exc}; use postgresql://USER@HOST:PORT/DB"
            ) from None
        query = parse_qs(parts.query)
        user = unquote(parts.username or "") or _first(query, "user") or _env_user()
        host = parts.hostname or _first(query, "host") or os.environ.get("PGHOST") or "localhost"
        database = (
            unquote(parts.path.lstrip("/"))
            or _first(query, "dbname")
            or os.environ.get("PGDATABASE")
            or user
        )
        return cls(
            url=url,
            host=host,
            port=str(port or _first(query, "port") or os.environ.get("PGPORT") or 5432),
            database=database,
            user=user,
        )

    @property
    def location(self) -> str:
        """The URL without its password: it is printed, and logged by engines."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.rpartition("@")[2]
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def where(self) -> str:
        return f"PostgreSQL database {self.database!r} on {self.host}:{self.port}"


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _env_user() -> str:
    try:
        return os.environ.get("PGUSER") or getpass.getuser()
    except (KeyError, OSError):
        return "postgres"


# --- the SQL -------------------------------------------------------------------------------------


def _states(states: tuple[JobState, ...]) -> str:
    return ", ".join(f"'{state.value}'" for state in states)


def _load_sql() -> tuple[dict[str, str], frozenset[str]]:
    """The named blocks of every postgres*.sql file beside this module (one per topic),
    templated; and which of them take the clock as $1. The files are read directly, not
    through importlib.resources, as the SQLite store does (the package is installed as files).
    A block named part_* is not a statement but a piece of the ones that name it {part_*}."""
    values = {
        "now": NOW,
        "runnable": _states(RUNNABLE),
        "cancelable": _states(CANCELABLE),
        "retryable": _states(RETRYABLE),
        "restartable": _states(RESTARTABLE),
        "finished": _states(FINISHED),
        "at_rest": _states(AT_REST),
        "live": _states(LIVE),
        "job": JOB_COLUMNS,
        "attempt": ATTEMPT_COLUMNS,
    }
    raw: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("postgres*.sql")):
        blocks = re.split(r"^-- name: (\w+)\n", path.read_text("utf-8"), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            if name in raw:
                raise RuntimeError(f"SQL block {name!r} is defined twice ({path.name})")
            raw[name] = body
    parts = {name: body for name, body in raw.items() if name.startswith("part_")}
    # a part's own comment lines stay in its block: only its SQL goes into the statements
    values |= {
        name: "\n".join(
            line for line in body.strip().splitlines() if not line.startswith("--")
        ).format_map(values)
        for name, body in parts.items()
    }
    sql: dict[str, str] = {}
    clocked: set[str] = set()
    for name, body in raw.items():
        if name in parts:
            continue
        sql[name] = body.strip().format_map(values)
        if "{now}" in body or any(
            f"{{{part}}}" in body and "{now}" in parts[part] for part in parts
        ):
            clocked.add(name)
    return sql, frozenset(clocked)


SQL, CLOCKED = _load_sql()


# --- connecting, and errors ----------------------------------------------------------------------


async def create_pool(target: PgTarget) -> asyncpg.Pool:
    """A small pool; its connections keep no session state (no SET, LISTEN or session lock),
    so they are handed back without asyncpg's reset query, which would cost a round trip on
    every release (open transactions are still rolled back)."""
    try:
        return await asyncpg.create_pool(
            target.url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT,
            reset=_keep_session,
            server_settings={"application_name": APPLICATION_NAME},
        )
    except Exception as exc:
        raise connect_error(target, exc) from None


async def connect(target: PgTarget) -> asyncpg.Connection:
    """One connection outside the pool (the LISTEN connection, `db status`)."""
    try:
        return await asyncpg.connect(
            target.url,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": APPLICATION_NAME},
        )
    except Exception as exc:
        raise connect_error(target, exc) from None


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def connect_error(target: PgTarget, exc: BaseException) -> QueuectlError:
    """Why a connection could not be made, as one line naming the server and the database."""
    if isinstance(exc, QueuectlError):
        return exc
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StorageError(
            f"{target.where} does not exist; create it (createdb -h {target.host} "
            f"-p {target.port} {target.database}) or fix --db"
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return StorageError(
            f"{target.where} refused the login of user {target.user!r}: wrong password; "
            "fix the password in --db (or ~/.pgpass)"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StorageError(
            f"{target.where} refused the login of user {target.user!r}: {_one_line(exc)}; "
            "fix the user in --db or the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return ConnectionLost(f"{target.where} is not accepting connections now: {_one_line(exc)}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConnectionLost(
            f"cannot connect to {target.where}: no answer within {CONNECT_TIMEOUT:g} s; "
            "check the host and port in --db"
        )
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return ConnectionLost(
            f"cannot connect to {target.where}: connection refused; is the server running "
            "and listening there?"
        )
    if isinstance(exc, OSError):
        return ConnectionLost(f"cannot connect to {target.where}: {_one_line(exc)}")
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return StorageError(f"cannot connect to {target.where}: {_one_line(exc)}")
    raise exc


#: what asyncpg raises when the server or the connection fails
DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)
#: a connection that broke, or a server that stopped or cut sessions: a failure that passes
LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, pg_terminate_backend, starting up
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection the server cut while it was idle
    OSError,
)
#: raised before the statement left this process: it never ran, so it can run again
NOT_SENT = (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


def storage_error(target: PgTarget, exc: BaseException) -> StorageError:
    """A failed operation, as one line naming the server and the database."""
    if isinstance(exc, LOST):
        return ConnectionLost(f"lost the connection to {target.where}: {_one_line(exc)}")
    if isinstance(exc, asyncio.TimeoutError):
        return ConnectionLost(f"{target.where} did not answer in time")
    return StorageError(f"{target.where}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.rstrip(".")


class HasTarget:
    """What `translated` needs of the object whose methods it wraps."""

    target: PgTarget


def translated(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn asyncpg's errors into a StorageError naming the server and the database."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "queuectl_jobs_unique_live":
                raise UniqueKeyHeld() from exc
            owner = args[0]
            assert isinstance(owner, HasTarget)
            raise storage_error(owner.target, exc) from exc
        except DB_ERRORS as exc:
            owner = args[0]
            assert isinstance(owner, HasTarget)
            raise storage_error(owner.target, exc) from exc

    return wrapper


# --- rows to models ----------------------------------------------------------------------------

Row = Mapping[str, Any]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _error_kind(value: Any) -> ErrorKind | None:
    return None if value is None else ErrorKind(value)


def job_of(row: Row) -> Job:
    env = json.loads(row["env"])
    return Job(
        id=str(row["id"]),
        command=str(row["command"]),
        state=JobState(row["state"]),
        priority=int(row["priority"]),
        max_retries=int(row["max_retries"]),
        timeout=_float(row["timeout"]),
        cwd=str(row["cwd"]),
        env={str(key): str(value) for key, value in env.items()},
        attempts=int(row["attempts"]),
        runs=int(row["runs"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        run_at=float(row["run_at"]),
        next_run_at=float(row["next_run_at"]),
        last_error=_str(row["last_error"]),
        exit_code=_int(row["exit_code"]),
        started_at=_float(row["started_at"]),
        finished_at=_float(row["finished_at"]),
        lease_owner=_str(row["lease_owner"]),
        lease_expires_at=_float(row["lease_expires_at"]),
        pid=_int(row["pid"]),
        error_kind=_error_kind(row["error_kind"]),
        label=_str(row["label"]),
        queue=str(row["queue"]),
        unique_key=_str(row["unique_key"]),
    )


def attempt_of(row: Row) -> Attempt:
    """Both streams come from the ordered output (encoded as by the SQLite store), when there
    is one; an attempt whose output was dropped has none."""
    stdout, stderr = bytes(row["stdout"]), bytes(row["stderr"])
    output = None if row["output"] is None else decode_output(bytes(row["output"]))
    if output is not None:
        stdout = b"".join(data for stream, data in output if stream == "stdout")
        stderr = b"".join(data for stream, data in output if stream == "stderr")
    return Attempt(
        job_id=str(row["job_id"]),
        run=int(row["run"]),
        engine=_str(row["engine"]),
        started_at=float(row["started_at"]),
        finished_at=_float(row["finished_at"]),
        exit_code=_int(row["exit_code"]),
        error=_str(row["error"]),
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=bool(row["stdout_truncated"]),
        stderr_truncated=bool(row["stderr_truncated"]),
        error_kind=_error_kind(row["error_kind"]),
        output=output,
    )
