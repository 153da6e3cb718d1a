"""The PostgreSQL store's own tests: facts no other backend shares (migrations under an advisory
lock, refusing a newer schema, the claim's plan, connection errors, the engines table, LISTEN
and its fallback, `db status`).

Unlike the contract suite in test_store.py, these may talk SQL to the database with asyncpg.
Each test gets databases of its own from tests/pg.py, and is skipped if no server answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pg
import pytest
from helpers import assert_one_line_error, finish, run_cli, run_cli_parallel, spec

from queuectl.errors import QueueMissing, StorageError
from queuectl.models import Outcome
from queuectl.states import ErrorKind, JobState
from queuectl.store import Store, open_store
from queuectl.store.postgres import PostgresStore
from queuectl.store.postgres_db import SQL, PgTarget
from queuectl.store.postgres_engine import MACHINE
from queuectl.store.postgres_schema import LATEST, MIGRATIONS

T0 = 1_800_000_000.0
LEASE = 30.0


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A new database without queuectl's schema."""
    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    url = pg.empty_database()
    yield url
    pg.drop_database(url)


@pytest.fixture
def queue_db() -> Iterator[str]:
    """A new database with queuectl's schema and no job."""
    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    url = pg.new_database()
    yield url
    pg.drop_database(url)


@pytest.fixture
async def sql(queue_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(queue_db)
    yield conn
    await conn.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def opened(url: str, **options: Any) -> PostgresStore:
    store = await open_store(url, **options)
    assert isinstance(store, PostgresStore)
    return store


# --- the schema and its migrations -------------------------------------------------------------


async def test_first_use_creates_the_schema(empty_db: str) -> None:
    store = await opened(empty_db)
    await store.close()
    rows = await fetch(empty_db, "SELECT version, name FROM queuectl_schema ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    assert rows[-1]["version"] == LATEST
    tables = await fetch(
        empty_db, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'queuectl_%'"
    )
    assert {r["tablename"] for r in tables} == {
        "queuectl_schema",
        "queuectl_jobs",
        "queuectl_attempts",
        "queuectl_config",
        "queuectl_engines",
        "queuectl_queues",
        "queuectl_deps",
        "queuectl_schedules",
        "queuectl_schedule_ticks",
        "queuectl_counts",
    }


async def test_stores_opening_a_fresh_database_at_once_migrate_it_once(empty_db: str) -> None:
    """The advisory lock queues the migrators; the second finds the version row and skips."""
    stores = await asyncio.gather(*(opened(empty_db) for _ in range(6)))
    try:
        await asyncio.gather(*(s.enqueue([spec(id=f"j{n}")]) for n, s in enumerate(stores)))
        assert sum((await stores[0].counts()).values()) == 6
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    rows = await fetch(empty_db, "SELECT version FROM queuectl_schema")
    assert sorted(r["version"] for r in rows) == list(range(1, LATEST + 1))


def test_processes_enqueueing_into_a_fresh_database_at_once_all_succeed(
    empty_db: str, home: Any
) -> None:
    calls = [
        (home, ["--db", empty_db, "enqueue", "--id", f"p{n}", "--", "true"], {}) for n in range(4)
    ]
    results = run_cli_parallel(calls)
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * 4
    rows = asyncio.run(fetch(empty_db, "SELECT id FROM queuectl_jobs ORDER BY id"))
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    versions = asyncio.run(fetch(empty_db, "SELECT version FROM queuectl_schema"))
    assert len(versions) == LATEST


async def test_reopening_does_not_migrate_again(queue_db: str) -> None:
    before = await fetch(queue_db, "SELECT version, applied_at FROM queuectl_schema")
    store = await opened(queue_db)
    await store.close()
    assert await fetch(queue_db, "SELECT version, applied_at FROM queuectl_schema") == before


async def test_a_newer_schema_is_refused(queue_db: str, sql: asyncpg.Connection, home: Any) -> None:
    await sql.execute(
        "INSERT INTO queuectl_schema (version, name) VALUES ($1, 'from_the_future')", LATEST + 1
    )
    with pytest.raises(StorageError, match=rf"schema {LATEST + 1}, newer .* upgrade queuectl"):
        await open_store(queue_db)
    result = run_cli(home, "--db", queue_db, "status")
    message = assert_one_line_error(result, 1)
    assert "upgrade queuectl" in message and pg.database_of(queue_db) in message
    status = run_cli(home, "--db", queue_db, "db", "status", "--json", check=True)
    report = json.loads(status.stdout)
    assert (report["version"], report["latest"], report["newer"]) == (LATEST + 1, LATEST, True)
    assert "upgrade queuectl" in run_cli(home, "--db", queue_db, "db", "status").stdout


async def test_a_command_that_only_reads_never_creates_the_schema(empty_db: str, home: Any) -> None:
    with pytest.raises(QueueMissing, match="no queue in PostgreSQL database"):
        await open_store(empty_db, create=False)
    result = run_cli(home, "--db", empty_db, "list")
    message = assert_one_line_error(result, 1)
    assert pg.database_of(empty_db) in message and "127.0.0.1" in message
    tables = await fetch(empty_db, "SELECT 1 FROM pg_tables WHERE tablename LIKE 'queuectl_%'")
    assert tables == []


def test_db_status_shows_the_version_and_what_is_pending(empty_db: str, home: Any) -> None:
    fresh = json.loads(run_cli(home, "--db", empty_db, "db", "status", "--json", check=True).stdout)
    assert fresh == {
        "backend": "postgresql",
        "database": empty_db,
        "version": 0,
        "latest": LATEST,
        "newer": False,
        "applied": [],
        "pending": [{"version": m.version, "name": m.name} for m in MIGRATIONS],
    }
    human = run_cli(home, "--db", empty_db, "db", "status", check=True).stdout
    assert "schema:   0" in human and f"{MIGRATIONS[0].version} {MIGRATIONS[0].name}" in human
    run_cli(home, "--db", empty_db, "enqueue", "--", "true", check=True)  # migrates
    done = json.loads(run_cli(home, "--db", empty_db, "db", "status", "--json", check=True).stdout)
    assert (done["version"], done["pending"]) == (LATEST, [])
    assert [step["version"] for step in done["applied"]] == list(range(1, LATEST + 1))
    assert all(step["applied_at"].endswith("+00:00") for step in done["applied"])
    assert "pending:  none" in run_cli(home, "--db", empty_db, "db", "status", check=True).stdout


# --- the claim's plan -----------------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _explain(
    conn: asyncpg.Connection, clock: float | None, analyze: bool, generic: bool = False
) -> list[dict[str, Any]]:
    """The claim's plan (of 20 jobs): as asyncpg's first executions get it (the parameters'
    values known), or the generic plan that PostgreSQL may switch a prepared statement to."""
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    tx = conn.transaction()
    await tx.start()
    try:
        if generic:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE claim(float8, text, bigint, float8) AS {SQL['claim']}")
            at = "NULL" if clock is None else repr(clock)
            raw = await conn.fetchval(f"EXPLAIN ({options}) EXECUTE claim({at}, 'e1', 20, {LEASE})")
        else:
            raw = await conn.fetchval(f"EXPLAIN ({options}) {SQL['claim']}", clock, "e1", 20, LEASE)
    finally:
        await tx.rollback()  # EXPLAIN ANALYZE runs the claim; PREPARE goes with the session
        if generic:
            await conn.execute("DEALLOCATE claim")
    return list(_nodes(json.loads(raw)[0]["Plan"]))


def _scans(nodes: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """The reads of queuectl_jobs: (node type, index), bitmap index scans included."""
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in nodes
        if node.get("Relation Name") == "queuectl_jobs"
        or str(node.get("Index Name", "")).startswith("queuectl_jobs")
    ]


def _assert_claim_plan(plan: list[dict[str, Any]], measured: bool) -> None:
    scans = _scans(plan)
    assert scans, plan
    assert all(kind != "Seq Scan" for kind, _ in scans), scans
    assert ("Index Scan", "queuectl_jobs_runnable") in scans, scans
    # the bound is counted on the due index, and the UPDATE finds its rows by primary key
    assert ("Index Only Scan", "queuectl_jobs_due") in scans, scans
    indexes = {index for _, index in scans}
    assert "queuectl_jobs_pkey" in indexes, scans
    if measured:
        runnable = [n for n in plan if n.get("Index Name") == "queuectl_jobs_runnable"]
        assert all(n["Actual Rows"] <= 20 for n in runnable), runnable
        [update] = [n for n in plan if n["Node Type"] == "ModifyTable" and "Update" in str(n)]
        assert update["Actual Rows"] == 20


async def test_the_claim_walks_the_partial_index_with_100k_jobs(sql: asyncpg.Connection) -> None:
    """100,000 jobs: 60,000 finished, 30,000 due in an hour (and ranked first), 10,000 due now.
    The claim reads through indexes only and takes its 20 jobs: before and after ANALYZE, on an
    injected clock and on the server's, and in the generic plan of a prepared statement."""
    now = time.time()
    await sql.execute(
        """
        INSERT INTO queuectl_jobs (id, command, state, priority, max_retries, cwd,
                                   created_at, updated_at, run_at, next_run_at, finished_at)
        SELECT 'j' || n, 'true',
               CASE WHEN n % 10 < 6 THEN 'completed' WHEN n % 10 < 8 THEN 'pending'
                    ELSE 'failed' END,
               CASE WHEN n % 10 BETWEEN 6 AND 8 THEN 10 ELSE n % 3 END,
               3, '/', $1::float8, $1, $1,
               CASE WHEN n % 10 BETWEEN 6 AND 8 THEN $1 + 3600 ELSE $1 - n::float8 END,
               CASE WHEN n % 10 < 6 THEN $1 END
          FROM generate_series(1, 100000) AS n
        """,
        now - 200_000,
    )
    counts = dict(await sql.fetch("SELECT state, count(*) FROM queuectl_jobs GROUP BY state"))
    assert counts == {"completed": 60_000, "pending": 20_000, "failed": 20_000}
    for analyzed in (False, True):
        if analyzed:
            await sql.execute("ANALYZE queuectl_jobs")
        for clock in (now - 200_000, None):
            _assert_claim_plan(await _explain(sql, clock, analyze=False), measured=False)
            _assert_claim_plan(await _explain(sql, clock, analyze=True), measured=True)
        _assert_claim_plan(await _explain(sql, None, analyze=True, generic=True), measured=True)


async def test_an_idle_claim_reads_next_to_nothing(sql: asyncpg.Connection) -> None:
    """Every job is due later: the bound, counted on the due index, is 0, so the claim's own
    scan never runs (without the bound, it could walk all 20,000 of them to find none)."""
    await sql.execute(
        """
        INSERT INTO queuectl_jobs (id, command, state, priority, max_retries, cwd,
                                   created_at, updated_at, run_at, next_run_at)
        SELECT 'j' || n, 'true', 'pending', n % 5, 3, '/', $1::float8, $1, $1, $1 + n::float8
          FROM generate_series(1, 20000) AS n
        """,
        T0,
    )
    await sql.execute("ANALYZE queuectl_jobs")
    measured = await _explain(sql, T0, analyze=True)
    assert all(kind != "Seq Scan" for kind, _ in _scans(measured))
    reads = [n for n in measured if n.get("Relation Name") == "queuectl_jobs"]
    assert reads and all(n["Actual Rows"] == 0 for n in reads), reads
    assert sum(n.get("Rows Removed by Filter", 0) for n in measured) == 0, measured
    assert any(n["Actual Loops"] == 0 for n in reads), reads  # the claim's scan never ran


# --- connections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "fragments"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/queuectl_nowhere",
            ["'queuectl_nowhere' on 127.0.0.1:1", "connection refused"],
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/queuectl_no_such_database",
            ["'queuectl_no_such_database' on 127.0.0.1:5432", "does not exist", "createdb"],
        ),
        (
            "postgresql://queuectl_no_such_user@127.0.0.1:5432/postgres",
            ["'postgres' on 127.0.0.1:5432", "refused the login", "queuectl_no_such_user"],
        ),
    ],
    ids=["server-down", "missing-database", "bad-user"],
)
@pytest.mark.parametrize("command", [["status"], ["enqueue", "--", "true"], ["worker", "start"]])
def test_connection_errors_are_one_line(
    db: str, fragments: list[str], command: list[str], home: Any
) -> None:
    if pg.unavailable() and "5432" in db:
        pytest.skip(pg.unavailable() or "")
    result = run_cli(home, "--db", db, *command)
    message = assert_one_line_error(result, 1)
    for fragment in fragments:
        assert fragment in message


def test_the_password_is_never_shown() -> None:
    target = PgTarget.parse("postgresql://alice:s3cret@db.example:6543/jobs?sslmode=require")
    assert (target.host, target.port, target.database, target.user) == (
        "db.example",
        "6543",
        "jobs",
        "alice",
    )
    assert "s3cret" not in target.location and "s3cret" not in target.where
    assert target.location == "postgresql://alice@db.example:6543/jobs?sslmode=require"


# --- the engines table, orphans ---------------------------------------------------------------


async def test_attached_engines_are_registered_and_beat(queue_db: str) -> None:
    store = await opened(queue_db, clock=lambda: T0)
    try:
        await store.attach_engine("eng-1")
        [row] = await fetch(queue_db, "SELECT * FROM queuectl_engines")
        assert (row["id"], row["machine"], row["heartbeat_at"]) == ("eng-1", MACHINE, T0)
        later = await opened(queue_db, clock=lambda: T0 + 10)
        await later.renew_leases("eng-1", LEASE)
        await later.close()
        [row] = await fetch(queue_db, "SELECT heartbeat_at FROM queuectl_engines")
        assert row["heartbeat_at"] == T0 + 10
        await store.detach_engine("eng-1")
        assert await fetch(queue_db, "SELECT * FROM queuectl_engines") == []
    finally:
        await store.close()


async def test_the_jobs_of_a_dead_engine_of_this_machine_are_orphans_at_once(
    queue_db: str, sql: asyncpg.Connection
) -> None:
    """No wait for the lease: its process is gone, so it cannot be running them."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    await sql.execute(
        "INSERT INTO queuectl_engines (id, machine, host, pid, version, started_at,"
        " heartbeat_at) VALUES ('dead', $1, 'h', $2, 'x', $3, $3),"
        " ('alive', $1, 'h', $4, 'x', $3, $3), ('elsewhere', 'other-machine', 'h', $2, 'x',"
        " $3, $3)",
        MACHINE,
        gone.pid,
        T0,
        os.getpid(),
    )
    store = await opened(queue_db, clock=lambda: T0)
    try:
        await store.enqueue([spec(id=job_id) for job_id in ("d", "a", "x")])
        for owner in ("dead", "alive", "elsewhere"):
            assert len(await store.claim(owner, 1, LEASE)) == 1
        [orphan] = await store.orphans("rescuer")
        assert orphan.lease_owner == "dead"
        outcome = Outcome(ErrorKind.ENGINE_DIED, error="the engine running the job died")
        await finish(store, orphan, outcome)
        assert await store.orphans("rescuer") == []  # and the dead engine, now idle, is gone
        engines = await fetch(queue_db, "SELECT id FROM queuectl_engines ORDER BY id")
        assert [r["id"] for r in engines] == ["alive", "elsewhere"]
    finally:
        await store.close()


# --- time, LISTEN, and losing connections -----------------------------------------------------


async def test_times_come_from_the_server(queue_db: str) -> None:
    store = await opened(queue_db)
    try:
        [server_now] = [r[0] for r in await fetch(queue_db, "SELECT extract(epoch FROM now())")]
        await store.enqueue([spec(id="a")])
        job = await store.get("a")
        assert abs(job.created_at - float(server_now)) < 5
        [claimed] = await store.claim("e1", 1, LEASE)
        assert claimed.lease_expires_at == pytest.approx(claimed.started_at + LEASE)
        assert claimed.state is JobState.PROCESSING
    finally:
        await store.close()


async def test_a_waiting_store_survives_losing_its_connections(queue_db: str) -> None:
    """The server cuts every connection of the waiting store: the wait reports a change (notices
    may have been lost), and the store goes on: its next wait hears the next enqueue."""
    store, other = await opened(queue_db), await opened(queue_db)
    try:
        assert await store.claim("e1", 1, LEASE) == []
        assert await store.wait_for_change(0.2) is False  # listening now
        waiter = asyncio.create_task(store.wait_for_change(30))
        await asyncio.sleep(0.1)
        killed = await fetch(
            queue_db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = 'queuectl'",
        )
        assert len(killed) >= 3  # both stores' pools, and the listener
        assert await asyncio.wait_for(waiter, 10) is True
        started = time.monotonic()
        await other.enqueue([spec(id="a")])
        assert await store.wait_for_change(10) is True
        assert time.monotonic() - started < 5
        assert [job.id for job in await store.claim("e1", 1, LEASE)] == ["a"]
    finally:
        await store.close()
        await other.close()


async def test_notices_name_the_queue_and_carry_a_token(queue_db: str) -> None:
    heard: list[str] = []
    conn = await asyncpg.connect(queue_db)
    await conn.add_listener("queuectl", lambda *args: heard.append(args[-1]))
    store: Store = await opened(queue_db)
    try:
        await store.enqueue([spec(id="a")])
        await store.enqueue([spec(id="b")])
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.02)
        notices = [json.loads(payload) for payload in heard]
        assert [n["queue"] for n in notices] == ["default", "default"]
        assert notices[0]["r"] != notices[1]["r"]
    finally:
        await store.close()
        await conn.close()


async def test_without_a_listening_connection_a_wait_polls_the_counter(
    queue_db: str, sql: asyncpg.Connection
) -> None:
    """The listener is cut and the database takes no new connection: the store cannot LISTEN
    again, so its waits poll the change counter (every second at most) on the connections it
    has, and still see another store's enqueue; once connections are allowed again, it listens
    again."""
    store, other = await opened(queue_db), await opened(queue_db)
    name = pg.database_of(queue_db)
    admin = await asyncpg.connect(pg.url("postgres"))  # a database cannot bar itself
    try:
        assert await store.wait_for_change(0.1) is False  # listening now
        listener = store._watch._conn
        assert listener is not None
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await sql.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
        assert await store.wait_for_change(10) is True  # the lost listener is reported
        assert store._watch._conn is None
        assert await store.wait_for_change(1.5) is False  # polling: nothing changed
        started = time.monotonic()
        await other.enqueue([spec(id="a")])
        assert await store.wait_for_change(10) is True
        assert time.monotonic() - started < 3
        await store.enqueue([spec(id="b")])  # its own change does not wake it
        assert await store.wait_for_change(1.5) is False
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await store.wait_for_change(1.5)
        assert store._watch._conn is not None  # listening again
        await other.enqueue([spec(id="c")])
        assert await store.wait_for_change(5) is True
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await store.close()
        await other.close()


def test_db_status_of_a_sqlite_queue(home: Any) -> None:
    missing = run_cli(home, "db", "status")
    assert "no queue at" in assert_one_line_error(missing, 1)
    run_cli(home, "enqueue", "--", "true", check=True)
    report = json.loads(run_cli(home, "db", "status", "--json", check=True).stdout)
    assert (report["backend"], report["newer"], report["pending"]) == ("sqlite", False, [])
    assert report["version"] == report["latest"] >= 1
    assert report["database"].endswith("queue.db")
