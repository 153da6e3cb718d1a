"""The CLI's side of the control channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from queuectl.control.protocol import MAX_LINE, PROTOCOL_VERSION, Reply, encode
from queuectl.errors import ControlError, NoEngine


class ControlClient:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, engine_pid: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.engine_pid = engine_pid

    @classmethod
    async def connect(cls, path: Path, timeout: float = 5.0) -> ControlClient:
        """Connect and say hello; raises NoEngine when nothing listens."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=16 * MAX_LINE), timeout
            )
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoEngine() from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {str(path)!r}; run queuectl as the user "
                "who started the engine"
            ) from None
        except (TimeoutError, OSError) as exc:
            raise ControlError(f"the engine does not answer on {str(path)!r}: {exc}") from None
        client = cls(reader, writer, 0)
        try:
            reply = await client._exchange({"op": "hello", "version": PROTOCOL_VERSION}, timeout)
        except BaseException:
            await client.close()
            raise
        client.engine_pid = int(reply.get("pid", 0))
        return client

    async def _exchange(self, message: Reply, timeout: float | None) -> Reply:
        try:
            self._writer.write(encode(message))
            await self._writer.drain()
        except OSError as exc:  # the engine went away (it may be exiting) as we wrote
            raise ControlError(f"the engine closed the connection: {exc}") from None
        return await self._reply(timeout)

    async def _reply(self, timeout: float | None) -> Reply:
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            raise ControlError(f"the engine did not answer: {exc or 'timed out'}") from None
        if not line:
            raise ControlError("the engine closed the connection without answering")
        reply: Reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "the engine refused the request"))
        return reply

    async def request(self, op: str, timeout: float | None = 10.0, **args: Any) -> Reply:
        """One request, one reply."""
        try:
            return await self._exchange({"op": op, **args}, timeout)
        finally:
            await self.close()

    async def stream(self, op: str, **args: Any) -> AsyncGenerator[Reply, None]:
        """One request, replies until one has `end`."""
        try:
            reply = await self._exchange({"op": op, **args}, None)
            while True:
                yield reply
                if reply.get("end"):
                    return
                reply = await self._reply(None)
        finally:
            await self.close()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def call(path: Path, op: str, timeout: float = 10.0, **args: Any) -> Reply:
    client = await ControlClient.connect(path, timeout)
    return await client.request(op, timeout, **args)


async def try_wake(path: Path) -> None:
    """Tell a running engine that work arrived; silent when none runs."""
    with contextlib.suppress(ControlError, OSError):
        await call(path, "wake", timeout=2.0)
