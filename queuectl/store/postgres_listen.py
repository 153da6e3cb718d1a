"""Noticing that another process changed the queue: LISTEN, with polling when it cannot.

Every change that may wake an engine (enqueue, a dead job's retry) runs, in its own
transaction, one statement that bumps the queuectl_changes counter and sends
`NOTIFY queuectl, '{"queue": ..., "r": TOKEN}'`; the notice is delivered when the transaction
commits, and the random token keeps the server from merging identical notices of one
transaction.

A store listens on one connection of its own, opened by the first wait (or when an engine
attaches), not by every CLI command. Until then, and whenever that connection is down, the
counter tells: what it moved by, less this store's own bumps, is what others changed. So a
change committed between the store's last look and its first LISTEN is not missed, and an
engine whose listening connection dropped polls the counter at least every POLL seconds (one
cheap read), retries the connection at the same pace, and reports a change after reconnecting,
since notices sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from queuectl.store.postgres_db import SQL, PgTarget, connect

CHANNEL = "queuectl"
QUEUE = "default"
POLL = 1.0  # seconds between looks at the counter while not listening


class ChangeWatch:
    def __init__(self, target: PgTarget, read_counter: Callable[[], Awaitable[int]], seen: int):
        self.target = target
        self._read_counter = read_counter
        self._seen = seen  # the counter at this store's last look
        self._own_tokens: set[str] = set()  # notices this store sent (and has not heard yet)
        self._own_bumps: set[int] = set()  # counter values this store produced
        self._changed = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._retry_at = 0.0  # monotonic time of the next attempt to listen
        self._closed = False

    # --- this store's own changes ------------------------------------------------------------

    def token(self) -> str:
        """A token for a notice this store is about to send: its own notices do not wake it.
        Taken before the statement runs, since the notice may be heard before the statement's
        answer is read."""
        token = secrets.token_hex(8)
        self._own_tokens.add(token)
        return token

    def bumped(self, value: int) -> None:
        """The counter value that this store's own change produced."""
        self._own_bumps.add(value)

    def looked(self) -> None:
        """The caller is about to read the queue: what was noticed so far, it will see."""
        self._changed.clear()

    # --- waiting -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, if not yet listening and not given up on for now. Never raises: without
        a listening connection, waits poll the counter."""
        if self._conn is not None or self._closed or time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + POLL
        try:
            conn = await connect(self.target)
        except Exception:
            return
        try:
            await conn.add_listener(CHANNEL, self._heard)
            conn.add_termination_listener(self._lost)
            counter = await conn.fetchval(SQL["changes"])
        except BaseException as exc:  # cancelled too: the connection must not leak
            conn.terminate()
            if isinstance(exc, Exception):
                return
            raise
        self._conn = conn
        self._count(int(counter))  # changes since the last look, committed before LISTEN

    async def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        await self._start_within(deadline)
        while True:
            if self._changed.is_set():
                self._changed.clear()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._conn is not None:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose the
                # cancellation of this wait (see _start_within), leaving a wait that eats notices
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._changed.wait()
                continue
            await asyncio.sleep(min(POLL, left))
            self._count(await self._read_counter())
            await self._start_within(deadline)

    async def _start_within(self, deadline: float) -> None:
        """start(), given up on at the wait's deadline: a server that drops packets would
        otherwise hold the wait for the whole connect timeout. Not called while listening:
        a wait_for() around nothing to do could swallow the cancellation of this wait (Python
        3.11 loses one that arrives as its inner task ends), and the wait, cancelled by the
        engine, would live on and eat the next notice."""
        left = deadline - time.monotonic()
        if left > 0 and self._conn is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.start(), left)

    def _count(self, counter: int) -> None:
        """Others changed the queue if the counter moved by more than this store's bumps."""
        own = {value for value in self._own_bumps if self._seen < value <= counter}
        if counter - self._seen > len(own):
            self._changed.set()
        self._seen = max(self._seen, counter)
        self._own_bumps = {value for value in self._own_bumps if value > self._seen}

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            token = json.loads(payload).get("r")
        except (ValueError, AttributeError):
            token = None
        if token in self._own_tokens:
            self._own_tokens.discard(token)
            return
        self._changed.set()

    def _lost(self, _conn: Any) -> None:
        """The listening connection died: notices may have been missed, so report a change,
        and poll from now on until listening again."""
        self._conn = None
        self._retry_at = 0.0
        if not self._closed:
            self._changed.set()

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5.0)
            except Exception:
                conn.terminate()
