"""The SQLite store's own tests: facts about its file that no other backend shares (the schema
version and its migrations, WAL mode, the file's permissions, how config is stored, the engine
lock beside the file).

Unlike the contract suite in test_store.py, these may open the database file with the stdlib
sqlite3 module.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import finish, spec

from queuectl.config import Config
from queuectl.errors import EngineRunning, StorageError
from queuectl.models import Chunk, Outcome
from queuectl.paths import DB_NAME
from queuectl.states import ErrorKind, JobState
from queuectl.store import open_store, sqlite_path
from queuectl.store.sqlite_db import SCHEMA_VERSION, SQL

T0 = 1_800_000_000.0


def db_path(home: Path) -> Path:
    return home / DB_NAME


def connect(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path, timeout=5))


def file_snapshot(path: Path) -> dict[str, Any]:
    """Every row of every table (sorted), the schema and the schema version."""
    with connect(path) as conn:
        snapshot: dict[str, Any] = {
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
            "schema": sorted(conn.execute("SELECT type, name, sql FROM sqlite_master")),
        }
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            snapshot[table] = sorted(conn.execute(f'SELECT * FROM "{table}"'), key=repr)
    return snapshot


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


class TestSqliteFile:
    async def test_schema_version_and_wal(self, home: Path) -> None:
        store = await open_store(home)
        await store.close()
        with connect(db_path(home)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            assert {"jobs", "attempts", "config", "job_counts"} <= tables
            assert "error_kind" in columns(conn, "jobs")
            assert "error_kind" in columns(conn, "attempts")
            assert "label" in columns(conn, "jobs") and "output" in columns(conn, "attempts")
            indexes = {row[1] for row in conn.execute("PRAGMA index_list(jobs)")}
            assert "jobs_finished" in indexes

    async def test_the_file_is_private(self, home: Path) -> None:
        store = await open_store(home)
        await store.close()
        assert db_path(home).stat().st_mode & 0o777 == 0o600

    async def test_reopening_does_not_migrate_again(self, home: Path) -> None:
        store = await open_store(home, clock=lambda: T0)
        await store.enqueue([spec(id="a")])
        await store.close()
        before = file_snapshot(db_path(home))
        store = await open_store(home)
        await store.close()
        assert file_snapshot(db_path(home)) == before

    async def test_a_newer_schema_is_refused(self, home: Path) -> None:
        store = await open_store(home)
        await store.close()
        with connect(db_path(home)) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        before = file_snapshot(db_path(home))
        with pytest.raises(StorageError, match="newer") as info:
            await open_store(home)
        assert str(db_path(home)) in str(info.value)
        assert file_snapshot(db_path(home)) == before

    async def test_a_corrupt_file_is_a_storage_error(self, home: Path) -> None:
        db_path(home).write_bytes(b"this is not a database\n" * 100)
        with pytest.raises(StorageError) as info:
            await open_store(home)
        assert str(db_path(home)) in str(info.value)
        assert "corrupt" in str(info.value)

    async def test_the_home_is_created_0700(self, home: Path) -> None:
        target = home / "new" / "queue"
        store = await open_store(target)
        await store.close()
        assert db_path(target).is_file()
        assert target.stat().st_mode & 0o777 == 0o700

    async def test_a_sqlite_url_names_the_file(self, home: Path) -> None:
        path = home / "elsewhere" / "my.db"
        assert sqlite_path(f"sqlite://{path}") == path
        store = await open_store(f"sqlite://{path}")
        try:
            assert store.location == str(path)
            await store.enqueue([spec(id="a")])
        finally:
            await store.close()
        assert path.is_file()
        assert not db_path(home).exists()

    async def test_config_is_stored_as_json(self, home: Path) -> None:
        store = await open_store(home)
        await store.set_config("job-timeout", None)
        await store.set_config("backoff-max", 90.0)
        await store.close()
        with connect(db_path(home)) as conn:
            rows = dict(conn.execute("SELECT key, value FROM config"))
        assert rows == {"job-timeout": "null", "backoff-max": "90.0"}

    async def test_an_unknown_stored_config_key_is_ignored(self, home: Path) -> None:
        """A newer queuectl may store keys this one does not know."""
        store = await open_store(home)
        await store.set_config("concurrency", 3)
        await store.close()
        with connect(db_path(home)) as conn:
            conn.execute("INSERT INTO config (key, value) VALUES ('from-the-future', '1')")
            conn.commit()
        store = await open_store(home)
        try:
            config = await store.config()
        finally:
            await store.close()
        assert config.concurrency == 3
        assert "from-the-future" not in config.as_dict()

    async def test_the_error_kind_is_stored_by_name(self, home: Path) -> None:
        store = await open_store(home)
        try:
            await store.enqueue([spec(id="w")])
            await store.cancel("w")
        finally:
            await store.close()
        with connect(db_path(home)) as conn:
            assert conn.execute("SELECT error_kind FROM jobs WHERE id = 'w'").fetchone() == (
                "canceled",
            )

    async def test_the_output_is_stored_once_in_order_and_old_attempts_read_as_before(
        self, home: Path
    ) -> None:
        """A finished attempt keeps its bytes only in `output` (stdout and stderr are derived
        from it, not stored twice); one recorded before schema v3 (output NULL, its bytes in
        the two columns) reads back as stdout, then stderr."""
        chunks = (Chunk("stderr", b"warn\n"), Chunk("stdout", b"out\n"))
        store = await open_store(home)
        try:
            await store.enqueue([spec(id="new"), spec(id="old")])
            for job in await store.claim("e1", 2, 30.0):
                outcome = Outcome(None, exit_code=0, stdout=b"out\n", stderr=b"warn\n")
                await finish(
                    store, job, outcome if job.id == "old" else replace(outcome, output=chunks)
                )
        finally:
            await store.close()
        with connect(db_path(home)) as conn:
            sizes = "SELECT job_id, length(stdout) + length(stderr) FROM attempts"
            rows = dict(conn.execute(sizes))
            assert rows == {"new": 0, "old": 0}
            conn.execute(
                "UPDATE attempts SET output = NULL, stdout = x'6f75740a', stderr = x'7761726e0a' "
                "WHERE job_id = 'old'"
            )
            conn.commit()
        store = await open_store(home)
        try:
            [new] = await store.attempts("new")
            [old] = await store.attempts("old")
        finally:
            await store.close()
        assert (new.chunks(), new.stdout, new.stderr) == (chunks, b"out\n", b"warn\n")
        assert old.output is None
        assert old.chunks() == (Chunk("stdout", b"out\n"), Chunk("stderr", b"warn\n"))

    async def test_the_pause_is_a_config_row_that_config_does_not_show(self, home: Path) -> None:
        store = await open_store(home)
        try:
            await store.set_paused(True)
            config = await store.config()
        finally:
            await store.close()
        with connect(db_path(home)) as conn:
            rows = dict(conn.execute("SELECT key, value FROM config"))
        assert rows == {"internal:paused": "true"}
        assert config.as_dict() == Config().as_dict()

    # --- the engine lock ----------------------------------------------------------------------

    async def test_an_attached_engine_holds_a_lock_beside_the_file(self, home: Path) -> None:
        first, second = await open_store(home), await open_store(home)
        try:
            await first.attach_engine("e1")
            lock = home / f"{DB_NAME}.lock"
            assert lock.is_file()
            assert lock.stat().st_mode & 0o777 == 0o600
            with pytest.raises(EngineRunning, match=r"\(pid \d+\)"):
                await second.attach_engine("e2")
            await first.close()
            await second.attach_engine("e2")
        finally:
            await second.close()

    async def test_a_queue_in_another_file_of_the_same_home_has_its_own_lock(
        self, home: Path
    ) -> None:
        first = await open_store(home)
        second = await open_store(f"sqlite://{home / 'other.db'}")
        try:
            await first.attach_engine("e1")
            await second.attach_engine("e2")  # no EngineRunning: another queue
            assert (home / f"{DB_NAME}.lock").is_file()
            assert (home / "other.db.lock").is_file()
        finally:
            await first.close()
            await second.close()

    # --- migrations -----------------------------------------------------------------------------

    async def test_a_schema_1_database_is_migrated_and_keeps_its_rows(self, home: Path) -> None:
        path = db_path(home)
        with connect(path) as conn:
            conn.executescript(SQL["schema_v1"])
            conn.execute(
                "INSERT INTO jobs (id, command, state, priority, max_retries, timeout, cwd, env, "
                "attempts, runs, created_at, updated_at, run_at, next_run_at, last_error, "
                "exit_code, started_at, finished_at) VALUES ('old', 'echo old', 'failed', 2, 3, "
                "9.5, '/srv', '{\"K\": \"v\"}', 1, 1, ?, ?, ?, ?, 'exit code 1', 1, ?, ?)",
                (T0, T0 + 2, T0, T0 + 60, T0 + 1, T0 + 2),
            )
            conn.execute(
                "INSERT INTO attempts (job_id, run, engine, started_at, finished_at, exit_code, "
                "error, stdout, stderr) VALUES ('old', 1, 'e0', ?, ?, 1, 'exit code 1', "
                "x'6f75740a', x'')",
                (T0 + 1, T0 + 2),
            )
            conn.execute("INSERT INTO config (key, value) VALUES ('max-retries', '5')")
            conn.execute("PRAGMA user_version = 1")
            conn.commit()
        with connect(path) as conn:
            assert "error_kind" not in columns(conn, "jobs")

        store = await open_store(home, clock=lambda: T0 + 100)
        try:
            job = await store.get("old")
            assert (job.command, job.state, job.priority, job.max_retries) == (
                "echo old",
                JobState.FAILED,
                2,
                3,
            )
            assert (job.timeout, job.cwd, job.env) == (9.5, "/srv", {"K": "v"})
            assert (job.attempts, job.runs, job.next_run_at) == (1, 1, T0 + 60)
            assert (job.last_error, job.exit_code) == ("exit code 1", 1)
            assert job.error_kind is None
            [attempt] = await store.attempts("old")
            assert (attempt.engine, attempt.stdout, attempt.error) == (
                "e0",
                b"out\n",
                "exit code 1",
            )
            assert attempt.error_kind is None
            assert (await store.config()).max_retries == 5
            # and the migrated queue works on: the old job runs again, recording its kind
            [claimed] = await store.claim("e1", 10, 30.0)
            assert (claimed.id, claimed.runs, claimed.attempts) == ("old", 2, 2)
            assert await finish(store, claimed, Outcome(ErrorKind.TIMEOUT, error="timed out"))
            assert (await store.get("old")).error_kind is ErrorKind.TIMEOUT
            assert [a.error_kind for a in await store.attempts("old")] == [None, ErrorKind.TIMEOUT]
        finally:
            await store.close()
        with connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert "error_kind" in columns(conn, "jobs")
            assert "error_kind" in columns(conn, "attempts")

    async def test_a_migration_that_fails_leaves_schema_1(self, home: Path) -> None:
        """The migration runs in one transaction: if it cannot complete, nothing of it stays."""
        path = db_path(home)
        with connect(path) as conn:
            conn.executescript(SQL["schema_v1"])
            conn.execute("ALTER TABLE attempts ADD COLUMN error_kind TEXT")  # in the way
            conn.execute("PRAGMA user_version = 1")
            conn.commit()
        before = file_snapshot(path)
        with pytest.raises(StorageError):
            await open_store(home)
        assert file_snapshot(path) == before


@pytest.mark.slow
def test_the_file_is_intact_after_concurrent_enqueuers_and_an_engine(home: Path) -> None:
    """The chaos scenario of concurrent enqueuers checks through the Store that every job ran
    once; this adds SQLite's own verdict on the file it leaves behind."""
    from helpers import Backend
    from reliability.chaos.enqueuers import concurrent_enqueue

    result = concurrent_enqueue(
        Backend("sqlite", home), enqueuers=3, per_enqueuer=150, seed_value=9, concurrency=10
    )
    assert result.ok, result.report()
    with connect(db_path(home)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
