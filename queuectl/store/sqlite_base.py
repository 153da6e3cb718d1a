"""The SQLite store's connection: opening it, one write transaction at a time, the file's
identity, and the translation of sqlite3 errors into messages naming the file."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar, cast

import aiosqlite

from queuectl.config import Config
from queuectl.errors import QueueMissing, StorageError, UniqueKeyHeld
from queuectl.lock import EngineLock
from queuectl.paths import ensure_home
from queuectl.store import Clock
from queuectl.store.sqlite_db import SQL, connect, in_transaction, pragma, storage_error

P = ParamSpec("P")
R = TypeVar("R")


def translated(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn sqlite3 errors into StorageError naming the database file and what to do."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except sqlite3.IntegrityError as exc:
            if "jobs.unique_key" in str(exc):  # the partial unique index of live jobs
                raise UniqueKeyHeld() from exc
            store = args[0]
            assert isinstance(store, SqliteBase)
            raise storage_error(store.path, exc) from exc
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, SqliteBase)
            raise storage_error(store.path, exc) from exc

    return wrapper


class SqliteBase:
    """The connection and its transactions, shared by the operations of each topic."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, clock: Clock) -> None:
        self.path = path
        self.now = clock
        self._conn = conn
        self._write_lock = asyncio.Lock()
        self._identity = self._file_identity()
        self._engine_lock: EngineLock | None = None
        self._version = 0  # data_version when the queue was last read for due jobs

    @classmethod
    async def open(
        cls, path: Path, *, durable: bool = True, clock: Clock | None = None, create: bool = True
    ) -> Self:
        if not create and not path.is_file():
            where = path.parent
            if where.exists() and not where.is_dir():
                raise QueueMissing(f"queue home {str(where)!r} is not a directory; check --home")
            raise QueueMissing(
                f"no queue at {str(path)!r}: nothing was ever enqueued there; check --home "
                "or --db (a command that only reads never creates a queue)"
            )
        ensure_home(path.parent)
        store = cls(path, await connect(path, durable), clock or time.time)
        store._version = await pragma(store._conn, "data_version")
        return store

    @property
    def location(self) -> str:
        return str(self.path)

    def _file_identity(self) -> tuple[int, int]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(
                f"queue database {str(self.path)!r} was deleted while in use; "
                "its queue is gone (restore it from a backup)"
            ) from None
        return info.st_dev, info.st_ino

    def _check_file(self) -> None:
        """SQLite in WAL mode goes on writing to a deleted file; a long-lived engine must
        notice instead of running jobs whose results vanish (a new queue may stand there)."""
        if self._file_identity() != self._identity:
            raise StorageError(
                f"queue database {str(self.path)!r} was replaced by another "
                "file while in use; restart the engine"
            )

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time: the engine's coroutines share this connection."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _transact(self, body: Callable[[sqlite3.Connection], R]) -> R:
        """Run `body` as one write transaction on aiosqlite's thread.

        One hop to that thread for the whole transaction instead of one per statement: the
        hops, not SQLite, are what limit the engine's throughput. aiosqlite has no public call
        for this; Connection._execute is the method each of its public calls goes through
        (the version range is pinned in pyproject.toml).
        """
        return await self._hop(functools.partial(in_transaction, body=body))

    async def _hop(self, body: Callable[[sqlite3.Connection], R]) -> R:
        """Run `body` on aiosqlite's thread in one hop, as the only writer meanwhile; `body`
        opens its own transaction, if any (see _transact)."""
        execute = cast(Callable[..., Awaitable[R]], self._conn._execute)
        async with self._write_lock:
            return await execute(body, self._conn._conn)

    async def _rows(
        self, name: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(SQL[name], params))

    async def close(self) -> None:
        await self._conn.close()
        if self._engine_lock is not None:
            self._engine_lock.release()

    async def _config(self) -> Config:
        return Config.from_stored(
            {name: json.loads(value) for name, value in await self._rows("get_config")}
        )
