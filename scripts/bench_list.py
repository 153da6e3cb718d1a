"""`queuectl list` on a big queue: wall time and peak memory of the streamed listing.

Fills a queue with JOBS jobs (default 1,000,000) straight into its SQLite file (the schema
comes from opening it as the first enqueue does), in a mix of states, ages, commands, labels
and errors, then times as separate processes:

    list --json --limit 1000000      (the whole queue as one JSON array)
    list --limit 100000              (the table, piped, 160 columns)
    list --limit 100000 --state dead,failed --grep nightly   (a filtered table)

Peak memory is the process's VmHWM, read from /proc/PID/status (queuectl.procfs.status) while
it runs; VmHWM is a high-water mark, so the last reading before the exit is the peak. The
output goes to a file, which is then checked (the JSON parses, the rows are all there).

    .venv/bin/python scripts/bench_list.py
    .venv/bin/python scripts/bench_list.py --jobs 100000 --keep /tmp/big   # reuse the queue
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from queuectl.procfs import status
from queuectl.store import open_store

POLL = 0.02  # seconds between reads of /proc/PID/status

COLUMNS = (
    "id, command, state, priority, max_retries, timeout, cwd, env, attempts, runs, created_at, "
    "updated_at, run_at, next_run_at, last_error, exit_code, started_at, finished_at, label"
)
STATES = [("completed", 70), ("pending", 15), ("failed", 5), ("dead", 5), ("canceled", 5)]


def rows(count: int, now: float) -> Iterator[tuple[object, ...]]:
    """Jobs created over the last 30 days in creation order, as the store would hold them."""
    rng = random.Random(1)
    states = [state for state, weight in STATES for _ in range(weight)]
    start = now - 30 * 86400
    for n in range(count):
        created = start + 30 * 86400 * n / count
        state = rng.choice(states)
        runs = 0 if state == "pending" else rng.randint(1, 4)
        error = None
        if state in ("failed", "dead"):
            error = f"exit code {rng.randint(1, 3)}: convert: unable to open image 'photo-{n}.jpg'"
        elif state == "canceled":
            error = "canceled by the user"
        yield (
            f"job-{n:07d}",
            f"convert /srv/photos/2026/photo-{n:07d}.jpg -resize 50% /srv/thumbs/{n:07d}.jpg",
            state,
            rng.randint(0, 9),
            3,
            None if n % 3 else 600.0,
            "/srv/photos",
            "{}",
            runs,
            runs,
            created,
            created + 5,
            created,
            created + (3600 if state in ("pending", "failed") else 0),
            error,
            None if error is None else 1,
            None if runs == 0 else created + 1,
            None if state in ("pending", "failed") else created + 5,
            f"nightly {n % 7}" if n % 10 == 0 else None,
        )


async def create(home: Path) -> None:
    """The queue with its schema, as the first enqueue would make it."""
    store = await open_store(home)
    await store.close()


def recount(conn: sqlite3.Connection) -> None:
    """The store counts the jobs it inserts itself (schema v5's job_counts), so a fill that
    writes rows straight into the tables must count them once it is done."""
    conn.execute("DELETE FROM job_counts")
    conn.execute(
        "INSERT INTO job_counts (queue, state, n) "
        "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
    )


def fill(home: Path, count: int) -> None:
    asyncio.run(create(home))
    with contextlib.closing(sqlite3.connect(home / "queue.db")) as conn:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        with conn:
            for name, _ in indexes:
                conn.execute(f"DROP INDEX {name}")
            marks = ", ".join("?" * len(COLUMNS.split(",")))
            conn.executemany(
                f"INSERT INTO jobs ({COLUMNS}) VALUES ({marks})", rows(count, time.time())
            )
            recount(conn)
            for _, sql in indexes:
                conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float  # user + system seconds: less at the mercy of a busy machine than the wall
    peak_mib: float
    output: Path


def measure(home: Path, args: Sequence[str], output: Path) -> Run:
    argv = [sys.executable, "-m", "queuectl", "--home", str(home), *args]
    peak = 0
    done = threading.Event()

    def watch(pid: int) -> None:
        nonlocal peak
        while not done.is_set():
            hwm = status(pid).get("VmHWM", "0 kB").split()[0]
            peak = max(peak, int(hwm) if hwm.isdigit() else 0)
            done.wait(POLL)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with output.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        watcher = threading.Thread(target=watch, args=(process.pid,), daemon=True)
        watcher.start()
        _, stderr = process.communicate()
        wall = time.perf_counter() - start
    done.set()
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {process.returncode}: {stderr.decode()}")
    return Run(wall, cpu, peak / 1024, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="queue home to fill once and reuse")
    options = parser.parse_args()
    home = options.keep or Path(tempfile.mkdtemp(prefix="qlist", dir="/tmp"))
    try:
        if not (home / "queue.db").exists():
            began = time.perf_counter()
            fill(home, options.jobs)
            print(f"filled {options.jobs:,} jobs in {time.perf_counter() - began:.1f} s")
        table_limit = str(min(100_000, options.jobs))
        cases = [
            ("list --json (all)", ["list", "--json", "--limit", str(options.jobs)]),
            (f"list table --limit {table_limit}", ["list", "--limit", table_limit]),
            (
                "list table, dead+failed, --grep",
                ["list", "--limit", table_limit, "--state", "dead,failed", "--grep", "nightly"],
            ),
        ]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'case':40} {'wall s':>8} {'CPU s':>7} {'peak MiB':>9} {'rows':>9}")
        for name, args in cases:
            result = measure(home, args, home / "out.txt")
            if "--json" in args:
                with result.output.open() as text:
                    count = len(json.load(text))
            else:
                with result.output.open() as text:  # the header and the "showing" line
                    count = sum(1 for line in text if not line.startswith(("ID ", "showing ")))
            print(
                f"{name:40} {result.wall:8.2f} {result.cpu:7.2f} {result.peak_mib:9.1f} {count:9,}"
            )
    finally:
        if options.keep is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
