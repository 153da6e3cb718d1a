"""The queue's schema, for `queuectl db status`: its version and what is pending, read without
changing anything (every other command creates or upgrades the schema on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuectl.service import Queue
    from queuectl.store.schema_status import SchemaStatus


async def schema_status(queue: Queue) -> SchemaStatus:
    from queuectl.store.schema_status import schema_status as read

    return await read(queue.db or queue.home)
