"""A queue made by the queuectl before the job counters (SQLite schema 4, PostgreSQL step 3),
with jobs in it, is migrated with its counters filled from those jobs, and they stay exact
through the changes that follow. These write the old schema and its rows with SQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pg
import pytest
from test_counts import LEASE, assert_exact

from queuectl.states import JobState
from queuectl.store import open_store
from queuectl.store.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from queuectl.store.postgres_schema import VERSION_TABLE
from queuectl.store.sqlite_db import MIGRATIONS, statements

T0 = 1_700_000_000.0  # in the past: the pending jobs are due
#: (queue, state, how many) of the jobs the old queue holds
JOBS = [("default", "pending", 5), ("default", "completed", 7), ("a", "dead", 2)]
JOBS += [("a", "processing", 1), ("b", "blocked", 1), ("b", "canceled", 3)]
INSERT = (
    "INSERT INTO {jobs} (id, command, state, max_retries, cwd, created_at, updated_at, run_at, "
    "next_run_at, queue) VALUES ({marks})"
)


def rows() -> Iterator[tuple[object, ...]]:
    n = 0
    for queue, state, count in JOBS:
        for _ in range(count):
            n += 1
            yield (f"old-{n}", "true", state, 3, "/", T0, T0, T0, T0 - n, queue)


def expected() -> dict[JobState, int]:
    counts = dict.fromkeys(JobState, 0)
    for _, state, count in JOBS:
        counts[JobState(state)] += count
    return counts


async def test_a_schema_4_sqlite_queue_is_migrated_with_its_counts(home: Path) -> None:
    with contextlib.closing(sqlite3.connect(home / "queue.db")) as conn:
        for migration in MIGRATIONS[:4]:
            for statement in statements(migration):
                conn.execute(statement)
        marks = ", ".join("?" * 10)
        conn.executemany(INSERT.format(jobs="jobs", marks=marks), rows())
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    store = await open_store(home)
    try:
        assert await store.counts() == expected()
        await assert_exact(store, "after the migration")
        assert len(await store.claim("e", 3, LEASE)) == 3
        await assert_exact(store, "after a claim")
    finally:
        await store.close()


@pytest.fixture
def empty_db() -> Iterator[str]:
    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    url = pg.empty_database()
    yield url
    pg.drop_database(url)


async def test_a_step_3_postgres_queue_is_migrated_with_its_counts(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await conn.execute(VERSION_TABLE)
        for migration in PG_MIGRATIONS[:3]:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO queuectl_schema (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        marks = ", ".join(f"${n}" for n in range(1, 11))
        await conn.executemany(INSERT.format(jobs="queuectl_jobs", marks=marks), list(rows()))
    finally:
        await conn.close()
    store = await open_store(empty_db)
    try:
        assert await store.counts() == expected()
        await assert_exact(store, "after the migration")
        assert len(await store.claim("e", 3, LEASE)) == 3
        await assert_exact(store, "after a claim")
    finally:
        await store.close()
