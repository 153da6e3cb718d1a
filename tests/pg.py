"""PostgreSQL databases for the tests, on the local server (127.0.0.1:5432, trust auth; or
$QUEUECTL_TEST_PG, a postgresql:// URL without a database).

A test session (one process) creates a template database `queuectl_test_<pid>_<random>` with
queuectl's schema; each queue a test asks for is a database of its own: a clone of the template
(CREATE DATABASE ... TEMPLATE, about 40 ms), or one that an earlier test released and that was
emptied for it (TRUNCATE of queuectl's tables, a few ms: DROP DATABASE forces a checkpoint, which
takes seconds on a busy machine). So every test starts from an empty queue of its own, and tests
that hold several queues at once (the bad-input runs, the migration tests) get as many. What is
left is dropped when the process exits; databases left by a session that was killed are
dropped by the next one (their pid is gone).

The administrative statements go through connections to the `postgres` maintenance database,
held by a thread with an event loop of its own, so that they can be called from synchronous
fixtures as well as from inside a test's running event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import os
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg

from queuectl import procfs

T = TypeVar("T")

SERVER_ENV = "QUEUECTL_TEST_PG"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
PREFIX = "queuectl_test_"
CONNECT_TIMEOUT = 5.0
#: what release_database runs to give the next test an empty queue (the schema stays)
EMPTY = """
SET lock_timeout = '10s';
TRUNCATE queuectl_jobs, queuectl_attempts, queuectl_config, queuectl_engines,
         queuectl_schedules, queuectl_schedule_ticks, queuectl_queues, queuectl_deps
         RESTART IDENTITY;
ALTER SEQUENCE queuectl_changes RESTART;
"""


def server() -> str:
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER).rstrip("/")


def url(database: str) -> str:
    return f"{server()}/{database}"


def database_of(db_url: str) -> str:
    return db_url.rsplit("/", 1)[1].split("?", 1)[0]


class _Admin:
    """The maintenance connections, on a loop in a thread of its own: one lane for what the
    tests wait for, one for the drops they do not (DROP DATABASE forces a checkpoint, which
    takes seconds on a busy machine)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-admin", daemon=True)
        self.thread.start()
        self._conns: dict[str, asyncpg.Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.pending: list[concurrent.futures.Future[Any]] = []

    async def _on(self, lane: str, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        lock = self._locks.setdefault(lane, asyncio.Lock())
        async with lock:
            conn = self._conns.get(lane)
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(url("postgres"), timeout=CONNECT_TIMEOUT)
                self._conns[lane] = conn
            return await body(conn)

    def call(self, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(self._on("main", body), self.loop).result()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def execute(self, *statements: str) -> None:
        async def go(conn: asyncpg.Connection) -> None:
            for statement in statements:
                await conn.execute(statement)

        self.call(go)

    def fetch(self, query: str) -> list[Any]:
        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(query))

        return self.call(go)

    def drop_later(self, name: str) -> None:
        async def go(conn: asyncpg.Connection) -> None:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        self.pending.append(asyncio.run_coroutine_threadsafe(self._on("drop", go), self.loop))

    def close(self) -> None:
        async def disconnect() -> None:
            for conn in self._conns.values():
                conn.terminate()

        self.run(disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def wait_for_drops(self) -> None:
        for future in self.pending:
            try:
                future.result(timeout=120)
            except Exception as exc:  # the server went away: nothing more to do
                print(f"tests/pg.py: could not drop a test database: {exc}")
        self.pending.clear()


_admin: _Admin | None = None
_unavailable: str | None = None
_session = f"{PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
_template: str | None = None
_numbers = itertools.count(1)
_made: set[str] = set()
_free: list[str] = []  # emptied databases, for the next new_database()
_guard = threading.Lock()


def unavailable() -> str | None:
    """Why no PostgreSQL server can be used (None: one answers). Asked once per process."""
    global _admin, _unavailable
    with _guard:
        if _admin is None and _unavailable is None:
            admin = _Admin()
            try:
                admin.fetch("SELECT 1")
            except Exception as exc:
                _unavailable = (
                    f"no PostgreSQL server answers at {server()} ({type(exc).__name__}: {exc}); "
                    f"start it (see .ci/run) or set ${SERVER_ENV}"
                )
                admin.close()
            else:
                _admin = admin
        return _unavailable


def _require() -> _Admin:
    reason = unavailable()
    if reason is not None:
        try:
            import pytest
        except ImportError:  # scripts/soak.py, outside pytest
            raise RuntimeError(reason) from None
        pytest.skip(reason)
    assert _admin is not None
    return _admin


def _template_name() -> str:
    """The session's template, with queuectl's schema, created on first use."""
    global _template
    admin = _require()
    with _guard:
        if _template is None:
            _drop_stale(admin)
            admin.execute(f'CREATE DATABASE "{_session}"')
            atexit.register(_drop_all)
            _migrate(url(_session))
            _template = _session
        return _template


def _migrate(db_url: str) -> None:
    from queuectl.store import open_store

    async def go() -> None:
        store = await open_store(db_url)
        await store.close()

    assert _admin is not None
    _admin.run(go())


def new_database() -> str:
    """The URL of a database with queuectl's schema and nothing in it: one released by an
    earlier test (emptied), or a new clone of the template."""
    template = _template_name()
    with _guard:
        if _free:
            return url(_free.pop())
    name = f"{_session}_{next(_numbers)}"
    _require().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _made.add(name)
    return url(name)


def empty_database() -> str:
    """The URL of a new database without queuectl's schema (for the migration tests)."""
    _template_name()  # registers the clean-up, and drops stale databases
    name = f"{_session}_{next(_numbers)}"
    _require().execute(f'CREATE DATABASE "{name}"')
    _made.add(name)
    return url(name)


def release_database(db_url: str) -> None:
    """Empty a database from new_database() for the next test: cut off whatever is still
    connected to it (an engine a test left behind must not claim the next test's jobs), then
    TRUNCATE every queuectl table, which is much cheaper than DROP DATABASE (a checkpoint)
    and CREATE. A database that cannot be emptied is dropped instead."""
    name = _own(db_url)
    admin = _require()

    async def empty(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        target = await asyncpg.connect(db_url, timeout=CONNECT_TIMEOUT)
        try:
            await target.execute(EMPTY)
        finally:
            await target.close()

    try:
        admin.call(empty)
    except Exception:
        drop_database(db_url)
        return
    with _guard:
        _free.append(name)


def drop_database(db_url: str) -> None:
    """Drop the test database at `db_url`, cutting off whatever is still connected to it; in
    the background (the test does not wait for the checkpoint DROP DATABASE forces)."""
    name = _own(db_url)
    _made.discard(name)
    _require().drop_later(name)


def _own(db_url: str) -> str:
    name = database_of(db_url)
    if not name.startswith(_session):
        raise ValueError(f"not a database of this test session: {db_url}")
    return name


def _drop_all() -> None:
    if _admin is None:
        return
    for name in sorted(_made) + ([_template] if _template else []):
        _admin.drop_later(name)
    _admin.wait_for_drops()
    _admin.close()


def _drop_stale(admin: _Admin) -> None:
    """Databases of earlier test sessions whose process is gone (killed, timed out)."""
    for row in admin.fetch(f"SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"):
        match = re.match(rf"{PREFIX}(\d+)_", row["datname"])
        if match and int(match[1]) != os.getpid() and not procfs.alive(int(match[1])):
            admin.drop_later(row["datname"])
