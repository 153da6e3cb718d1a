"""`make bench-scale`: queuectl on a big queue against the same on a small one (issue 14).

The issue's targets:

- flat with size: with 1,000,000 finished jobs and 100,000 pending, claim throughput, `status`,
  `list` (first page), `show`, the dashboard's overview and jobs pages and `/metrics` each
  within 1.5x of the same on an empty queue;
- memory: engine RSS under 80 MB at c=500 with 1,000,000 jobs queued; `list --json` of
  1,000,000 rows under 100 MB.

The queues are built once per run, straight into the SQLite file (plain INSERT ... SELECT
statements into jobs and attempts, then counted as the store counts its inserts, then the
indexes rebuilt), checked against `queuectl status --json`, and copied for each case that
writes:

- big: FINISHED finished jobs (90% completed, 5% dead, each with its attempt; 5% canceled
  while waiting) created over 30 days, and PENDING jobs in state `pending` due ten years from
  now (so they stay pending: `--until-idle` ignores them);
- small: the same mix at a thousandth of the size (1,000 + 100): the baseline. Not quite
  empty, so that `list` prints a full first page and `show` has a finished job to show, as on
  the big queue;
- queued: MEMORY_QUEUED pending jobs, due in ten years, for the memory case (against an empty
  queue).

Every figure is paired: each round measures the big queue and its baseline back to back, the
order rotating (bench.in_turn), and the ratio is taken per round before the median. The
"slowdown" is big/small for a time and small/big for a rate, so the target is <= 1.5 for both.

- claim: a burn-down of BURN `true` jobs (priority 10: before every prefilled job) at c=20,
  `worker start --until-idle` (process wall, and the engine's own first-start to last-finish
  from the attempts), then the store's own claim + finish loop (scripts/bench_queues.py's
  drain: no processes) over STORE jobs after a warm-up. After each, the counts are checked:
  the prefilled pending jobs are still pending, exactly the new ones completed;
- cli: the real console script (`.venv/bin/queuectl --home H status`, `list`, `show ID`),
  CLI_RUNS times each per round, the median (bytecode compiled first);
- web: a real `queuectl web`: `/`, `/jobs` and `/metrics`, WEB_REPEAT times each after a
  warm-up, the median;
- memory: `worker start -c 500 --until-idle` running MEMORY_JOBS `sleep 2` jobs with
  MEMORY_QUEUED pending behind them, peak RSS (the largest VmHWM of /proc/PID/status seen
  while it runs, bench.watched), against the same on an empty queue; `list --json --limit
  1000000` of the big queue (and of the small one), its output read through a pipe and counted
  (its rows are all there), its peak RSS watched the same way, in the first LIST_RUNS rounds
  only (a peak RSS hardly varies; the listing takes a minute or more).

The SQLite store only; PostgreSQL (`--db`) is not done yet.

    .venv/bin/python scripts/bench_scale.py               # the full run (3 rounds)
    .venv/bin/python scripts/bench_scale.py --quick       # smoke run: small sizes, 1 round
    .venv/bin/python scripts/bench_scale.py --only cli,web --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_list import recount
from rich.console import Console
from rich.table import Table

import bench  # scripts/ is not a package: found through the sys.path entry above
from bench import PREFILL_ENGINE, BenchError, Metric, Target, console

DEFAULT_OUT = bench.ROOT / "bench" / "scale.json"
CLI = Path(bench.PYTHON).parent / "queuectl"  # the console script, as a user runs it
FLAT = Target("<=", 1.5)  # "within 1.5x of the same on an empty queue"
PRIORITY = 10  # the measured jobs', above the prefilled jobs' 0
FUTURE = 10 * 365 * 86400.0  # the prefilled pending jobs are due this far ahead
PAGES = [("overview", "/"), ("jobs", "/jobs"), ("/metrics", "/metrics")]


@dataclass(frozen=True)
class Sizes:
    runs: int = 3
    finished: int = 1_000_000
    pending: int = 100_000
    small_finished: int = 1_000
    small_pending: int = 100
    burn_jobs: int = 2000
    burn_concurrency: int = 20
    store_jobs: int = 5000
    store_warmup: int = 500
    cli_runs: int = 9
    web_repeat: int = 9
    memory_queued: int = 1_000_000
    memory_jobs: int = 600
    memory_concurrency: int = 500
    memory_sleep: float = 2.0
    list_rows: int = 1_000_000
    list_runs: int = 1  # rounds that list: its peak RSS hardly varies, and it takes a minute


FULL = Sizes()
QUICK = Sizes(
    runs=1, finished=20_000, pending=2_000, small_finished=100, small_pending=10, burn_jobs=200,
    store_jobs=500, store_warmup=100, cli_runs=2, web_repeat=2, memory_queued=20_000,
    memory_jobs=60, memory_concurrency=50, memory_sleep=0.5, list_rows=20_000,
)  # fmt: skip


# --- the queues -------------------------------------------------------------------------------

FINISHED_ID = "done-{:07d}"
PENDING_ID = "wait-{:07d}"

# i counts the rows (0, 1, ...); one in 20 finished jobs is dead, one in 20 canceled.
NUMBERS = (
    "WITH RECURSIVE n(i) AS (SELECT 0 WHERE :count > 0 UNION ALL SELECT i + 1 FROM n "
    "WHERE i + 1 < :count) "
)
STATE = "CASE i % 20 WHEN 0 THEN 'dead' WHEN 1 THEN 'canceled' ELSE 'completed' END"
INSERT_FINISHED = (
    NUMBERS
    + f"""
INSERT INTO jobs (id, command, state, priority, max_retries, cwd, env, attempts, runs,
                  created_at, updated_at, run_at, next_run_at, last_error, error_kind, exit_code,
                  started_at, finished_at, label)
SELECT printf('done-%07d', i), printf('convert /srv/photos/photo-%07d.jpg /srv/thumbs/', i),
       {STATE}, 0, 0, '/srv', '{{}}',
       iif(i % 20 = 1, 0, 1), iif(i % 20 = 1, 0, 1),
       :start + i * :step, :start + i * :step + 5, :start + i * :step, :start + i * :step,
       CASE i % 20 WHEN 0 THEN 'exit code 1' WHEN 1 THEN 'canceled by the user' END,
       CASE i % 20 WHEN 0 THEN 'exit' WHEN 1 THEN 'canceled' END,
       CASE i % 20 WHEN 0 THEN 1 WHEN 1 THEN NULL ELSE 0 END,
       iif(i % 20 = 1, NULL, :start + i * :step + 1), :start + i * :step + 5,
       iif(i % 10 = 2, printf('nightly %d', i % 7), NULL)
  FROM n
"""
)
INSERT_ATTEMPTS = (
    NUMBERS
    + f"""
INSERT INTO attempts (job_id, run, engine, started_at, finished_at, exit_code, error, error_kind)
SELECT printf('done-%07d', i), 1, '{PREFILL_ENGINE}', :start + i * :step + 1,
       :start + i * :step + 5, iif(i % 20 = 0, 1, 0), iif(i % 20 = 0, 'exit code 1', NULL),
       iif(i % 20 = 0, 'exit', NULL)
  FROM n WHERE i % 20 <> 1
"""
)
INSERT_PENDING = (
    NUMBERS
    + """
INSERT INTO jobs (id, command, state, priority, max_retries, cwd, env, created_at, updated_at,
                  run_at, next_run_at)
SELECT printf('wait-%07d', i), 'true', 'pending', 0, 3, '/srv', '{}', :now - :count + i,
       :now - :count + i, :future + i, :future + i
  FROM n
"""
)


@dataclass(frozen=True)
class Queue:
    """A template queue's home and what was put in it."""

    home: Path
    counts: dict[str, int]  # jobs per state, as inserted

    @property
    def jobs(self) -> int:
        return sum(self.counts.values())

    @property
    def show_id(self) -> str:
        """A completed job half-way down the finished ones (with its attempt)."""
        finished = self.counts["completed"] + self.counts["dead"] + self.counts["canceled"]
        middle = finished // 2
        return FINISHED_ID.format(middle - middle % 20 + 2)


def expected_counts(finished: int, pending: int) -> dict[str, int]:
    dead = (finished + 19) // 20  # i % 20 == 0 for i < finished
    canceled = (finished + 18) // 20
    return {
        "pending": pending,
        "completed": finished - dead - canceled,
        "dead": dead,
        "canceled": canceled,
    }


async def _create(home: Path) -> None:
    from queuectl.store import open_store

    store = await open_store(home)
    await store.close()


def fill(home: Path, finished: int, pending: int) -> Queue:
    """A queue of `finished` finished and `pending` pending jobs (see the module's doc): the
    schema as the first enqueue makes it, the rows inserted by INSERT ... SELECT and then
    counted (bench_list.recount), the indexes dropped for the insert and rebuilt from their
    own SQL."""
    shutil.rmtree(home, ignore_errors=True)  # a fill that failed half-way is not reused
    home.mkdir(parents=True)
    asyncio.run(_create(home))
    now = time.time()
    start, step = now - 30 * 86400, 30 * 86400 / max(finished, 1)
    with contextlib.closing(sqlite3.connect(home / "queue.db")) as conn:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -400000")  # KiB: the index builds sort in memory
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('jobs', 'attempts')"
        ).fetchall()
        with conn:
            for name, _ in indexes:
                conn.execute(f"DROP INDEX {name}")
            span = {"count": finished, "start": start, "step": step}
            conn.execute(INSERT_FINISHED, span)
            conn.execute(INSERT_ATTEMPTS, span)
            conn.execute(INSERT_PENDING, {"count": pending, "now": now, "future": now + FUTURE})
            recount(conn)
            for _, sql in indexes:
                conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")
    queue = Queue(home, expected_counts(finished, pending))
    check_counts(home, queue.counts, "after the fill")
    return queue


def check_counts(home: Path, expected: dict[str, int], when: str) -> None:
    """`queuectl status --json`'s counts (the store's own, whichever way it keeps them) and a
    plain count(*) of the jobs table must both be `expected` (other states: none)."""
    status = json.loads(bench.run([str(CLI), "--home", str(home), "status", "--json"]))
    with contextlib.closing(sqlite3.connect(home / "queue.db")) as conn:
        table = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    for source, counts in (("status --json", status["counts"]), ("count(*)", table)):
        found = {state: n for state, n in counts.items() if n}
        if found != {state: n for state, n in expected.items() if n}:
            raise BenchError(f"{when}: {source} counts {found}, expected {expected}")


@contextlib.contextmanager
def clone(queue: Queue) -> Iterator[Path]:
    """A fresh copy of a template queue's home, removed afterwards."""
    with bench.fresh_home() as home:
        shutil.copy(queue.home / "queue.db", home / "queue.db")
        yield home


class Queues:
    """The run's template queues, each built on first use."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.root = Path(tempfile.mkdtemp(prefix="qscale", dir="/tmp"))
        self._built: dict[str, Queue] = {}

    def get(self, name: str) -> Queue:
        if name not in self._built:
            s = self.sizes
            finished, pending = {
                "big": (s.finished, s.pending),
                "small": (s.small_finished, s.small_pending),
                "queued": (0, s.memory_queued),
                "empty": (0, 0),
            }[name]
            began = time.perf_counter()
            self._built[name] = fill(self.root / name, finished, pending)
            console.print(
                f"  built the {name} queue ({finished:,} finished, {pending:,} pending) in "
                f"{time.perf_counter() - began:.1f} s; status --json agrees"
            )
        return self._built[name]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# --- measurements -----------------------------------------------------------------------------


def cli(home: Path, *args: str) -> list[str]:
    return [str(CLI), "--home", str(home), *args]


def burn(queue: Queue, sizes: Sizes) -> bench.BurnDown:
    """BURN `true` jobs at priority 10 over the queue's own, `worker start --until-idle`."""
    jobs = sizes.burn_jobs
    with clone(queue) as home:
        path = home / "jobs.jsonl"
        line = json.dumps({"command": "true", "priority": PRIORITY}) + "\n"
        path.write_text(line * jobs)
        bench.run(cli(home, "enqueue", "--file", str(path)))
        options = ["--concurrency", str(sizes.burn_concurrency), "--until-idle", "--quiet"]
        process = bench.watched(
            cli(home, "worker", "start", *options), cwd=home, log=home / "engine.err"
        )
        after = {**queue.counts, "completed": queue.counts["completed"] + jobs}
        check_counts(home, after, "after the burn-down")
        span = bench.scalar(
            home,
            "SELECT max(finished_at) - min(started_at) FROM attempts "
            f"WHERE engine != '{PREFILL_ENGINE}'",
        )
    return bench.BurnDown(jobs, process.wall, span, process.peak_rss)


def store_rate(queue: Queue, sizes: Sizes) -> float:
    """Claim + finish jobs/s through the store alone (bench_queues.drain), in a fresh process."""
    with clone(queue) as home:
        argv = [
            bench.PYTHON,
            "-c",
            STORE_LOOP,
            str(home),
            str(sizes.store_jobs),
            str(sizes.store_warmup),
            str(sizes.burn_concurrency),
            str(PRIORITY),
        ]
        rate = float(bench.run(argv, cwd=bench.ROOT / "scripts"))
        total = sizes.store_jobs + sizes.store_warmup
        after = {**queue.counts, "completed": queue.counts["completed"] + total}
        check_counts(home, after, "after the store's claim + finish")
    return rate


STORE_LOOP = """
import asyncio, sys, time
from pathlib import Path
from bench_queues import drain
from queuectl.models import JobSpec
from queuectl.store import open_store

async def main(home, jobs, warmup, concurrency, priority):
    store = await open_store(home, durable=False)  # as the engine opens it
    try:
        specs = [JobSpec(command="true", cwd="/", priority=priority)] * (jobs + warmup)
        await store.enqueue(specs)
        assert await drain(store, warmup, concurrency) == warmup
        start = time.perf_counter()
        done = await drain(store, jobs, concurrency)
        took = time.perf_counter() - start
        assert done == jobs, f"claimed {done} of {jobs}"
        print(done / took)
    finally:
        await store.close()

asyncio.run(main(Path(sys.argv[1]), *map(int, sys.argv[2:])))
"""


def cli_times(home: Path, runs: int, commands: dict[str, list[str]]) -> dict[str, float]:
    """Median seconds of each command, run `runs` times (interleaved) as separate processes."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            times[name].append(bench.wall_time(cli(home, *args)))
    return {name: statistics.median(found) for name, found in times.items()}


def web_times(home: Path, repeat: int) -> dict[str, float]:
    """Median seconds of each page of a real `queuectl web` on the queue, after a warm-up."""
    from bench_web import fetch, serve

    process, port = serve(home)
    try:
        times: dict[str, float] = {}
        for name, path in PAGES:
            fetch(port, path)  # warm-up: templates compiled, the file's pages cached
            found = []
            for _ in range(repeat):
                status, took = fetch(port, path)
                if status != 200:
                    raise BenchError(f"GET {path}: HTTP {status}")
                found.append(took)
            times[name] = statistics.median(found)
        return times
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class Listed:
    wall: float
    peak_rss: float  # MiB
    rows: int


def list_json(home: Path, limit: int) -> Listed:
    """`list --json --limit N`: its output read through a pipe and its rows counted, its peak
    RSS watched as bench.watched does."""
    argv = cli(home, "list", "--json", "--limit", str(limit))
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = bench.MemoryWatcher(process.pid)
    watcher.start()
    lines = 0
    try:
        assert process.stdout is not None
        while chunk := process.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
        stderr = process.stderr.read() if process.stderr else b""
        process.wait(bench.PROCESS_TIMEOUT)
    finally:
        wall = time.perf_counter() - start
        watcher.done.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    watcher.join()
    if process.returncode != 0:
        raise BenchError(f"`{' '.join(argv[1:])}` exited {process.returncode}: {stderr[-500:]!r}")
    return Listed(wall, watcher.peak_kib / 1024, max(lines - 2, 0))  # less "[" and "]"


def memory_burn(queue: Queue, sizes: Sizes) -> bench.BurnDown:
    """MEMORY_JOBS `sleep` jobs at c=MEMORY_CONCURRENCY over the queue's pending ones."""
    jobs, command = sizes.memory_jobs, f"sleep {sizes.memory_sleep:g}"
    with clone(queue) as home:
        path = home / "jobs.jsonl"
        path.write_text((json.dumps({"command": command, "priority": PRIORITY}) + "\n") * jobs)
        bench.run(cli(home, "enqueue", "--file", str(path)))
        options = ["--concurrency", str(sizes.memory_concurrency), "--until-idle", "--quiet"]
        process = bench.watched(
            cli(home, "worker", "start", *options), cwd=home, log=home / "engine.err"
        )
        after = {**queue.counts, "completed": queue.counts.get("completed", 0) + jobs}
        check_counts(home, after, "after the memory burn-down")
    return bench.BurnDown(jobs, process.wall, process.wall, process.peak_rss)


# --- cases ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure on the big queue, on its baseline, and their ratio."""

    label: str
    big: Metric
    small: Metric | None = None
    ratio: Metric | None = None


def pair(
    case: str,
    label: str,
    unit: str,
    big: list[float],
    small: list[float],
    *,
    rate: bool = False,
    ratio_target: Target | None = FLAT,
    big_target: Target | None = None,
    small_name: str = "small",
) -> Row:
    """The Metrics of one Row; the ratio is the slowdown (big/small for a time, small/big for
    a rate), per round."""
    slowdown = bench.ratios(small, big) if rate else bench.ratios(big, small)
    what = "small/big" if rate else "big/small"
    return Row(
        label,
        Metric(case, f"{label}, big queue", unit, big, big_target),
        Metric(case, f"{label}, {small_name} queue", unit, small),
        Metric(case, f"{label}, slowdown ({what})", "x", slowdown, ratio_target),
    )


def progress(case: str, round_: int, sizes: Sizes, text: str) -> None:
    console.print(f"  {case} round {round_ + 1}/{sizes.runs}: {text}")


def case_claim(queues: Queues, sizes: Sizes) -> list[Row]:
    big, small = queues.get("big"), queues.get("small")
    burns: dict[str, list[bench.BurnDown]] = {"big": [], "small": []}
    rates: dict[str, list[float]] = {"big": [], "small": []}
    for r in range(sizes.runs):
        b, s = bench.in_turn(
            r, functools.partial(burn, big, sizes), functools.partial(burn, small, sizes)
        )
        burns["big"].append(b)
        burns["small"].append(s)
        sb, ss = bench.in_turn(
            r,
            functools.partial(store_rate, big, sizes),
            functools.partial(store_rate, small, sizes),
        )
        rates["big"].append(sb)
        rates["small"].append(ss)
        progress(
            "claim",
            r,
            sizes,
            f"burn-down {b.rate:.0f} / {s.rate:.0f} jobs/s, "
            f"store {sb:.0f} / {ss:.0f} jobs/s (big / small)",
        )
    label = f"burn-down {sizes.burn_jobs} × true c={sizes.burn_concurrency}"
    return [
        pair(
            "claim",
            f"{label}, process wall",
            "jobs/s",
            [b.rate for b in burns["big"]],
            [b.rate for b in burns["small"]],
            rate=True,
        ),
        pair(
            "claim",
            f"{label}, engine only",
            "jobs/s",
            [b.inner_rate for b in burns["big"]],
            [b.inner_rate for b in burns["small"]],
            rate=True,
            ratio_target=None,
        ),
        pair(
            "claim",
            f"store claim + finish, {sizes.store_jobs} jobs, batches of {sizes.burn_concurrency}",
            "jobs/s",
            rates["big"],
            rates["small"],
            rate=True,
        ),
    ]


def case_cli(queues: Queues, sizes: Sizes) -> list[Row]:
    big, small = queues.get("big"), queues.get("small")
    commands = {
        queue.home: {"status": ["status"], "list": ["list"], "show": ["show", queue.show_id]}
        for queue in (big, small)
    }
    found: dict[str, dict[str, list[float]]] = {"big": {}, "small": {}}
    for r in range(sizes.runs):
        b, s = bench.in_turn(
            r,
            *(
                functools.partial(cli_times, q.home, sizes.cli_runs, commands[q.home])
                for q in (big, small)
            ),
        )
        for side, times in (("big", b), ("small", s)):
            for name, seconds in times.items():
                found[side].setdefault(name, []).append(seconds * 1000)
        progress(
            "cli",
            r,
            sizes,
            ", ".join(f"{name} {b[name] * 1000:.0f} / {s[name] * 1000:.0f} ms" for name in b),
        )
    each = f"median of {sizes.cli_runs}"
    names = {"status": "status", "list": "list (first page)", "show": "show ID"}
    return [
        pair(
            "cli",
            f"queuectl {names[name]} ({each})",
            "ms",
            found["big"][name],
            found["small"][name],
        )
        for name in names
    ]


def case_web(queues: Queues, sizes: Sizes) -> list[Row]:
    big, small = queues.get("big"), queues.get("small")
    found: dict[str, dict[str, list[float]]] = {"big": {}, "small": {}}
    for r in range(sizes.runs):
        b, s = bench.in_turn(
            r, *(functools.partial(web_times, q.home, sizes.web_repeat) for q in (big, small))
        )
        for side, times in (("big", b), ("small", s)):
            for name, seconds in times.items():
                found[side].setdefault(name, []).append(seconds * 1000)
        progress(
            "web",
            r,
            sizes,
            ", ".join(f"{name} {b[name] * 1000:.1f} / {s[name] * 1000:.1f} ms" for name in b),
        )
    each = f"median of {sizes.web_repeat}"
    return [
        pair(
            "web",
            f"web {name if name == path else f'{name} {path}'} ({each})",
            "ms",
            found["big"][name],
            found["small"][name],
        )
        for name, path in PAGES
    ]


def case_memory(queues: Queues, sizes: Sizes) -> list[Row]:
    queued, empty = queues.get("queued"), queues.get("empty")
    big, small = queues.get("big"), queues.get("small")
    engines: dict[str, list[bench.BurnDown]] = {"big": [], "small": []}
    lists: dict[str, list[Listed]] = {"big": [], "small": []}
    limit = min(sizes.list_rows, big.jobs)
    for r in range(sizes.runs):
        b, s = bench.in_turn(
            r,
            functools.partial(memory_burn, queued, sizes),
            functools.partial(memory_burn, empty, sizes),
        )
        engines["big"].append(b)
        engines["small"].append(s)
        text = f"engine {b.peak_rss:.1f} / {s.peak_rss:.1f} MiB ({b.wall:.1f} / {s.wall:.1f} s)"
        if r < sizes.list_runs:
            lb, ls = bench.in_turn(
                r,
                functools.partial(list_json, big.home, limit),
                functools.partial(list_json, small.home, limit),
            )
            if lb.rows != limit or ls.rows != small.jobs:
                raise BenchError(
                    f"list --json printed {lb.rows:,} and {ls.rows:,} rows, expected "
                    f"{limit:,} and {small.jobs:,}"
                )
            lists["big"].append(lb)
            lists["small"].append(ls)
            text += (
                f", list --json {lb.peak_rss:.1f} / {ls.peak_rss:.1f} MiB "
                f"({lb.wall:.1f} s for {lb.rows:,} rows)"
            )
        progress("memory", r, sizes, text)
    runs = f"c={sizes.memory_concurrency}, {sizes.memory_jobs} × sleep {sizes.memory_sleep:g}"
    queued_jobs = f"{queued.jobs / 1e6:g}M" if queued.jobs >= 1e6 else f"{queued.jobs:,}"
    ideal = -(-sizes.memory_jobs // sizes.memory_concurrency) * sizes.memory_sleep
    rows = [
        pair(
            "memory",
            f"engine RSS {runs}, {queued_jobs} queued",
            "MiB",
            [b.peak_rss for b in engines["big"]],
            [b.peak_rss for b in engines["small"]],
            ratio_target=None,
            big_target=Target("<=", 80.0),
            small_name="empty",
        ),
        pair(
            "memory",
            f"engine wall {runs} (ideal {ideal:g} s)",
            "s",
            [b.wall for b in engines["big"]],
            [b.wall for b in engines["small"]],
            ratio_target=None,
            small_name="empty",
        ),
    ]
    if lists["big"]:
        rows += [
            pair(
                "memory",
                f"list --json RSS, {limit:,} rows (small: {small.jobs:,})",
                "MiB",
                [x.peak_rss for x in lists["big"]],
                [x.peak_rss for x in lists["small"]],
                ratio_target=None,
                big_target=Target("<=", 100.0),
            ),
            Row(
                f"list --json {limit:,} rows, rate",
                Metric(
                    "memory",
                    f"list --json {limit:,} rows, rate, big queue",
                    "rows/s",
                    [x.rows / x.wall for x in lists["big"]],
                    note=f"{statistics.median(x.wall for x in lists['big']):.1f} s",
                ),
            ),
        ]
    return rows


CASES: dict[str, Callable[[Queues, Sizes], list[Row]]] = {
    "claim": case_claim,
    "cli": case_cli,
    "web": case_web,
    "memory": case_memory,
}


# --- report -----------------------------------------------------------------------------------


def spread(metric: Metric | None) -> str:
    if metric is None:
        return ""
    low, high = min(metric.values), max(metric.values)
    if len(metric.values) == 1:
        return bench.number(metric.median)
    return f"{bench.number(metric.median)} ({bench.number(low)}-{bench.number(high)})"


def table(rows: Sequence[Row], info: dict[str, Any], sizes: Sizes) -> Table:
    title = (
        f"queuectl at scale: big {sizes.finished:,} finished + {sizes.pending:,} pending, small "
        f"{sizes.small_finished:,} + {sizes.small_pending:,}; {info['cores']} cores, Python "
        f"{info['python']}, SQLite {info['sqlite']}, {info['date']}, {info['runs']} "
        f"run{'s' if info['runs'] != 1 else ''}" + (" (quick)" if info["quick"] else "")
    )
    caption = "median (min-max) of the rounds; slowdown: big/small per round (a rate: small/big)"
    out = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in ("case", "figure", "big queue", "small queue", "unit", "slowdown", "target"):
        out.add_column(
            column, justify="right" if "queue" in column or column == "slowdown" else "left"
        )
    out.add_column("")
    for row in rows:
        judged = row.ratio if row.ratio and row.ratio.target else row.big
        style = {"PASS": "green", "MISS": "red"}.get(judged.result, "")
        out.add_row(
            row.big.case,
            row.label,
            spread(row.big),
            spread(row.small),
            row.big.unit,
            spread(row.ratio),
            str(judged.target or ""),
            f"[{style}]{judged.result}[/]" if style else row.big.note,
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return bench.parse_cases(bench.case_parser(__doc__, CASES, DEFAULT_OUT), argv, CASES)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = replace(sizes, runs=args.runs)
    chosen = args.only.split(",") if args.only else list(CASES)
    bench.run([bench.PYTHON, "-m", "compileall", "-q", str(bench.ROOT / "queuectl")])
    info = bench.header(sizes.runs, args.quick)
    info["sizes"] = sizes.__dict__
    rows: list[Row] = []
    errors: dict[str, str] = {}
    began = time.monotonic()
    queues = Queues(sizes)
    try:
        for name in chosen:
            console.print(f"[bold]{name}[/] ({time.monotonic() - began:.0f} s elapsed)")
            try:
                rows += CASES[name](queues, sizes)
            except (BenchError, subprocess.SubprocessError) as exc:
                errors[name] = str(exc)
                console.print(f"[red]  {name} failed: {exc}[/]")
    finally:
        queues.close()
    info["seconds"] = round(time.monotonic() - began, 1)
    metrics = [m for row in rows for m in (row.big, row.small, row.ratio) if m is not None]
    bench.write_results(args.out, info, metrics, errors)
    width = None if sys.stdout.isatty() else 150
    Console(highlight=False, width=width).print(table(rows, info, sizes))
    missed = [m.name for m in metrics if m.result == "MISS"]
    console.print(
        f"{sum(1 for m in metrics if m.target)} targets, {len(missed)} missed"
        + (": " + "; ".join(missed) if missed else "")
    )
    console.print(f"{len(metrics)} figures in {info['seconds']:.0f} s; written to {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
