"""Fixtures: a fresh, short queue home per test, the backend its queue is stored in, the real
CLI run against it, and real engines on it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from engine_process import EngineGroup, StartEngine
from helpers import BACKENDS, Backend, Cli, decoy_env, make_backend, release_backend, run_cli
from sites import Site


@pytest.fixture
def home() -> Iterator[Path]:
    """A new empty directory for one test's queue, short enough for a Unix socket path."""
    path = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, home: Path) -> Iterator[Backend]:
    """Where the test's queue is stored: each test that uses it (or `cli`, or `engines`) runs
    once per backend. Look inside the queue only through the Store (helpers.all_jobs, in_store,
    queue_snapshot, ...) or the CLI's --json."""
    backend = make_backend(request.param, home)
    yield backend
    release_backend(backend)


@pytest.fixture
def decoy_home(home: Path) -> Path:
    """Where $QUEUECTL_HOME points in CLI runs: never to be used while --home is given."""
    return home / "decoy"


@pytest.fixture
def cli(backend: Backend, decoy_home: Path) -> Iterator[Cli]:
    """`cli(*args, input=None, env=None, check=None)` runs
    `python -m queuectl --home HOME [--db URL] ...` on the test's backend.

    $QUEUECTL_HOME and $XDG_DATA_HOME point at a decoy inside the home, and the test fails at
    teardown if anything was created there: --home must win over the environment.
    """
    decoy = decoy_env(decoy_home)

    def run(
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool | int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(
            backend.home,
            *backend.cli_args(),
            *args,
            input=input,
            env={**decoy, **(env or {})},
            check=check,
        )

    yield run
    assert not decoy_home.exists(), "a CLI run used $QUEUECTL_HOME although --home was given"


@pytest.fixture
def engines(backend: Backend) -> Iterator[StartEngine]:
    """`engines(*worker_start_args, env=None, cwd=None)` starts an engine
    (`queuectl worker start ARGS...`) on the test's queue. At the end of the test, pass or fail,
    every engine is stopped and any job a killed engine left running is killed; the engines'
    logs are printed (pytest shows them when the test failed)."""
    group = EngineGroup(backend)
    try:
        yield group.start
    finally:
        group.close()
        print(group.logs())


@pytest.fixture
def sites(home: Path) -> Iterator[Callable[[], Site]]:
    """Makes sites (tests/sites.py): homes of their own on one new PostgreSQL database."""
    backend = make_backend("postgres", home)
    assert backend.db is not None
    made: list[Site] = []

    def site() -> Site:
        made.append(Site(str(backend.db)))
        return made[-1]

    yield site
    for one in made:
        one.close()
    release_backend(backend)
