"""The SQLite file itself: its SQL, opening and migrating it, rows to models, error messages.

Kept apart from the SqliteStore's operations so that each stays small; nothing here knows of
the engine or the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import aiosqlite

from queuectl.errors import StorageError
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

SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 30_000
R = TypeVar("R")


def _states(states: Sequence[JobState]) -> str:
    return ", ".join(f"'{state.value}'" for state in states)


def _load_sql() -> dict[str, str]:
    """Every named block of every sqlite*.sql file of the package (one file per topic)."""
    sets = {
        "runnable": _states(RUNNABLE),
        "cancelable": _states(CANCELABLE),
        "retryable": _states(RETRYABLE),
        "finished": _states(FINISHED),
        "restartable": _states(RESTARTABLE),
        "at_rest": _states(AT_REST),
        "live": _states(LIVE),
    }
    sql: dict[str, str] = {}
    # The files beside this module, not importlib.resources: importing that costs every CLI
    # start-up ~4 ms (tempfile, shutil, zipfile), and the package is always installed as files.
    for path in sorted(Path(__file__).parent.glob("sqlite*.sql")):
        name = path.name
        blocks = re.split(r"^-- name: (\w+)\n", path.read_text("utf-8"), flags=re.M)
        for block, body in zip(blocks[1::2], blocks[2::2], strict=True):
            if block in sql:
                raise RuntimeError(f"SQL block {block!r} is defined twice ({name})")
            text = body.strip()
            sql[block] = text if block.startswith("schema_") else text.format_map(sets)
    return sql


SQL = _load_sql()
MIGRATIONS = [SQL[f"schema_v{version}"] for version in range(1, SCHEMA_VERSION + 1)]


async def connect(path: Path, durable: bool) -> aiosqlite.Connection:
    """Open (creating 0600, as it holds job output) and migrate the database at `path`."""
    try:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        conn = await aiosqlite.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open queue database {str(path)!r}: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        await _setup(conn, path, durable)
    except sqlite3.Error as exc:
        await conn.close()
        raise storage_error(path, exc) from None
    except BaseException:
        await conn.close()
        raise
    return conn


async def pragma(conn: aiosqlite.Connection, name: str) -> int:
    rows = list(await conn.execute_fetchall(f"PRAGMA {name}"))
    return int(rows[0][0]) if rows else 0


async def _setup(conn: aiosqlite.Connection, path: Path, durable: bool) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    # a canceled job's trigger cancels its blocked children, whose triggers cancel theirs
    await conn.execute("PRAGMA recursive_triggers = ON")
    await conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    rows = list(await conn.execute_fetchall("PRAGMA journal_mode"))
    if not rows or rows[0][0] != "wal":
        await conn.execute("PRAGMA journal_mode = WAL")
    version = await pragma(conn, "user_version")
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"queue database {str(path)!r} has schema {version}, newer than this "
            f"queuectl understands ({SCHEMA_VERSION}); upgrade queuectl"
        )
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = await pragma(conn, "user_version")  # another process may have migrated
        for migration in MIGRATIONS[version:]:
            for statement in statements(migration):
                await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


def statements(script: str) -> list[str]:
    """The statements of a migration, split where SQLite says one is complete (a trigger's
    body holds semicolons of its own)."""
    found: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip().removesuffix(";"))
            current = ""
    if current.strip():
        found.append(current.strip())
    return found


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """The sqlite3 error as one line naming the file and what to do."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        hint = "the file is corrupt; restore it from a backup or use another --home"
    elif "readonly" in text or "read-only" in text:
        hint = "the file or its directory is read-only; fix its permissions"
    elif "unable to open" in text:
        hint = "check that the directory exists and is readable and writable"
    elif "locked" in text or "busy" in text:
        hint = "another process held the database too long; try again"
    else:
        return StorageError(f"queue database {str(path)!r}: {text}")
    return StorageError(f"queue database {str(path)!r}: {text} ({hint})")


def in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], R]) -> R:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _error_kind(value: str | None) -> ErrorKind | None:
    return None if value is None else ErrorKind(value)


def job_of(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        command=row["command"],
        state=JobState(row["state"]),
        priority=row["priority"],
        max_retries=row["max_retries"],
        timeout=row["timeout"],
        cwd=row["cwd"],
        env={} if row["env"] == "{}" else json.loads(row["env"]),  # most jobs: no env
        attempts=row["attempts"],
        runs=row["runs"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run_at=row["run_at"],
        next_run_at=row["next_run_at"],
        last_error=row["last_error"],
        exit_code=row["exit_code"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        pid=row["pid"],
        error_kind=_error_kind(row["error_kind"]),
        label=row["label"],
        queue=row["queue"],
        unique_key=row["unique_key"],
    )


def attempt_of(row: sqlite3.Row) -> Attempt:
    """Both streams come from the ordered output when there is one (sqlite_output.py), else
    from the columns of an attempt recorded before it was kept."""
    stdout, stderr = bytes(row["stdout"]), bytes(row["stderr"])
    output = None if row["output"] is None else decode_output(row["output"])
    if output is not None:
        stdout = b"".join(data for stream, data in output if stream == "stdout")
        stderr = b"".join(data for stream, data in output if stream == "stderr")
    return Attempt(
        job_id=row["job_id"],
        run=row["run"],
        engine=row["engine"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        error=row["error"],
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=bool(row["stdout_truncated"]),
        stderr_truncated=bool(row["stderr_truncated"]),
        error_kind=_error_kind(row["error_kind"]),
        output=output,
    )
