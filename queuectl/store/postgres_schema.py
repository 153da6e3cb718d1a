"""The PostgreSQL schema: numbered migration files, the version table, and migrating safely
while other engines and commands start against the same database.

Each step (migrations/NNNN_name.sql) is applied in a transaction of its own that first takes a
transaction-scoped advisory lock, then inserts the step's version row, then runs the step: two
processes that find the schema old at the same time queue on the lock, and the second finds
the version row of the first and skips the step (graphile-worker's recipe). A schema newer than
this code knows is refused, never downgraded or written to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from queuectl.errors import StorageError
from queuectl.store.postgres_db import DB_ERRORS, PgTarget, connect, storage_error
from queuectl.store.schema_status import SchemaStatus

#: pg_advisory_xact_lock key of the migrations: b"queuectl" read as a signed 64-bit integer
MIGRATION_LOCK = int.from_bytes(b"queuectl", "big", signed=True)

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS queuectl_schema (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
CURRENT_VERSION = "SELECT coalesce(max(version), 0) FROM queuectl_schema"
APPLIED = (
    "SELECT version, name, extract(epoch FROM applied_at)::float8 AS at"
    " FROM queuectl_schema ORDER BY version"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _load_migrations() -> list[Migration]:
    """migrations/NNNN_name.sql, numbered 1, 2, 3... with no gap."""
    found: list[Migration] = []
    for path in (Path(__file__).parent / "migrations").glob("*.sql"):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"PostgreSQL migrations are not numbered 1..N: {found!r}")
    return found


MIGRATIONS = _load_migrations()
LATEST = MIGRATIONS[-1].version


def newer_schema(target: PgTarget, version: int) -> StorageError:
    return StorageError(
        f"{target.where} has queuectl schema {version}, newer than this queuectl understands "
        f"({LATEST}); upgrade queuectl"
    )


async def migrate(conn: asyncpg.Connection, target: PgTarget) -> None:
    """Apply every pending step, each in its own locked transaction."""
    for migration in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(VERSION_TABLE)
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM queuectl_schema")
            )
            if version > LATEST:
                raise newer_schema(target, version)
            if version >= migration.version:
                continue  # applied before, or by another process while we waited
            await conn.execute(
                "INSERT INTO queuectl_schema (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            await conn.execute(migration.sql)  # no arguments: several statements may run


async def read_status(url: str) -> SchemaStatus:
    """The schema's version and history, changing nothing (`queuectl db status`)."""
    target = PgTarget.parse(url)
    conn = await connect(target)
    try:
        exists = await conn.fetchval("SELECT to_regclass('queuectl_schema') IS NOT NULL")
        rows = await conn.fetch(APPLIED) if exists else []
    except DB_ERRORS as exc:
        raise storage_error(target, exc) from exc
    finally:
        await conn.close()
    applied: list[dict[str, Any]] = [
        {"version": int(r["version"]), "name": str(r["name"]), "applied_at": float(r["at"])}
        for r in rows
    ]
    version = max((int(entry["version"]) for entry in applied), default=0)
    pending = [{"version": m.version, "name": m.name} for m in MIGRATIONS if m.version > version]
    return SchemaStatus("postgresql", target.location, version, LATEST, applied, pending)
