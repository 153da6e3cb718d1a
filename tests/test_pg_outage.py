"""A real engine on PostgreSQL whose connection to the server fails while it runs jobs: it says
so, retries with backoff, loses no outcome, and fences the jobs it can no longer vouch for.

The engine reaches the server through a TCP proxy (tests/tcp_proxy.py) that the test can cut
(every connection reset, as by a server restart) or black-hole (connections open, nothing gets
through, as in a network partition).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from engine_process import EngineGroup
from helpers import (
    Backend,
    all_jobs,
    in_store,
    job_attempts,
    make_backend,
    release_backend,
    spec,
    wait_for,
)
from tcp_proxy import TcpProxy

from queuectl import procfs
from queuectl.states import ErrorKind, JobState, KillReason
from queuectl.store import Store

LEASE = 4.0  # seconds: short, so that the fence (half a lease) comes quickly


@pytest.fixture
def direct(home: Path) -> Iterator[Backend]:
    backend = make_backend("postgres", home)
    yield backend
    release_backend(backend)


@pytest.fixture
def proxy(direct: Backend) -> Iterator[TcpProxy]:
    parts = urlsplit(direct.db or "")
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


@pytest.fixture
def proxied(direct: Backend, proxy: TcpProxy) -> Backend:
    """The same queue as `direct`, reached through the proxy (as the engine sees it)."""
    parts = urlsplit(direct.db or "")
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    return Backend("postgres", direct.home, urlunsplit(parts._replace(netloc=netloc)))


@pytest.fixture
def group(proxied: Backend) -> Iterator[EngineGroup]:
    engines = EngineGroup(proxied)
    try:
        yield engines
    finally:
        engines.close()
        print(engines.logs())


def enqueue(backend: Backend, *specs: dict[str, Any]) -> None:
    """The jobs, on a queue with the short lease."""

    async def add(store: Store) -> None:
        await store.set_config("lease-time", LEASE)
        await store.enqueue([spec(**fields) for fields in specs])

    in_store(backend, add)


def test_an_engine_rides_out_cut_connections(
    direct: Backend, proxy: TcpProxy, group: EngineGroup, tmp_path: Path
) -> None:
    """The server down three times for a second while 40 jobs run: the engine says so, comes
    back each time, and every job completes, each exactly once."""
    marks = tmp_path / "runs"
    enqueue(
        direct,
        *(
            {"id": f"j{n}", "command": f"echo $QUEUECTL_JOB_ID >> {marks}; sleep 0.5"}
            for n in range(40)
        ),
    )
    engine = group.start("-c", "4")
    wait_for(engine.started, 20)
    for outage in range(1, 4):
        ran = 4 * outage
        wait_for(lambda: marks.exists() and len(marks.read_text().split()) >= ran, 20)  # noqa: B023
        proxy.down()
        time.sleep(1.0)
        proxy.restore()
        wait_for(lambda: engine.log().count("answers again") == outage, 20)  # noqa: B023
    wait_for(
        lambda: all(j.state is JobState.COMPLETED for j in all_jobs(direct).values()),
        60,
        message="every job completed",
    )
    assert engine.alive()
    assert "lost the connection" in engine.log()
    runs = marks.read_text().split()
    assert sorted(runs) == sorted(f"j{n}" for n in range(40))  # each exactly once


def test_an_engine_cut_off_for_half_a_lease_kills_its_jobs(
    direct: Backend, proxy: TcpProxy, group: EngineGroup, tmp_path: Path
) -> None:
    """Black-holed: within half a lease (plus a retry) the engine kills its running job
    itself; when the network comes back before anyone rescued it, the attempt is recorded as
    interrupted and the job runs again, without using a retry."""
    pids = tmp_path / "pids"
    enqueue(direct, {"id": "long", "command": f"echo $$ >> {pids}; exec sleep 60"})
    engine = group.start("-c", "1")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), 20)
    first = int(pids.read_text().split()[0])
    proxy.blackhole()
    try:
        wait_for(lambda: not procfs.alive(first), LEASE, message="the engine killed its job")
    finally:
        proxy.restore()
    wait_for(lambda: len(pids.read_text().split()) == 2, 20, message="the job ran again")
    attempts = job_attempts(direct, "long")
    assert attempts[0].error_kind is ErrorKind.INTERRUPTED
    assert attempts[0].error == KillReason.FENCE.message
    assert all_jobs(direct)["long"].attempts == 1  # the fenced run used no retry
    assert "its lease was not renewed" in engine.log()
    assert engine.alive()


def test_a_late_result_is_refused_and_the_stale_job_killed(
    direct: Backend, proxy: TcpProxy, group: EngineGroup, tmp_path: Path
) -> None:
    """Black-holed past its lease: another engine (direct to the server) rescues the job and
    runs it again; the first engine's run was killed by its own fence, and when the network
    returns its outcome is refused (counted and logged), never applied over the new run."""
    pids = tmp_path / "pids"
    enqueue(direct, {"id": "long", "command": f"echo $$ >> {pids}; exec sleep 60"})
    engine = group.start("-c", "1")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), 20)
    first = int(pids.read_text().split()[0])
    rescuer_home = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))  # each engine its own home
    rescuer = EngineGroup(Backend("postgres", rescuer_home, direct.db))
    proxy.blackhole()
    try:
        wait_for(lambda: not procfs.alive(first), LEASE, message="the engine killed its job")
        rescuer.start("-c", "1")
        wait_for(lambda: len(pids.read_text().split()) == 2, 20, message="the job was rescued")
        proxy.restore()
        wait_for(lambda: "no longer held by this engine" in engine.log(), 20, message="refused")
        second = int(pids.read_text().split()[1])
        assert procfs.alive(second)  # the late outcome did not touch the new run
        job = all_jobs(direct)["long"]
        assert job.state is JobState.PROCESSING and job.runs == 2
        attempts = job_attempts(direct, "long")
        assert attempts[0].error_kind is ErrorKind.ENGINE_DIED  # as the rescuer recorded it
    finally:
        proxy.restore()
        rescuer.close()
        print(rescuer.logs())
        shutil.rmtree(rescuer_home, ignore_errors=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(first, signal.SIGKILL)
