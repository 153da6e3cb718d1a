"""A command imports only what it needs: start-up is most of what one `queuectl enqueue`
costs (`make bench`'s case 8 measures it; this checks the imports that decide it, which a
timing test on a shared machine could not).

Each command runs in a real subprocess under `python -X importtime`, whose report names every
module imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: heavy or engine-only modules that no command below needs
NEVER = (
    "rich",  # tables: only the commands that draw one (list, show, config list)
    "uvloop",  # only `worker start --loop uvloop`
    "queuectl.engine",  # only `worker start` (but see ALLOWED)
    "importlib.resources",  # tempfile, shutil, zipfile: the SQL files are read as files
    "secrets",  # hmac, hashlib, random: job ids come from os.urandom
)

#: light modules under those: the engine's status report, which `status` shows
ALLOWED = ("queuectl.engine", "queuectl.engine.status")


def imported(home: Path, *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "queuectl", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "queuectl.cli" in modules, "importtime reported nothing"
    return modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules - set(ALLOWED) if any(m == n or m.startswith(f"{n}.") for n in NEVER)
    )


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    """A queue with one job, j1."""
    home = tmp_path / "q"
    imported(home, "enqueue", "--id", "j1", "--", "true")
    return home


@pytest.mark.parametrize(
    "args",
    [
        ("enqueue", "--", "true"),
        ("enqueue", '{"id": "j2", "command": "true"}'),
        ("status",),
        ("list",),
        ("cancel", "j1"),
        ("config", "get", "max-retries"),
        ("--version",),
    ],
)
def test_commands_import_nothing_heavy(queue: Path, args: tuple[str, ...]) -> None:
    assert heavy(imported(queue, *args)) == []


def test_a_table_still_imports_rich(queue: Path) -> None:
    """The check above can fail: `show` draws rich tables."""
    assert "rich" in heavy(imported(queue, "show", "j1"))
