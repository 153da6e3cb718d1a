"""Server-Sent Events: the overview's live fragments from one broadcaster, and a job's live
output.

One Broadcaster per web process watches the queue (Store.wait_for_change: SQLite's
data_version polled by the store, PostgreSQL's LISTEN) and, at least every `interval` seconds,
renders the overview's fragments once for all clients, debounced (a burst of changes makes one
update after DEBOUNCE). It computes only while someone listens, and never more often than five
times what one computation costs, so a million-job queue does not keep a core busy. Each
client has a bounded buffer: one that falls behind (a buffer full, or a write that does not go
through within WRITE_TIMEOUT) is dropped, its browser reconnects, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

DEBOUNCE = 0.25
INTERVAL = 2.0  # the longest between two updates: elapsed times and ages move by themselves
KEEPALIVE = 15.0
CLIENT_BUFFER = 32  # messages a client may have waiting before it is dropped
WRITE_TIMEOUT = 10.0

log = logging.getLogger("queuectl.web")

Fragments = dict[str, str]
Produce = Callable[[], Awaitable[Fragments]]
WaitChange = Callable[[float], Awaitable[bool]]


def message(event: str | None, data: str, event_id: str | None = None) -> bytes:
    """One SSE message; each line of `data` gets its own `data:` field (the browser joins
    them with newlines)."""
    head = [] if event is None else [f"event: {event}"]
    if event_id is not None:
        head.append(f"id: {event_id}")
    lines = [*head, *(f"data: {line}" for line in data.split("\n"))]
    return ("\n".join(lines) + "\n\n").encode()


KEEPALIVE_MESSAGE = b": keepalive\n\n"


@dataclass(eq=False, slots=True)
class Client:
    messages: deque[bytes] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False

    def push(self, data: bytes) -> None:
        if self.dropped:
            return
        if len(self.messages) >= CLIENT_BUFFER:
            self.dropped = True
            self.messages.clear()
        else:
            self.messages.append(data)
        self.ready.set()


class Broadcaster:
    def __init__(
        self,
        produce: Produce,
        wait_change: WaitChange,
        interval: float = INTERVAL,
        debounce: float = DEBOUNCE,
    ) -> None:
        self.produce = produce
        self.wait_change = wait_change
        self.interval = interval
        self.debounce = debounce
        self.clients: set[Client] = set()
        self.last: Fragments = {}
        self.updates = 0
        self._wanted = asyncio.Event()
        self._poke = asyncio.Event()
        self._cost = 0.0

    def subscribe(self) -> Client:
        client = Client()
        for name, html in self.last.items():  # what changed since its page was drawn
            client.push(message(name, html))
        self.clients.add(client)
        self._wanted.set()
        self._poke.set()
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients:
            self._wanted.clear()

    def publish(self, data: bytes) -> None:
        for client in list(self.clients):
            client.push(data)
            if client.dropped:
                self.clients.discard(client)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wanted.wait()
            start = loop.time()
            try:
                fragments = await self.produce()
            except Exception as exc:  # the queue may be unreachable for a while: try again
                log.warning("dashboard update failed: %s", exc)
                fragments = {}
            self._cost = loop.time() - start
            for name, html in fragments.items():
                if self.last.get(name) != html:
                    self.last[name] = html
                    self.publish(message(name, html))
            self.updates += 1
            await self._next(loop)

    async def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until the queue changes, a client arrives, or the interval ends; never sooner than
        `debounce` after the last update, nor than five times what it cost."""
        floor = loop.time() + max(self.debounce, 5 * self._cost)
        deadline = loop.time() + max(self.interval, 5 * self._cost)
        self._poke.clear()
        while (left := deadline - loop.time()) > 0 and not self._poke.is_set():
            with contextlib.suppress(Exception):
                if await self.wait_change(min(left, 0.25)):
                    break
        await asyncio.sleep(max(0.0, floor - loop.time()))


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


async def send(response: web.StreamResponse, data: bytes) -> None:
    """A write that a client that does not read cannot hold up for long."""
    await asyncio.wait_for(response.write(data), WRITE_TIMEOUT)


async def serve(request: web.Request, broadcaster: Broadcaster) -> web.StreamResponse:
    """One client of the broadcaster, until it goes away or is dropped."""
    response = await open_stream(request)
    client = broadcaster.subscribe()
    try:
        await send(response, b"retry: 2000\n\n")
        while not client.dropped:
            try:
                await asyncio.wait_for(client.ready.wait(), KEEPALIVE)
            except TimeoutError:
                await send(response, KEEPALIVE_MESSAGE)
                continue
            client.ready.clear()
            while client.messages and not client.dropped:
                await send(response, client.messages.popleft())
    except (ConnectionError, TimeoutError):
        pass  # gone, or too slow: its browser reconnects
    finally:
        broadcaster.unsubscribe(client)
    return response
