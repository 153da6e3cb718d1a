"""Run an Engine as a foreground process: the home's lock, event loop, signals and logging.

Kept apart from the Engine so that it stays a plain object that tests and other front ends
(a detached daemon, a service manager unit) can drive. The home lock makes one engine the owner
of the home's control socket and log; the store enforces its own rule on engines per database.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from queuectl.control.server import ControlServer, engine_handler
from queuectl.engine.dispatch import Engine
from queuectl.lock import EngineLock
from queuectl.paths import LOCK_NAME, SOCKET_NAME, ensure_home
from queuectl.store import open_store

log = logging.getLogger("queuectl.engine")
LOOPS = ("asyncio", "uvloop")
DEFAULT_LOOP = "asyncio"  # measured faster at spawning processes (see README, Benchmarks)


@dataclass(frozen=True)
class WorkerOptions:
    home: Path
    db: str | None  # a database URL; None: the SQLite database in the home
    concurrency: int | None  # None: the queue's `concurrency` config key
    until_empty: bool = False
    quiet: bool = False
    loop: str = DEFAULT_LOOP
    until_idle: bool = False
    queues: tuple[str, ...] | None = None  # the named queues it runs (None: every queue)


def run_worker(options: WorkerOptions) -> int:
    """Run the engine until it is stopped (or the queue is empty with until_empty)."""
    logging.basicConfig(
        level=logging.WARNING if options.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    # asyncpg's pool logs each failed reconnect with a traceback; the engine reports the
    # outage itself, in one line when it begins and one when it ends (engine/outage.py)
    logging.getLogger("asyncpg.pool").setLevel(logging.CRITICAL)
    with asyncio.Runner(loop_factory=_loop_factory(options.loop)) as runner:
        return runner.run(_serve(options))


async def _serve(options: WorkerOptions) -> int:
    home = ensure_home(options.home)
    lock = EngineLock(home / LOCK_NAME)
    lock.acquire()
    try:
        store = await open_store(options.db or home, durable=False)
        try:
            config = await store.config()
            engine = Engine(
                store,
                options.concurrency or config.concurrency,
                until_empty=options.until_empty,
                until_idle=options.until_idle,
                queues=options.queues,
            )
            _handle_signals(engine)
            server = ControlServer(home / SOCKET_NAME, engine_handler(engine))
            await server.start()
            log.info(
                "engine %s started: %d worker%s, queue %s",
                engine.id,
                engine.concurrency,
                "" if engine.concurrency == 1 else "s",
                store.location,
            )
            if engine.queues is not None:
                log.info("running the jobs of queues %s only", ", ".join(engine.queues))
            if await store.paused():
                log.info("the queue is paused: no job starts until `queuectl resume`")
            try:
                await engine.run()
            finally:
                await server.close()
            log.info(
                "engine stopped: %d completed, %d failed",
                engine.completed,
                engine.failed,
            )
        finally:
            await store.close()
    finally:
        lock.release()
    return 0


def _handle_signals(engine: Engine) -> None:
    """First SIGINT/SIGTERM: finish running jobs. Second: kill them; they return to pending."""

    def on_signal(signum: int) -> None:
        if not engine.stopping:
            log.info(
                "%s: stopping; %d running job%s will finish (signal again to kill them)",
                signal.Signals(signum).name,
                len(engine.running),
                "" if len(engine.running) == 1 else "s",
            )
            engine.stop()
        else:
            log.info(
                "%s: killing %d running job%s; they go back to pending",
                signal.Signals(signum).name,
                len(engine.running),
                "" if len(engine.running) == 1 else "s",
            )
            engine.stop(kill=True)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
