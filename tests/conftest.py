"""Fixtures: a fresh, short queue home per test, and the real CLI run against it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from helpers import Cli, run_cli


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
    decoy_env = {"QUEUECTL_HOME": str(decoy_home), "XDG_DATA_HOME": str(decoy_home / "xdg")}

    def run(
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool | int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, input=input, env={**decoy_env, **(env or {})}, check=check)

    yield run
    assert not decoy_home.exists(), "a CLI run used $QUEUECTL_HOME although --home was given"
