"""What `queuectl db status` reports of a queue's schema, for either backend, changing nothing.

Opening a store creates or upgrades its schema; this only looks, so that an operator can see
what the next start of an engine (or any command) would apply, or that the database was
migrated by a newer queuectl than this one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuectl.errors import QueueMissing, StorageError


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    backend: str  # "postgresql" or "sqlite"
    location: str
    version: int  # 0: no queuectl schema in the database yet
    latest: int  # the newest this queuectl knows
    applied: list[dict[str, Any]]  # {version, name, applied_at: epoch seconds or None}
    pending: list[dict[str, Any]]  # {version, name}

    @property
    def newer(self) -> bool:
        return self.version > self.latest


async def schema_status(target: str | Path) -> SchemaStatus:
    """The schema of the queue that `target` names (as open_store takes it)."""
    from queuectl.store import POSTGRES_SCHEMES, sqlite_path

    if isinstance(target, str) and target.startswith(POSTGRES_SCHEMES):
        from queuectl.store.postgres_schema import read_status

        return await read_status(target)
    return _sqlite_status(sqlite_path(target))


def _sqlite_status(path: Path) -> SchemaStatus:
    """PRAGMA user_version of the file, opened read-only. SQLite keeps no history of its
    steps: the applied ones are listed without a time."""
    from queuectl.store.sqlite_db import SCHEMA_VERSION

    if not path.is_file():
        raise QueueMissing(f"no queue at {str(path)!r}: nothing was ever enqueued there")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"queue database {str(path)!r}: {exc}") from None
    steps = [{"version": n, "name": f"schema_v{n}"} for n in range(1, max(version, 0) + 1)]
    return SchemaStatus(
        backend="sqlite",
        location=str(path),
        version=version,
        latest=SCHEMA_VERSION,
        applied=[{**step, "applied_at": None} for step in steps],
        pending=[
            {"version": n, "name": f"schema_v{n}"} for n in range(version + 1, SCHEMA_VERSION + 1)
        ],
    )
