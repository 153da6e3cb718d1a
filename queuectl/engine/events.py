"""One fan-out of what happens in the engine: job events for whoever listens (statistics today,
the dashboard's live feed and metrics next) and each running job's output for its followers
(`logs -f`).

Every subscriber has a bounded buffer: one that falls behind is cut off (and told so), never
allowed to slow the engine or the other subscribers.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from queuectl.states import ErrorKind, JobState

FOLLOW_BUFFER = 4 * 1024 * 1024  # bytes a slow `logs -f` client may fall behind before it is cut


class EventKind(enum.StrEnum):
    STARTED = "started"
    FINISHED = "finished"  # the job's transition was applied; `state` says to what
    FENCED = "fenced"  # its outcome was refused: the job had moved on (another engine's now)


@dataclass(frozen=True, slots=True)
class JobEvent:
    kind: EventKind
    job_id: str
    attempt: int
    state: JobState | None = None
    error_kind: ErrorKind | None = None
    elapsed: float | None = None
    at: float = field(default_factory=time.time)


Listener = Callable[[JobEvent], None]


class Events:
    """Synchronous listeners, called in the engine's loop; one that raises is dropped."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self._listeners.remove(listener)


class Follower:
    """One `logs -f` client: a bounded buffer of output chunks, closed when the job ends."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[str, bytes]] = deque()
        self.size = 0
        self.closed = False
        self.overflowed = False
        self.ready = asyncio.Event()

    def push(self, stream: str, data: bytes) -> None:
        if self.closed:
            return
        if self.size + len(data) > FOLLOW_BUFFER:
            self.overflowed = True
            self.close()
            return
        self.chunks.append((stream, data))
        self.size += len(data)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            await self.ready.wait()
            while self.chunks:
                stream, data = self.chunks.popleft()
                self.size -= len(data)
                yield stream, data
            if self.closed:
                return
            self.ready.clear()


class OutputFanout:
    """The followers of one running job."""

    def __init__(self) -> None:
        self.followers: list[Follower] = []

    def add(self, follower: Follower) -> None:
        self.followers.append(follower)

    def publish(self, stream: str, data: bytes) -> None:
        if any(follower.closed for follower in self.followers):
            self.followers = [follower for follower in self.followers if not follower.closed]
        for follower in self.followers:
            follower.push(stream, data)

    def close(self) -> None:
        for follower in self.followers:
            follower.close()
