"""The PostgreSQL store's connections: opening (and migrating) the database, the pool, the
clock, transactions, and the change watch; shared by the operations of each topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

import asyncpg

from queuectl.config import Config
from queuectl.errors import QueueMissing
from queuectl.store import Clock
from queuectl.store.postgres_db import (
    CLOCKED,
    DB_ERRORS,
    NOT_SENT,
    POOL_SIZE,
    SQL,
    HasTarget,
    PgTarget,
    create_pool,
    storage_error,
)
from queuectl.store.postgres_listen import ChangeWatch
from queuectl.store.postgres_schema import LATEST, migrate, newer_schema

CLOSE_TIMEOUT = 10.0
#: connections tried for one statement: as many as the pool may hold that the server cut
SEND_TRIES = POOL_SIZE + 1


class PostgresBase(HasTarget):
    def __init__(
        self, target: PgTarget, pool: asyncpg.Pool, clock: Clock | None, changes: int
    ) -> None:
        self.target = target
        self._pool = pool
        self._clock = clock
        self._watch = ChangeWatch(target, self._counter, changes)
        self._engine_id: str | None = None  # the engine attached through this store
        self._concurrency: int | None = None

    @classmethod
    async def open(
        cls, url: str, *, durable: bool = True, clock: Clock | None = None, create: bool = True
    ) -> Self:
        """Connect, and create or upgrade the schema if it is not the latest.

        `durable` changes nothing here: every commit waits for the server's WAL flush
        (synchronous_commit stays on). Unlike SQLite's one engine, which dies with the machine
        whose power it lost, engines on other hosts outlive a crash of the server: a lost claim
        would let one of them run a job that another still runs.
        """
        target = PgTarget.parse(url)
        pool = await create_pool(target)
        try:
            changes = await _ensure_schema(pool, target, create)
        except BaseException:
            pool.terminate()
            raise
        return cls(target, pool, clock, changes)

    @property
    def location(self) -> str:
        return self.target.location

    def _args(self, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The statement's arguments, with the clock first for those that read "now" (None:
        the database server's clock)."""
        if name in CLOCKED:
            return (None if self._clock is None else self._clock(), *args)
        return args

    async def _fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._run(lambda conn: conn.fetch(SQL[name], *self._args(name, args))))

    async def _value(self, name: str, *args: Any) -> Any:
        return await self._run(lambda conn: conn.fetchval(SQL[name], *self._args(name, args)))

    async def _execute(self, name: str, *args: Any) -> str:
        """Run the statement; its command tag ('UPDATE 7')."""
        return str(await self._run(lambda conn: conn.execute(SQL[name], *self._args(name, args))))

    async def _run(self, call: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """`call` on a pooled connection, on another one if the first turns out to be one the
        server cut while it sat in the pool (after a restart, or pg_terminate_backend): such a
        failure comes before the statement is sent, so running it again cannot run it twice."""
        for tries in range(1, SEND_TRIES + 1):
            async with self._pool.acquire() as conn:
                try:
                    return await call(conn)
                except NOT_SENT:
                    conn.terminate()
                    if tries == SEND_TRIES:
                        raise
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        """A transaction, begun on a live connection (as `_run` finds one)."""
        for tries in range(1, SEND_TRIES + 1):
            conn = await self._pool.acquire()
            transaction = conn.transaction()
            try:
                await transaction.start()
                break
            except NOT_SENT:
                conn.terminate()
                await self._pool.release(conn)
                if tries == SEND_TRIES:
                    raise
            except BaseException:
                await self._pool.release(conn)
                raise
        try:
            yield Tx(self, conn)
        except BaseException:
            with contextlib.suppress(*DB_ERRORS):
                await transaction.rollback()
            raise
        else:
            await transaction.commit()
        finally:
            await self._pool.release(conn)

    async def _counter(self) -> int:
        try:
            return int(await self._value("changes"))
        except DB_ERRORS as exc:
            raise storage_error(self.target, exc) from exc

    @staticmethod
    def _config_of(rows: list[asyncpg.Record]) -> Config:
        return Config.from_stored(
            {str(row["key"]): json.loads(row["value"]) for row in rows if row["key"] is not None}
        )

    async def close(self) -> None:
        await self._watch.close()
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except (TimeoutError, *DB_ERRORS):
            self._pool.terminate()


class Tx:
    """One transaction's connection, with the store's statements and clock."""

    def __init__(self, store: PostgresBase, conn: asyncpg.Connection) -> None:
        self.store = store
        self.conn = conn

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.conn.fetch(SQL[name], *self.store._args(name, args)))

    async def value(self, name: str, *args: Any) -> Any:
        return await self.conn.fetchval(SQL[name], *self.store._args(name, args))

    async def execute(self, name: str, *args: Any) -> str:
        return str(await self.conn.execute(SQL[name], *self.store._args(name, args)))

    async def notify(self) -> None:
        """Wake the listening engines when this transaction commits."""
        watch = self.store._watch
        watch.bumped(int(await self.value("notify", watch.token())))


async def _ensure_schema(pool: asyncpg.Pool, target: PgTarget, create: bool) -> int:
    """Migrate if needed; the change counter, read in the same round trip as the version."""
    async with pool.acquire() as conn:
        try:
            try:
                row = await conn.fetchrow(SQL["open"])
            except asyncpg.UndefinedTableError:
                if not create:
                    raise QueueMissing(
                        f"no queue in {target.where}: nothing was ever enqueued there; check "
                        "--db (a command that only reads never creates a queue)"
                    ) from None
                row = None
            if row is not None and int(row["version"] or 0) > LATEST:
                raise newer_schema(target, int(row["version"]))
            if row is None or int(row["version"] or 0) < LATEST:
                await migrate(conn, target)
                row = await conn.fetchrow(SQL["open"])
        except DB_ERRORS as exc:
            raise storage_error(target, exc) from exc
        return int(row["changes"])
