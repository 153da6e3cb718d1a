"""The engine's side of the control channel: a Unix socket that serves the CLI's requests.

Security: the socket is 0600 inside the 0700 queue home, and the server also checks the peer's
uid (SO_PEERCRED) so that a mis-set permission alone does not open the engine to other users.
A bad client (garbage, an oversized line, a silent or vanished peer) gets an error reply or is
dropped; it can never stop the engine or stall other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from queuectl.control.protocol import MAX_LINE, OPS, PROTOCOL_VERSION, Handler, Reply, Send, encode
from queuectl.engine.status import snapshot
from queuectl.errors import QueuectlError

if TYPE_CHECKING:
    from queuectl.engine.dispatch import Engine

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 5.0  # a client that says nothing for this long is dropped
#: connections waiting to be accepted; asyncio's 100 resets some of a burst of `status` and
#: `logs -f` clients (plus every `enqueue`'s wake-up) while the loop is busy
BACKLOG = 1024
_SIGNALS = frozenset(int(s) for s in signal.valid_signals() if int(s) > 0)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# --- server -----------------------------------------------------------------------------------


class ControlServer:
    """Serves requests for one engine; `handler` does the work of each op."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        _clear_stale_socket(self.path)
        old_umask = os.umask(0o177)  # born 0600; called before any job is spawned
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE, backlog=BACKLOG
            )
        except OSError as exc:
            raise QueuectlError(
                f"cannot listen on {str(self.path)!r}: {exc.strerror or exc}; "
                "a Unix socket path must be under 108 bytes, so use a shorter "
                "--home"
            ) from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(message: Reply) -> None:
            writer.write(encode(message))
            await writer.drain()

        try:
            uid = _peer_uid(writer)
            if uid is not None and uid != os.getuid():
                log.warning("refused a control connection from uid %d", uid)
                await send(
                    {
                        "ok": False,
                        "end": True,
                        "error": "permission denied: the engine "
                        "accepts requests only from the user who runs it",
                    }
                )
                return
            hello = await self._read(reader)
            if hello is None or hello.get("op") != "hello":
                await send({"ok": False, "end": True, "error": "expected a hello first"})
                return
            if hello.get("version") != PROTOCOL_VERSION:
                await send(
                    {
                        "ok": False,
                        "end": True,
                        "version": PROTOCOL_VERSION,
                        "error": f"protocol version {hello.get('version')!r} not supported "
                        f"(the engine speaks {PROTOCOL_VERSION}); use the "
                        "queuectl that started the engine",
                    }
                )
                return
            await send({"ok": True, "version": PROTOCOL_VERSION, "pid": os.getpid()})
            request = await self._read(reader, timeout=None)
            if request is None:
                return
            if request.get("op") not in OPS:
                await send({"ok": False, "end": True, "error": f"unknown op {request.get('op')!r}"})
                return
            await self.handler(request, send)
        except _BadRequest as exc:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await send({"ok": False, "end": True, "error": str(exc)})
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away; nothing to answer
        except Exception:  # one bad request must not take the engine down
            log.exception("control request failed")
            with contextlib.suppress(ConnectionError, RuntimeError):
                await send({"ok": False, "end": True, "error": "internal error; see engine log"})
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _read(
        reader: asyncio.StreamReader, timeout: float | None = HELLO_TIMEOUT
    ) -> Reply | None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (ValueError, asyncio.LimitOverrunError):
            raise _BadRequest(f"request longer than {MAX_LINE} bytes") from None
        if not line:
            return None
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise _BadRequest("request is not valid JSON") from None
        if not isinstance(message, dict):
            raise _BadRequest("request must be a JSON object")
        return message


class _BadRequest(Exception):
    pass


def _clear_stale_socket(path: Path) -> None:
    """A socket left by a killed engine is removed; anything else at the path is refused.

    Called only while holding the engine lock, so no live engine can own the socket.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(info.st_mode):
        path.unlink()
        return
    kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a socket"
    raise QueuectlError(
        f"{str(path)!r} is {kind}; refusing to start the engine. Remove it if you know what it is"
    )


def engine_handler(engine: Engine) -> Handler:
    """The closed set of ops, answered by one match on the op name."""

    async def handle(request: Reply, send: Send) -> None:
        match request["op"]:
            case "status":
                await send({"ok": True, "end": True, **snapshot(engine)})
            case "wake":
                engine.wake()
                await send({"ok": True, "end": True})
            case "stop":
                after = request.get("kill_after")
                if after is not None and (
                    isinstance(after, bool)
                    or not isinstance(after, int | float)
                    or not 0 <= after < 1e9
                ):  # NaN fails this too
                    raise _BadRequest("kill_after must be a number of seconds >= 0")
                engine.stop(kill=bool(request.get("now")), after=after)
                await send({"ok": True, "end": True, "running": len(engine.running)})
            case "pause" | "resume":
                paused = request["op"] == "pause"
                await engine.pause(paused)
                await send({"ok": True, "end": True, "paused": paused})
            case "scale":
                n = request.get("concurrency")
                if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
                    raise _BadRequest("concurrency must be a whole number from 1 to 1024")
                engine.scale(n)
                await send({"ok": True, "end": True, "concurrency": n})
            case "cancel":
                found = engine.cancel(_job_id(request))
                await send(
                    {
                        "ok": found,
                        "end": True,
                        "error": None if found else "the job is not running on this engine",
                    }
                )
            case "kill":
                signum = request.get("signal")
                if (
                    isinstance(signum, bool)
                    or not isinstance(signum, int)
                    or signum not in _SIGNALS
                ):
                    raise _BadRequest("signal must be the number of a signal")
                pgid = engine.signal(_job_id(request), signum)
                await send(
                    {
                        "ok": pgid is not None,
                        "end": True,
                        "pgid": pgid,
                        "error": None if pgid else "the job is not running on this engine",
                    }
                )
            case "follow":
                follower = engine.follow(_job_id(request))
                if follower is None:
                    await send(
                        {"ok": False, "end": True, "error": "the job is not running on this engine"}
                    )
                    return
                try:  # `replay`: how many chunks of what the job wrote before this follows
                    await send({"ok": True, "following": True, "replay": len(follower.chunks)})
                    async for stream, data in follower:
                        await send(
                            {
                                "ok": True,
                                "stream": stream,
                                "data": data.decode("utf-8", "surrogateescape"),
                            }
                        )
                finally:
                    follower.close()  # also when the client went away mid-stream
                await send({"ok": True, "end": True, "overflowed": follower.overflowed})

    return handle


def _job_id(request: Reply) -> str:
    job_id = request.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise _BadRequest("request needs the job id as a string")
    return job_id
