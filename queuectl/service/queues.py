"""Named queues: listing them, and the limits and pauses that every engine of the database
honours (stored in the database, so they outlive every engine and apply on every host).

A change that can let jobs start (a resume, a raised or removed limit) wakes the engines: the
one on this host through its control socket, the others through the database (PostgreSQL's
NOTIFY, sent by the store in the same transaction; a SQLite engine sees the commit itself).
Input is checked before the store is opened, so that a bad one changes (and creates) nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from queuectl.errors import BadInput
from queuectl.specs import validate_queue_name

if TYPE_CHECKING:
    from queuectl.models import QueueInfo
    from queuectl.service import Queue

NO_LIMIT = "none"


def parse_concurrency(text: str) -> int | None:
    """`queue set --concurrency`: a whole number of jobs, or `none` for no limit of its own."""
    from queuectl.store.sqlite_queues import check_concurrency

    if text.strip().lower() == NO_LIMIT:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise BadInput(
            f"invalid queue concurrency {text!r}; give a whole number of jobs, or none"
        ) from None
    check_concurrency(value)
    return value


async def list_queues(queue: Queue) -> list[QueueInfo]:
    async with queue.store(create=False) as store:
        return await store.queues()


async def set_concurrency(queue: Queue, name: str, text: str) -> int | None:
    """Set (or with `none` remove) the queue's limit across every engine; returns it."""
    from queuectl.service import wake

    validate_queue_name(name)
    concurrency = parse_concurrency(text)
    async with queue.store() as store:
        await store.set_queue(name, concurrency)
    await wake(queue)
    return concurrency


async def set_paused(queue: Queue, name: str, paused: bool) -> None:
    """Pause (no job of the queue starts; running ones go on) or resume it."""
    from queuectl.service import wake

    validate_queue_name(name)
    async with queue.store() as store:
        await store.set_queue_paused(name, paused)
    if not paused:
        await wake(queue)
