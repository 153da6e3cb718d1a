"""The dashboard's aiohttp application: its routes, its shared state (one store for reads, the
broadcaster, the metrics' tracker) and the server that `queuectl web` runs.

The handlers (pages.py, actions.py, api.py) are thin: they parse a request, call the service
layer (queuectl/service: the CLI's own functions for every action, service/dashboard.py for
what the pages read) and render.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import jinja2
from aiohttp import web

from queuectl.errors import QueuectlError
from queuectl.service import Queue
from queuectl.store import Store
from queuectl.web.metrics import FinishTracker
from queuectl.web.security import Guard, add_headers, middleware
from queuectl.web.sse import Broadcaster
from queuectl.web.templating import environment


@dataclass(slots=True)
class Web:
    """What every handler shares."""

    queue: Queue
    guard: Guard
    templates: jinja2.Environment = field(default_factory=environment)
    store: Store | None = None  # opened at start-up, for the reads
    broadcaster: Broadcaster | None = None
    tracker: FinishTracker = field(default_factory=FinishTracker)
    metrics_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def reads(self) -> Store:
        assert self.store is not None, "the dashboard's store is opened at start-up"
        return self.store


WEB = web.AppKey("web", Web)


def context(request: web.Request) -> Web:
    return request.app[WEB]


def static_dir() -> Path:
    return Path(str(files("queuectl.web") / "static"))


def make_app(queue: Queue, guard: Guard) -> web.Application:
    from queuectl.web import actions, api, pages

    state = Web(queue, guard)
    app = web.Application(
        middlewares=[middleware(guard, pages.login_page)], client_max_size=1024 * 1024
    )
    app[WEB] = state
    app.on_response_prepare.append(add_headers)
    app.router.add_routes(pages.routes)
    app.router.add_routes(actions.routes)
    app.router.add_routes(api.routes)
    app.router.add_static("/static/", static_dir(), append_version=True)
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """One store for the reads, another for the broadcaster's wait for changes (a SQLite
    connection sees only the commits of others; PostgreSQL listens on its own connection)."""
    from queuectl.web.pages import overview_fragments

    state = app[WEB]
    state.store = await _open(state.queue)
    watcher = await _open(state.queue)

    async def produce() -> dict[str, str]:
        return await overview_fragments(state)

    state.broadcaster = Broadcaster(produce, watcher.wait_for_change)
    task = asyncio.create_task(state.broadcaster.run(), name="queuectl-web-broadcaster")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await watcher.close()
        await state.store.close()


async def _open(queue: Queue) -> Store:
    from queuectl.store import open_store

    return await open_store(queue.db or queue.home)


@dataclass(frozen=True, slots=True)
class Served:
    runner: web.AppRunner
    url: str
    port: int


async def start(queue: Queue, host: str, port: int, token: str | None) -> Served:
    """Listen; QueuectlError (one line) when the address cannot be had."""
    guard = Guard(host, port, token)
    app = make_app(queue, guard)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise QueuectlError(
                f"cannot listen on {where}: the address is in use; stop what holds it or "
                "choose another port with --bind HOST:PORT"
            ) from None
        raise QueuectlError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    guard.port = bound
    shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
    return Served(runner, f"http://{shown}:{bound}/", bound)
