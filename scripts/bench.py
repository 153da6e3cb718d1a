"""`make bench`: queuectl's benchmarks, each figure next to a baseline measured in the same run.

The machine is shared and noisy, so absolute numbers say little: every case runs its baseline
in the same round as queuectl (paired), and ratios are taken per round before the median.
Each queue lives in a fresh temp home under /tmp, removed afterwards. Results are printed as a
table and written to bench/results.json.

    .venv/bin/python scripts/bench.py              # the full run (3 rounds, under 10 minutes)
    .venv/bin/python scripts/bench.py --runs 5     # more rounds
    .venv/bin/python scripts/bench.py --quick      # smoke run: small sizes, 1 round
    .venv/bin/python scripts/bench.py --only burn,enqueue
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import itertools
import json
import operator
import os
import platform
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import bench_startup
from bench_list import recount
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_OUT = ROOT / "bench" / "results.json"
PROCESS_TIMEOUT = 600.0
MEMORY_POLL = 0.05  # seconds between reads of the engine's /proc/PID/status
WAKE_GAP = 0.02  # seconds between two enqueues in the wake-up case
PREFILL_ENGINE = "prefill"  # the `engine` of the attempts rows the scale case inserts

console = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


class BenchError(Exception):
    """A step of a case failed; the message says which and why."""


# --- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    runs: int = 3
    burn_jobs: int = 2000  # cases 1-3 and 6
    sleep_jobs: int = 2000
    sleep_seconds: float = 0.05
    bulk_jobs: int = 100_000
    latency_runs: int = 50
    startup_runs: int = 20  # per round, of each start-up case
    wake_jobs: int = 200
    scale_small: int = 10_000
    scale_large: int = 1_000_000
    memory_jobs: int = 400
    memory_concurrency: int = 200
    memory_sleep: float = 1.0


FULL = Sizes()
QUICK = Sizes(
    runs=1, burn_jobs=200, sleep_jobs=200, bulk_jobs=5000, latency_runs=5, startup_runs=3,
    wake_jobs=20, scale_small=1000, scale_large=20_000, memory_jobs=200, memory_sleep=0.2,
)  # fmt: skip


# --- figures and targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    op: str  # ">=" or "<="
    threshold: float

    def met(self, value: float) -> bool:
        return {">=": operator.ge, "<=": operator.le}[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass
class Metric:
    case: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def result(self) -> str:
        if self.target is None or not self.values:
            return ""
        return "PASS" if self.target.met(self.median) else "MISS"

    def to_json(self) -> dict[str, Any]:
        stats = (
            {"median": self.median, "min": min(self.values), "max": max(self.values)}
            if self.values
            else {}
        )
        return {
            "case": self.case,
            "name": self.name,
            "unit": self.unit,
            **stats,
            "values": self.values,
            "target": str(self.target) if self.target else None,
            "result": self.result or None,
            "note": self.note or None,
        }


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios: each pair was measured back to back, so the noise mostly cancels."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


# --- processes and queues ---------------------------------------------------------------------


@contextlib.contextmanager
def fresh_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="qb", dir="/tmp"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def queuectl(home: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "queuectl", "--home", str(home), *args]


def describe(argv: Sequence[str]) -> str:
    """A command line fit for an error message: `queuectl ARGS` or `python -c ...`."""
    if list(argv[1:3]) == ["-m", "queuectl"]:
        return " ".join(["queuectl", *argv[5:]])
    if len(argv) > 1 and argv[1] == "-c":
        return "python -c <script> " + " ".join(argv[3:])
    return " ".join(argv)


def run(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    """Run a command to its end; its stdout, or BenchError with its stderr."""
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise BenchError(
            f"`{describe(argv)}` exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )
    return result.stdout


def wall_time(argv: Sequence[str], *, cwd: Path | None = None) -> float:
    """Seconds from the start of a process to its exit."""
    start = time.perf_counter()
    run(argv, cwd=cwd)
    return time.perf_counter() - start


class MemoryWatcher(threading.Thread):
    """Polls a process's resident set while it runs; VmHWM vanishes with the process, so the
    peak is the largest VmHWM (or VmRSS) seen before it ends."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib(self.pid))
            self.done.wait(MEMORY_POLL)


def _status_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            lines = status.read().splitlines()
    except OSError:
        return 0
    sizes = [int(line.split()[1]) for line in lines if line.startswith(("VmHWM:", "VmRSS:"))]
    return max(sizes, default=0)


@dataclass(frozen=True)
class ProcessRun:
    wall: float  # seconds from start to exit
    peak_rss: float  # MiB
    stdout: str


def watched(argv: Sequence[str], *, cwd: Path, log: Path) -> ProcessRun:
    """Run a process to its end, timing it and watching its memory; stderr goes to `log`."""
    with open(log, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=err)
        watcher = MemoryWatcher(process.pid)
        watcher.start()
        try:
            stdout, _ = process.communicate(timeout=PROCESS_TIMEOUT)
        finally:
            wall = time.perf_counter() - start
            watcher.done.set()
            if process.poll() is None:
                process.kill()
                process.wait()
    watcher.join()
    if process.returncode != 0:
        tail = log.read_text(errors="replace").strip()[-500:]
        raise BenchError(f"`{describe(argv)}` exited {process.returncode}: {tail}")
    return ProcessRun(wall, watcher.peak_kib / 1024, stdout.decode(errors="replace"))


def enqueue_file(home: Path, commands: Sequence[str]) -> None:
    """Enqueue one job per command with `enqueue --file` (not timed)."""
    path = home / "jobs.jsonl"
    path.write_text("".join(json.dumps({"command": c}) + "\n" for c in commands))
    run(queuectl(home, "enqueue", "--file", str(path)), cwd=home)
    path.unlink()


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "queue.db", timeout=30)


def scalar(home: Path, sql: str) -> Any:
    with contextlib.closing(db(home)) as conn:
        return conn.execute(sql).fetchone()[0]


# --- burn-down: the core measurement ----------------------------------------------------------


@dataclass(frozen=True)
class BurnDown:
    jobs: int
    wall: float  # the process, start-up included
    span: float  # first job started -> last job finished (from the DB, or the loop's own clock)
    peak_rss: float = 0.0  # MiB
    db_bytes_per_job: float = 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.wall

    @property
    def inner_rate(self) -> float:
        return self.jobs / self.span


class Templates:
    """Prefilled queues, built once per size and copied into each run's fresh home."""

    def __init__(self) -> None:
        self._homes: dict[int, Path] = {}

    def home_with(self, prefill: int) -> Path:
        if prefill not in self._homes:
            home = Path(tempfile.mkdtemp(prefix="qb", dir="/tmp"))
            console.print(f"  building a template queue with {prefill:,} jobs")
            prefill_queue(home, prefill)
            self._homes[prefill] = home
        return self._homes[prefill]

    def close(self) -> None:
        for home in self._homes.values():
            shutil.rmtree(home, ignore_errors=True)


TEMPLATES = Templates()

# The columns of the jobs and attempts tables in queuectl/store/sqlite.sql, with the values of a
# prefilled row unless it says otherwise.
JOB_ROW: dict[str, Any] = {
    "id": None, "command": "true", "state": "pending", "priority": 0, "max_retries": 3,
    "timeout": None, "cwd": "/tmp", "env": "{}", "attempts": 0, "runs": 0, "created_at": 0.0,
    "updated_at": 0.0, "run_at": 0.0, "next_run_at": 0.0, "last_error": None, "exit_code": None,
    "started_at": None, "finished_at": None, "lease_owner": None, "lease_expires_at": None,
    "pid": None,
}  # fmt: skip
ATTEMPT_ROW: dict[str, Any] = {
    "job_id": None, "run": 1, "engine": PREFILL_ENGINE, "started_at": 0.0, "finished_at": 0.0,
    "exit_code": 0, "error": None, "stdout": b"", "stderr": b"", "stdout_truncated": 0,
    "stderr_truncated": 0,
}  # fmt: skip


def row(template: dict[str, Any], **values: Any) -> tuple[Any, ...]:
    return tuple({**template, **values}.values())


def insert_sql(table: str, template: dict[str, Any]) -> str:
    return f"INSERT INTO {table} ({', '.join(template)}) VALUES ({', '.join('?' * len(template))})"


def prefill_queue(home: Path, count: int) -> None:
    """`count` other jobs, straight into the tables: half pending far in the future, half
    completed (each with its attempt). The schema comes from a `queuectl config set` (`status`
    only reads: it never creates a queue); its indexes are dropped for the insert and rebuilt
    from their own SQL, which is faster."""
    run(queuectl(home, "config", "set", "max-retries", "3"), cwd=home)
    now = time.time()
    future, done = now + 10 * 365 * 86400, now - 86400
    ids = sorted(secrets.token_hex(6) for _ in range(count))
    half = count // 2
    pending = (
        row(JOB_ROW, id=job_id, created_at=now, updated_at=now, run_at=future + i,
            next_run_at=future + i)
        for i, job_id in enumerate(ids[:half])
    )  # fmt: skip
    completed = (
        row(JOB_ROW, id=job_id, state="completed", attempts=1, runs=1, created_at=done,
            updated_at=done, run_at=done, next_run_at=done, exit_code=0, started_at=done,
            finished_at=done + 0.01)
        for job_id in ids[half:]
    )  # fmt: skip
    attempts = (
        row(ATTEMPT_ROW, job_id=job_id, started_at=done, finished_at=done + 0.01)
        for job_id in ids[half:]
    )
    with contextlib.closing(db(home)) as conn:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        with conn:
            for name, _ in indexes:
                conn.execute(f"DROP INDEX {name}")
            conn.executemany(insert_sql("jobs", JOB_ROW), itertools.chain(pending, completed))
            conn.executemany(insert_sql("attempts", ATTEMPT_ROW), attempts)
            recount(conn)
            for _, sql in indexes:
                conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")


def db_bytes_per_job(home: Path) -> float:
    """File size of queue.db plus its WAL after a checkpoint, per job in the table."""
    with contextlib.closing(db(home)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        size = sum(p.stat().st_size for p in home.glob("queue.db*") if not p.name.endswith("shm"))
    return size / jobs


def burn_down(
    jobs: int, concurrency: int, loop: str = "asyncio", prefill: int = 0, command: str = "true"
) -> BurnDown:
    """Pre-enqueue `jobs` commands (untimed), then time `worker start --until-idle` (the
    prefilled jobs of the scale case are due far in the future: --until-empty would wait for
    them)."""
    with fresh_home() as home:
        if prefill:
            shutil.copy(TEMPLATES.home_with(prefill) / "queue.db", home / "queue.db")
        enqueue_file(home, [command] * jobs)
        options = ["--concurrency", str(concurrency), "--until-idle", "--quiet", "--loop", loop]
        argv = queuectl(home, "worker", "start", *options)
        process = watched(argv, cwd=home, log=home / "engine.err")
        completed = scalar(home, "SELECT count(*) FROM jobs WHERE state = 'completed'")
        if completed - prefill // 2 != jobs:
            raise BenchError(
                f"burn-down ended with {completed - prefill // 2} of {jobs} jobs completed"
            )
        span = scalar(
            home,
            "SELECT max(finished_at) - min(started_at) FROM attempts "
            f"WHERE engine != '{PREFILL_ENGINE}'",
        )
        size = db_bytes_per_job(home) if prefill else 0.0
    return BurnDown(jobs, process.wall, span, process.peak_rss, size)


BASELINE = """
import asyncio, os, subprocess, sys, time

def install_pidfd_watcher():  # as queuectl/worker.py does on Python 3.11
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)

async def main(jobs, concurrency, command):
    install_pidfd_watcher()
    gate = asyncio.Semaphore(concurrency)

    async def one():
        async with gate:
            process = await asyncio.create_subprocess_shell(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
            await process.communicate()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    print(time.perf_counter() - start)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
"""


def baseline(jobs: int, concurrency: int, command: str = "true") -> BurnDown:
    """The same commands started by a bare asyncio loop, in a fresh interpreter."""
    with fresh_home() as home:
        argv = [PYTHON, "-c", BASELINE, str(jobs), str(concurrency), command]
        process = watched(argv, cwd=home, log=home / "baseline.err")
    return BurnDown(jobs, process.wall, float(process.stdout), process.peak_rss)


# --- cases ------------------------------------------------------------------------------------


def in_turn(round_: int, *steps: Callable[[], T]) -> list[T]:
    """Run one round's steps, rotating which goes first from round to round so that no step
    always follows the same other one; the results come back in the order given."""
    order = [(round_ + i) % len(steps) for i in range(len(steps))]
    results = {i: steps[i]() for i in order}
    return [results[i] for i in range(len(steps))]


def progress(label: str, round_: int, sizes: Sizes, text: str) -> None:
    console.print(f"  {label} round {round_ + 1}/{sizes.runs}: {text}")


def compare_with_baseline(
    case: str, sizes: Sizes, concurrency: int, target: Target | None = None
) -> list[Metric]:
    """Queuectl's burn-down against the bare loop at one concurrency, paired per round."""
    ours: list[BurnDown] = []
    bases: list[BurnDown] = []
    for r in range(sizes.runs):
        base, our = in_turn(
            r,
            functools.partial(baseline, sizes.burn_jobs, concurrency),
            functools.partial(burn_down, sizes.burn_jobs, concurrency),
        )
        bases.append(base)
        ours.append(our)
        progress(
            f"c={concurrency}",
            r,
            sizes,
            f"queuectl {ours[-1].rate:.0f} jobs/s, baseline {bases[-1].rate:.0f} jobs/s",
        )
    return burn_metrics(case, f"c={concurrency}", ours, bases, target)


def burn_metrics(
    case: str,
    label: str,
    ours: Sequence[BurnDown],
    bases: Sequence[BurnDown],
    target: Target | None,
) -> list[Metric]:
    rate = [b.rate for b in ours]
    base_rate = [b.rate for b in bases]
    inner = [b.inner_rate for b in ours]
    base_inner = [b.inner_rate for b in bases]
    return [
        Metric(case, f"queuectl {label}, process wall", "jobs/s", rate),
        Metric(case, f"baseline {label}, process wall", "jobs/s", base_rate),
        Metric(case, f"ratio queuectl/baseline {label}", "x", ratios(rate, base_rate), target),
        Metric(
            case, f"queuectl {label}, engine only (DB first start→last finish)", "jobs/s", inner
        ),
        Metric(case, f"baseline {label}, loop only", "jobs/s", base_inner),
        Metric(case, f"ratio engine only/loop only {label}", "x", ratios(inner, base_inner)),
    ]


def case_burn(sizes: Sizes) -> list[Metric]:
    """Cases 1, 3 and 7a: c=20 against the baseline, asyncio against uvloop, and peak RSS."""
    bases: list[BurnDown] = []
    loops: dict[str, list[BurnDown]] = {"asyncio": [], "uvloop": []}
    for r in range(sizes.runs):
        base, *by_loop = in_turn(
            r,
            functools.partial(baseline, sizes.burn_jobs, 20),
            *(functools.partial(burn_down, sizes.burn_jobs, 20, loop=loop) for loop in loops),
        )
        bases.append(base)
        for results, result in zip(loops.values(), by_loop, strict=True):
            results.append(result)
        progress(
            "c=20",
            r,
            sizes,
            f"baseline {bases[-1].rate:.0f} jobs/s, "
            + ", ".join(f"{loop} {res[-1].rate:.0f} jobs/s" for loop, res in loops.items()),
        )
    asyncio_rates = [b.rate for b in loops["asyncio"]]
    uvloop_rates = [b.rate for b in loops["uvloop"]]
    speedup = ratios(uvloop_rates, asyncio_rates)
    faster = "uvloop" if statistics.median(speedup) > 1 else "asyncio"
    return [
        *burn_metrics("1", "c=20", loops["asyncio"], bases, Target(">=", 0.85)),
        Metric("3", "--loop asyncio c=20, process wall", "jobs/s", asyncio_rates),
        Metric("3", "--loop uvloop c=20, process wall", "jobs/s", uvloop_rates),
        Metric("3", "ratio uvloop/asyncio", "x", speedup, note=f"{faster} is faster"),
        Metric(
            "7", "engine peak RSS, c=20 burn-down", "MiB", [b.peak_rss for b in loops["asyncio"]]
        ),
    ]


def case_concurrency(sizes: Sizes) -> list[Metric]:
    """Case 2: c=1 and c=64 against their baselines; `sleep` jobs against the ideal time."""
    metrics = compare_with_baseline("2", sizes, 1) + compare_with_baseline("2", sizes, 64)
    ideal = sizes.sleep_jobs * sizes.sleep_seconds / 20
    sleeps: list[BurnDown] = []
    for r in range(sizes.runs):
        sleeps.append(burn_down(sizes.sleep_jobs, 20, command=f"sleep {sizes.sleep_seconds:g}"))
        progress("sleep", r, sizes, f"{sleeps[-1].wall:.2f} s (ideal {ideal:g} s)")
    label = f"{sizes.sleep_jobs} × sleep {sizes.sleep_seconds:g}, c=20"
    return [
        *metrics,
        Metric(
            "2", f"{label}, process wall", "s", [b.wall for b in sleeps], note=f"ideal {ideal:g} s"
        ),
        Metric(
            "2", f"{label}: wall/ideal", "x", [b.wall / ideal for b in sleeps], Target("<=", 1.10)
        ),
        Metric("2", f"{label}: engine only/ideal", "x", [b.span / ideal for b in sleeps]),
    ]


def case_enqueue(sizes: Sizes) -> list[Metric]:
    """Case 4: a bulk `enqueue --file` (one process's start-up is case 8)."""
    bulk: list[float] = []
    for r in range(sizes.runs):
        bulk.append(bulk_enqueue(sizes.bulk_jobs))
        progress("enqueue", r, sizes, f"{sizes.bulk_jobs:,} in {bulk[-1]:.2f} s")
    return [
        Metric(
            "4",
            f"enqueue --file of {sizes.bulk_jobs:,} jobs, process wall",
            "s",
            bulk,
            Target("<=", 3.0),
        ),
        Metric(
            "4",
            f"enqueue --file of {sizes.bulk_jobs:,} jobs",
            "jobs/s",
            [sizes.bulk_jobs / t for t in bulk],
        ),
    ]


def bulk_enqueue(jobs: int) -> float:
    with fresh_home() as home:
        path = home / "bulk.jsonl"
        path.write_text("".join(f'{{"command":"echo {i}"}}\n' for i in range(jobs)))
        # the schema exists, as for a live queue (`status` only reads: it creates none)
        run(queuectl(home, "config", "set", "max-retries", "3"), cwd=home)
        seconds = wall_time(queuectl(home, "enqueue", "--file", str(path)), cwd=home)
        count = scalar(home, "SELECT count(*) FROM jobs")
        if count != jobs:
            raise BenchError(f"bulk enqueue stored {count} of {jobs} jobs")
    return seconds


#: case 8's targets: a command's start-up (compiled) against `python -c "import asyncio"`
STARTUP_TARGETS = {"enqueue": Target("<=", 1.25), "status": Target("<=", 1.5)}


def case_startup(sizes: Sizes) -> list[Metric]:
    """Case 8: one `enqueue`, `status` and `list` process (no engine running), compiled and
    from bare sources, against `python -c "import asyncio"`; see scripts/bench_startup.py."""
    rounds: list[bench_startup.Round] = []
    try:
        with bench_startup.setup() as prepared:
            for r in range(sizes.runs):
                rounds.append(bench_startup.one_round(prepared, sizes.startup_runs, r))
                progress(
                    "start-up",
                    r,
                    sizes,
                    f"import asyncio {rounds[-1].median(bench_startup.BASELINE) * 1000:.0f} ms; "
                    + ", ".join(
                        f"{name} {rounds[-1].ratio(f'{name} (compiled)'):.2f}x"
                        for name in bench_startup.COMMANDS
                    ),
                )
    except bench_startup.StartupError as exc:
        raise BenchError(str(exc)) from None
    each = f"median of {sizes.startup_runs}"
    metrics = [
        Metric("8", f"{name} ({each})", "ms", [one.median(name) * 1000 for one in rounds])
        for name in rounds[0].times
    ]
    for name in (bench_startup.BARE, bench_startup.LIBRARIES):
        ratio = [one.ratio(name) for one in rounds]
        metrics.append(Metric("8", f"ratio {name}/import asyncio", "x", ratio))
    for variant in bench_startup.VARIANTS:
        for name in bench_startup.COMMANDS:
            ratio = [one.ratio(f"{name} ({variant})") for one in rounds]
            target = STARTUP_TARGETS.get(name) if variant == "compiled" else None
            metrics.append(
                Metric("8", f"ratio {name} ({variant})/import asyncio", "x", ratio, target)
            )
    return metrics


def case_wakeup(sizes: Sizes) -> list[Metric]:
    """Case 5: an idle detached engine; each job records when its command ran. Latency from
    the enqueue process's exit (as a user sees it, and as the target is set), from the job's
    created_at (the enqueue's clock just before its commit: the engine's share alone), and
    from created_at to the claim (the attempt's started_at: without the spawn)."""
    figures: dict[tuple[str, int], list[float]] = {}
    for r in range(sizes.runs):
        for name, latencies in wakeup_latencies(sizes.wake_jobs).items():
            for pct in (50, 95):
                figures.setdefault((name, pct), []).append(percentile(latencies, pct) * 1000)
        summary = ", ".join(
            f"{name} {values[-1]:.1f}" for (name, pct), values in figures.items() if pct == 95
        )
        progress("wake-up", r, sizes, f"p95 (ms): {summary}")
    return [
        Metric(
            "5",
            f"wake-up p{pct}, {name} ({sizes.wake_jobs} jobs)",
            "ms",
            values,
            Target("<=", 20.0) if pct == 95 and name in WAKE_TARGETED else None,
        )
        for (name, pct), values in figures.items()
    ]


WAKE_EXIT, WAKE_CREATED, WAKE_CLAIMED = (
    "enqueue exit→command ran",
    "created_at→command ran",
    "created_at→claimed",
)
WAKE_TARGETED = (WAKE_EXIT, WAKE_CREATED)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, round(pct / 100 * len(ordered))) - 1]


def wakeup_latencies(jobs: int) -> dict[str, list[float]]:
    """Seconds between the moments of WAKE_* for each of `jobs` jobs enqueued one by one."""
    with fresh_home() as home:
        stamps = home / "t"
        stamps.mkdir()
        command = f"date +%s.%N > {stamps}/$QUEUECTL_JOB_ID"
        run(queuectl(home, "worker", "start", "--detach", "-c", "4"), cwd=home)
        try:
            returned: dict[str, float] = {}
            for _ in range(jobs):
                job_id = run(queuectl(home, "enqueue", "--", command), cwd=home).strip()
                returned[job_id] = time.time()
                time.sleep(WAKE_GAP)
            ran = read_stamps(stamps, set(returned))
        finally:
            run(queuectl(home, "worker", "stop"), cwd=home)
        with contextlib.closing(db(home)) as conn:
            created = dict(conn.execute("SELECT id, created_at FROM jobs").fetchall())
            claimed = dict(conn.execute("SELECT job_id, started_at FROM attempts").fetchall())
    return {
        WAKE_EXIT: [ran[job_id] - at for job_id, at in returned.items()],
        WAKE_CREATED: [ran[job_id] - created[job_id] for job_id in returned],
        WAKE_CLAIMED: [claimed[job_id] - created[job_id] for job_id in returned],
    }


def read_stamps(folder: Path, ids: set[str], timeout: float = 30.0) -> dict[str, float]:
    """Each job's `date +%s.%N`, waiting until every job has written its own."""
    deadline = time.monotonic() + timeout
    stamps: dict[str, float] = {}
    while time.monotonic() < deadline:
        for job_id in ids - stamps.keys():
            text = (folder / job_id).read_text() if (folder / job_id).exists() else ""
            if text.endswith("\n"):
                stamps[job_id] = float(text)
        if len(stamps) == len(ids):
            return stamps
        time.sleep(0.05)
    raise BenchError(f"only {len(stamps)} of {len(ids)} jobs ran within {timeout:g}s")


def case_scale(sizes: Sizes) -> list[Metric]:
    """Case 6: the c=20 burn-down with many other jobs in the table."""
    small: list[BurnDown] = []
    large: list[BurnDown] = []
    for r in range(sizes.runs):
        with_small, with_large = in_turn(
            r,
            functools.partial(burn_down, sizes.burn_jobs, 20, prefill=sizes.scale_small),
            functools.partial(burn_down, sizes.burn_jobs, 20, prefill=sizes.scale_large),
        )
        small.append(with_small)
        large.append(with_large)
        progress(
            "scale",
            r,
            sizes,
            f"{sizes.scale_small:,} others {small[-1].rate:.0f} jobs/s, "
            f"{sizes.scale_large:,} others {large[-1].rate:.0f} jobs/s",
        )
    s, big = f"{sizes.scale_small:,}", f"{sizes.scale_large:,}"
    return [
        Metric("6", f"c=20 with {s} others, process wall", "jobs/s", [b.rate for b in small]),
        Metric("6", f"c=20 with {big} others, process wall", "jobs/s", [b.rate for b in large]),
        Metric(
            "6",
            f"ratio {big}/{s}",
            "x",
            ratios([b.rate for b in large], [b.rate for b in small]),
            Target(">=", 0.9),
        ),
        Metric(
            "6",
            f"ratio {big}/{s}, engine only",
            "x",
            ratios([b.inner_rate for b in large], [b.inner_rate for b in small]),
        ),
        Metric(
            "6", f"database size per job, {s} others", "bytes", [b.db_bytes_per_job for b in small]
        ),
        Metric(
            "6",
            f"database size per job, {big} others",
            "bytes",
            [b.db_bytes_per_job for b in large],
        ),
    ]


def case_memory(sizes: Sizes) -> list[Metric]:
    """Case 7b: peak RSS with many jobs running at once."""
    results: list[BurnDown] = []
    command = f"sleep {sizes.memory_sleep:g}"
    for r in range(sizes.runs):
        results.append(burn_down(sizes.memory_jobs, sizes.memory_concurrency, command=command))
        progress("memory", r, sizes, f"peak RSS {results[-1].peak_rss:.1f} MiB")
    label = f"c={sizes.memory_concurrency}, {sizes.memory_jobs} × {command}"
    return [
        Metric(
            "7",
            f"engine peak RSS, {label}",
            "MiB",
            [b.peak_rss for b in results],
            Target("<=", 80.0),
        ),
    ]


CASES: dict[str, Callable[[Sizes], list[Metric]]] = {
    "burn": case_burn,
    "concurrency": case_concurrency,
    "enqueue": case_enqueue,
    "wakeup": case_wakeup,
    "scale": case_scale,
    "memory": case_memory,
    "startup": case_startup,
}


# --- report -----------------------------------------------------------------------------------


def header(runs: int, quick: bool) -> dict[str, Any]:
    """The machine and software the figures were measured on."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "runs": runs,
        "quick": quick,
    }


def git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    return None


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(metrics: Sequence[Metric], info: dict[str, Any]) -> Table:
    title = (
        f"queuectl benchmarks: {info['cores']} cores, Python {info['python']}, SQLite "
        f"{info['sqlite']}, kernel {info['kernel']}, {info['date']}, "
        f"{info['runs']} run{'s' if info['runs'] != 1 else ''}"
        + (" (quick: reduced sizes)" if info["quick"] else "")
    )
    out = Table(title=title, title_justify="left")
    for column in ("#", "figure", "median", "min", "max", "unit", "target", ""):
        numeric = column in ("median", "min", "max")
        out.add_column(column, justify="right" if numeric else "left")
    for m in metrics:
        stats = [number(v) for v in (m.median, min(m.values), max(m.values))]
        style = {"PASS": "green", "MISS": "red"}.get(m.result, "")
        verdict = f"[{style}]{m.result}[/]" if style else m.note
        out.add_row(m.case, m.name, *stats, m.unit, str(m.target or ""), verdict)
    return out


def write_results(
    path: Path, info: dict[str, Any], metrics: Sequence[Metric], errors: dict[str, str]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"header": info, "metrics": [m.to_json() for m in metrics], "errors": errors}
    path.write_text(json.dumps(data, indent=2) + "\n")


# --- main -------------------------------------------------------------------------------------


def case_parser(
    doc: str, cases: Collection[str], default_out: Path, default_runs: int = 3
) -> argparse.ArgumentParser:
    """The options of every benchmark script made of cases (this one, bench_pg, bench_scale);
    a script adds its own, then parses with parse_cases."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, help=f"rounds per case (default {default_runs}; 1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 round")
    parser.add_argument("--only", help=f"comma-separated cases of: {', '.join(cases)}")
    parser.add_argument("--out", type=Path, default=default_out, help="the JSON results file")
    return parser


def parse_cases(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, cases: Collection[str]
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    unknown = set((args.only or "").split(",")) - set(cases) - {""}
    if unknown:
        parser.error(
            f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(cases)}"
        )
    return args


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_cases(case_parser(__doc__, CASES, DEFAULT_OUT), argv, CASES)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = replace(sizes, runs=args.runs)
    chosen = args.only.split(",") if args.only else list(CASES)
    info = header(sizes.runs, args.quick)
    metrics: list[Metric] = []
    errors: dict[str, str] = {}
    began = time.monotonic()
    try:
        for name in chosen:
            console.print(f"[bold]{name}[/] ({time.monotonic() - began:.0f} s elapsed)")
            try:
                metrics += CASES[name](sizes)
            except (BenchError, subprocess.TimeoutExpired) as exc:
                errors[name] = str(exc)
                console.print(f"[red]  {name} failed: {exc}[/]")
    finally:
        TEMPLATES.close()
    info["seconds"] = round(time.monotonic() - began, 1)
    write_results(args.out, info, metrics, errors)
    metrics.sort(key=lambda m: m.case)  # stable: each case keeps its own order
    width = None if sys.stdout.isatty() else 150
    Console(highlight=False, width=width).print(table(metrics, info))
    console.print(f"{len(metrics)} figures in {info['seconds']:.0f} s; written to {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
