"""Fixtures: a fresh, short queue home per test, the real CLI run against it, and real engines
on it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from engine_process import EngineProcess, StartEngine
from helpers import Cli, decoy_env, run_cli


@pytest.fixture
def home() -> Iterator[Path]:
    """A new empty directory for one test's queue, short enough for a Unix socket path."""
    path = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def decoy_home(home: Path) -> Path:
    """Where $QUEUECTL_HOME points in CLI runs: never to be used while --home is given."""
    return home / "decoy"


@pytest.fixture
def cli(home: Path, decoy_home: Path) -> Iterator[Cli]:
    """`cli(*args, input=None, env=None, check=None)` runs `python -m queuectl --home HOME ...`.

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
        return run_cli(home, *args, input=input, env={**decoy, **(env or {})}, check=check)

    yield run
    assert not decoy_home.exists(), "a CLI run used $QUEUECTL_HOME although --home was given"


@pytest.fixture
def engines(home: Path) -> Iterator[StartEngine]:
    """`engines(*worker_start_args, env=None, cwd=None)` starts an engine
    (`queuectl worker start ARGS...`) on the test's home. At the end of the test, pass or fail,
    every engine is stopped and any job a killed engine left running is killed; the engines'
    logs are printed (pytest shows them when the test failed)."""
    started: list[EngineProcess] = []

    def start(
        *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> EngineProcess:
        engine = EngineProcess(home, *args, env=env, cwd=cwd)
        started.append(engine)
        return engine

    try:
        yield start
    finally:
        for engine in started:
            engine.close()
        for engine in started:
            print(
                f"--- engine pid {engine.pid} {' '.join(engine.args)}: exit "
                f"{engine.proc.returncode}\n{engine.log()}"
            )
