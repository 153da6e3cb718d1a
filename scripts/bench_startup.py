"""The start-up of one CLI command, for `make bench`'s case 8 (scripts/bench.py builds the rows).

A user feels `queuectl enqueue` and `status` as the time from the command to the prompt, and
most of it is imports. Each command is timed against `python -c "import asyncio"` (the event
loop every command needs: the floor a Python asyncio CLI cannot go under), interleaved in one
round so that the machine's noise hits both alike.

Two copies of the package are timed: one compiled (as pip and `make install` leave it: the
figures that the targets judge) and one with no bytecode under PYTHONDONTWRITEBYTECODE=1 (as a
tree that cannot keep its __pycache__ runs: every start-up compiles every module it imports).
The libraries (asyncclick, aiosqlite, ...) are the venv's, compiled by pip, in both. Every
case's name says which copy it ran ("compiled", "source").

The compiled copy runs against two queues: one that holds a job or so, and one of BIG_QUEUE
jobs (filled straight into its file, as scripts/bench_list.py does), where `status` counts
them and `enqueue` inserts into its indexes: a case "NAME (compiled, 1000000 jobs)".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import bench_list

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: what the `queuectl` console script does
ENTRY = "import sys; from queuectl.cli import main; sys.argv[0] = 'queuectl'; sys.exit(main())"
TIMEOUT = 60.0

BASELINE = "python -c 'import asyncio'"
BARE = "python -c pass"
#: the libraries every command that opens the queue imports, before any code of queuectl's
LIBRARIES = "python -c 'import asyncio, asyncclick, aiosqlite'"
#: jobs in the big queue
BIG_QUEUE = 1_000_000
COMPILED, SOURCE = "compiled", "source"
#: the copies of the package, each with its bytecode or without
COPIES = (COMPILED, SOURCE)
BIG = f"{COMPILED}, {BIG_QUEUE:,} jobs"
#: what each case runs: a copy of the package against a queue (the small one or the big one)
VARIANTS = (COMPILED, BIG, SOURCE)
COMMANDS: dict[str, tuple[str, ...]] = {
    "enqueue": ("enqueue", "--", "true"),
    "status": ("status",),
    "list": ("list",),
}


class StartupError(Exception):
    """A timed command failed; the message names it."""


class Setup:
    """A temp dir with the two copies of the package, a queue that already exists and one of
    BIG_QUEUE jobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.copies = {copy: root / copy for copy in COPIES}
        self.homes = {COMPILED: root / "home", SOURCE: root / "home", BIG: root / "big"}
        for name, copy in self.copies.items():
            shutil.copytree(
                ROOT / "queuectl", copy / "queuectl", ignore=shutil.ignore_patterns("__pycache__")
            )
            if name == COMPILED:
                subprocess.run(
                    [PYTHON, "-m", "compileall", "-q", str(copy / "queuectl")], check=True
                )
        for variant in VARIANTS:
            found = self.run(
                self.python(variant, "-c", "import queuectl; print(queuectl.__file__)")
            )
            if not found.startswith(str(self.copies[self.copy(variant)])):
                raise StartupError(f"the {variant} copy is not the one imported: {found}")
        uncompiled = without_bytecode(self.copies[COMPILED])
        if uncompiled:
            raise StartupError(f"the compiled copy lacks bytecode for {uncompiled[:5]}")
        # the queue exists, as a user's does (`status` only reads: it never creates one)
        self.run(self.queuectl(COMPILED, "config", "set", "max-retries", "3"))
        bench_list.fill(self.homes[BIG], BIG_QUEUE)

    @staticmethod
    def copy(variant: str) -> str:
        """The copy of the package that `variant` runs."""
        return SOURCE if variant == SOURCE else COMPILED

    def env(self, variant: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if variant is not None:
            env["PYTHONPATH"] = str(self.copies[self.copy(variant)])
        else:
            env.pop("PYTHONPATH", None)
        return env

    def python(self, variant: str | None, *args: str) -> tuple[list[str], dict[str, str]]:
        return [PYTHON, *args], self.env(variant)

    def queuectl(self, variant: str, *args: str) -> tuple[list[str], dict[str, str]]:
        return self.python(variant, "-c", ENTRY, "--home", str(self.homes[variant]), *args)

    def cases(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Every timed command line, by the name its figures carry."""
        cases = {
            BASELINE: self.python(None, "-c", "import asyncio"),
            BARE: self.python(None, "-c", "pass"),
            LIBRARIES: self.python(None, "-c", "import asyncio, asyncclick, aiosqlite"),
        }
        for variant in VARIANTS:
            for name, args in COMMANDS.items():
                cases[f"{name} ({variant})"] = self.queuectl(variant, *args)
        return cases

    def run(self, case: tuple[list[str], Mapping[str, str]]) -> str:
        argv, env = case
        result = subprocess.run(
            argv, env=env, cwd=self.root, capture_output=True, text=True, timeout=TIMEOUT
        )
        if result.returncode != 0:
            raise StartupError(f"{argv[-3:]} exited {result.returncode}: {result.stderr[-300:]}")
        return result.stdout

    def wall(self, case: tuple[list[str], Mapping[str, str]]) -> float:
        start = time.perf_counter()
        self.run(case)
        return time.perf_counter() - start


def without_bytecode(copy: Path) -> list[str]:
    """The modules of `copy` that would compile at each start-up: no .pyc, or one that does
    not match its source (the mtime and size in the .pyc's header, as the import checks)."""
    missing = []
    for source in sorted(copy.rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(source)))
        info = source.stat()
        header = cached.read_bytes()[:16] if cached.exists() else b""
        expected = (int(info.st_mtime) & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF)
        found = (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little"))
        if len(header) < 16 or found != expected:
            missing.append(str(source.relative_to(copy)))
    return missing


@contextmanager
def setup() -> Iterator[Setup]:
    root = Path(tempfile.mkdtemp(prefix="qs", dir="/tmp"))
    try:
        yield Setup(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Round:
    """One round's wall times (seconds) of each case, repeat by repeat: in each repeat every
    case ran once, back to back, so a case's ratio to the baseline is taken per repeat (the
    load of a shared machine changes by the second) before the median."""

    def __init__(self, times: dict[str, list[float]]) -> None:
        self.times = times

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, name: str) -> float:
        pairs = zip(self.times[name], self.times[BASELINE], strict=True)
        return statistics.median(ours / base for ours, base in pairs)


def one_round(prepared: Setup, repeats: int, round_: int) -> Round:
    """Each case `repeats` times; within a repeat the cases take turns, starting from a
    different one in each repeat and round."""
    cases = prepared.cases()
    names: Sequence[str] = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = round_ * repeats + repeat
        for i in range(len(names)):
            name = names[(shift + i) % len(names)]
            times[name].append(prepared.wall(cases[name]))
    return Round(times)
