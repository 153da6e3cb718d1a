"""A TCP proxy in front of the PostgreSQL server, for tests of a network that fails: it can
black-hole the traffic (connections stay open, nothing gets through: a partition, a frozen
server) and restore it, or cut every connection (a server restart, an RST).

It runs its own event loop in a thread, so that the synchronous tests around real engine
processes can steer it while it forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()  # set: traffic flows; clear: black-holed
        self._refusing = False  # new connections are closed at once (a server that is down)
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- steering, from the test's thread -------------------------------------------------------

    def blackhole(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def restore(self) -> None:
        """Traffic flows again, and new connections get through."""
        self._loop.call_soon_threadsafe(self._open.set)
        self._refusing = False

    def cut(self) -> None:
        """Close every connection now (new ones are still accepted)."""
        self._call(self._close_all)

    def down(self) -> None:
        """As a server that went down: every connection closed, new ones closed at once,
        until restore()."""
        self._refusing = True
        self._call(self._close_all)

    # --- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._open.set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _call(self, coroutine_function: object) -> None:
        assert callable(coroutine_function)
        asyncio.run_coroutine_threadsafe(coroutine_function(), self._loop).result(10)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._refusing:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with _closing(writer):
            while data := await reader.read(65536):
                await self._open.wait()  # black-holed: hold it (TCP backs the sender up)
                writer.write(data)
                await writer.drain()

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._close_all()
        if self._server is not None:
            self._server.close()


@contextlib.contextmanager
def _closing(writer: asyncio.StreamWriter) -> Iterator[None]:
    try:
        yield
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
