"""`make bench-pg`: queuectl on PostgreSQL, each figure next to a baseline measured in the same run.

- burn: 2,000 `true` at c=20 through `worker start --until-idle` on PostgreSQL and on SQLite,
  and through 4 engine processes sharing the PostgreSQL queue (c=5 and c=20 each) against 1;
- store: the store's own throughput without processes (scripts/bench_pg_store.py): claim and
  finish of no-op jobs as the engine batches them, in 1 and 4 OS processes, against pgqueuer
  (its enqueue, a no-op entrypoint, drain mode) on the same server in the same round;
- wakeup: an idle engine, jobs enqueued one by one from another process (this one): from the
  enqueue's commit to the job's command running (`date +%s.%N`), p50 and p95.

The server is PostgreSQL at --pg (default $QUEUECTL_BENCH_PG, else
postgresql://postgres@127.0.0.1:5432/postgres, trust auth); every queue is a fresh database
named queuectl_bench_PID_N, dropped afterwards, and any left by an interrupted run of this
process are dropped at its exit. Every case pairs its figures per round (the machine is shared
and noisy) and rotates which system goes first. Results: a table on stdout, bench/pg.json
(figures), bench/pg-raw.json (every drain and wake-up sample), bench/pg.txt (the table).

    .venv/bin/python scripts/bench_pg.py                 # the full run (5 rounds, ~3.5 minutes)
    .venv/bin/python scripts/bench_pg.py --only store    # one case (make bench-peers)
    .venv/bin/python scripts/bench_pg.py --quick         # smoke run: small sizes, 1 round
    .venv/bin/python scripts/bench_pg.py --only store --profile   # py-spy of the 1-process drains
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pg_lib as pg
from rich.console import Console

import bench  # scripts/ is not a package: found through the sys.path entry above
from bench import PYTHON, BenchError, Metric, Target, console, fresh_home, queuectl

DEFAULT_OUT = bench.ROOT / "bench" / "pg.json"
STORE_CHILD = Path(__file__).resolve().parent / "bench_pg_store.py"
CONCURRENCY = 20
PGQUEUER_BATCH = 20  # the same bound per claim as queuectl's at c=20 (pgqueuer's default: 10)
WAKE_WARMUP = 5  # jobs run before the wake-up samples (connections, prepared statements)


@dataclass(frozen=True)
class Sizes:
    runs: int = 5  # the machine is noisy: a median of 5 rounds, the run still under 5 minutes
    burn_jobs: int = 2000
    store_jobs: int = 20_000
    wake_jobs: int = 200


FULL = Sizes()
QUICK = Sizes(runs=1, burn_jobs=200, store_jobs=2000, wake_jobs=20)


# --- burn-down: real engines ------------------------------------------------------------------


def pg_burn(server: pg.Server, jobs: int, engines: int, concurrency: int) -> bench.BurnDown:
    """Enqueue `jobs` × true (untimed), then time `engines` engine processes, each with a home
    of its own, from the start of the first to the exit of the last."""
    with server.database() as url, fresh_home() as home:
        pg.run(pg.enqueue_commands(url, ["true"] * jobs, str(home)))
        options = ["--concurrency", str(concurrency), "--until-idle", "--quiet"]
        argvs = [
            queuectl(home / f"e{i}", "--db", url, "worker", "start", *options)
            for i in range(engines)
        ]
        wall = pg.run_all(argvs, cwd=home)
        done = pg.run(pg.burn_result(url))
    if done.completed != jobs or done.attempts != jobs:
        raise BenchError(
            f"{engines} engine(s) ended with {done.completed} of {jobs} jobs completed in "
            f"{done.attempts} attempts"
        )
    return bench.BurnDown(jobs, wall, done.span)


def case_burn(server: pg.Server, sizes: Sizes, raw: dict[str, Any]) -> list[Metric]:
    layouts = {"sqlite": None, "pg 1×c20": (1, 20), "pg 4×c5": (4, 5), "pg 4×c20": (4, 20)}
    results: dict[str, list[bench.BurnDown]] = {name: [] for name in layouts}
    for r in range(sizes.runs):
        steps = [
            functools.partial(bench.burn_down, sizes.burn_jobs, CONCURRENCY)
            if layout is None
            else functools.partial(pg_burn, server, sizes.burn_jobs, *layout)
            for layout in layouts.values()
        ]
        for name, result in zip(layouts, bench.in_turn(r, *steps), strict=True):
            results[name].append(result)
        figures = ", ".join(f"{name} {found[-1].rate:.0f}" for name, found in results.items())
        bench.progress("burn", r, bench_sizes(sizes), f"jobs/s: {figures}")
    raw["burn"] = {name: [asdict(b) for b in found] for name, found in results.items()}
    rate = {name: [b.rate for b in found] for name, found in results.items()}
    inner = {name: [b.inner_rate for b in found] for name, found in results.items()}
    n = f"{sizes.burn_jobs:,} × true"
    return [
        Metric("P1", f"SQLite, 1 engine c=20, {n}, process wall", "jobs/s", rate["sqlite"]),
        Metric("P1", f"PostgreSQL, 1 engine c=20, {n}, process wall", "jobs/s", rate["pg 1×c20"]),
        Metric("P1", "ratio PostgreSQL/SQLite, process wall", "x",
               bench.ratios(rate["pg 1×c20"], rate["sqlite"])),
        Metric("P1", "ratio PostgreSQL/SQLite, engine only (first start→last finish)", "x",
               bench.ratios(inner["pg 1×c20"], inner["sqlite"])),
        Metric("P1", "PostgreSQL, 4 engines c=5 each, process wall", "jobs/s", rate["pg 4×c5"]),
        Metric("P1", "ratio 4 engines c=5 / 1 engine c=20", "x",
               bench.ratios(rate["pg 4×c5"], rate["pg 1×c20"])),
        Metric("P1", "PostgreSQL, 4 engines c=20 each, process wall", "jobs/s", rate["pg 4×c20"]),
        Metric("P1", "ratio 4 engines c=20 / 1 engine c=20", "x",
               bench.ratios(rate["pg 4×c20"], rate["pg 1×c20"])),
    ]  # fmt: skip


# --- store throughput: no processes -----------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    system: str
    processes: int
    jobs: int
    seconds: float  # first process's start → last process's end, each on its own clock
    per_process: list[dict[str, Any]]

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    @property
    def cpu_per_job(self) -> float:
        """Microseconds of the drainers' own CPU (not the server's) per job."""
        return sum(float(r["cpu"]) for r in self.per_process) / self.jobs * 1e6


def store_drain(
    server: pg.Server, system: str, processes: int, jobs: int, profile: Path | None = None
) -> Drain:
    """Fill a fresh database with `jobs` no-op jobs (untimed), start `processes` drainers,
    and time them from `go` to the last one's end."""
    with server.database() as url:
        if system == "queuectl":
            pg.run(pg.enqueue_commands(url, ["true"] * jobs, "/tmp"))
            options = ["--concurrency", str(CONCURRENCY)]
        else:
            pg.run(pg.pgqueuer_fill(url, jobs))
            options = ["--batch-size", str(PGQUEUER_BATCH)]
        argv = [PYTHON, str(STORE_CHILD), system, url, *options]
        results = pg.run_drainers(argv, processes, profile)
        left = pg.run(pg.undone(url, system))
    done = sum(int(r["jobs"]) for r in results)
    problems = [e for r in results for e in r["errors"]] + [
        f"{r['refused']} finishes refused" for r in results if r["refused"]
    ]
    if done != jobs or left or problems:
        raise BenchError(
            f"{system} × {processes}: {done} of {jobs} jobs drained, {left} left; {problems[:3]}"
        )
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    return Drain(system, processes, jobs, seconds, results)


def case_store(server: pg.Server, sizes: Sizes, raw: dict[str, Any], profile: bool) -> list[Metric]:
    if importlib.util.find_spec("pgqueuer") is None:
        raise BenchError("pgqueuer is not installed: `.venv/bin/pip install -e '.[bench]'`")
    layouts = [(s, p) for p in (1, 4) for s in ("queuectl", "pgqueuer")]
    results: dict[tuple[str, int], list[Drain]] = {layout: [] for layout in layouts}
    for r in range(sizes.runs):
        steps = [functools.partial(store_drain, server, s, p, sizes.store_jobs) for s, p in layouts]
        for layout, drain in zip(layouts, bench.in_turn(r, *steps), strict=True):
            results[layout].append(drain)
        figures = ", ".join(f"{s}×{p} {d[-1].rate:,.0f}" for (s, p), d in results.items())
        bench.progress("store", r, bench_sizes(sizes), f"jobs/s: {figures}")
    raw["store"] = {f"{s} × {p}": [asdict(d) for d in found] for (s, p), found in results.items()}
    if profile:
        for system in ("queuectl", "pgqueuer"):
            out = DEFAULT_OUT.parent / f"pg-profile-{system}.txt"
            try:  # not a figure: a failure here keeps the case's figures
                store_drain(server, system, 1, sizes.store_jobs, profile=out)
            except BenchError as exc:
                console.print(f"[yellow]  py-spy of {system} failed: {exc}[/]")
            else:
                console.print(f"  py-spy profile of {system} × 1 written to {out}")
    rate = {layout: [d.rate for d in found] for layout, found in results.items()}
    cpu = {layout: [d.cpu_per_job for d in found] for layout, found in results.items()}
    metrics: list[Metric] = []
    n = f"{sizes.store_jobs:,} no-op jobs"
    for p in (1, 4):
        procs = f"{p} process{'es' if p > 1 else ''}"
        metrics += [
            Metric("P2", f"queuectl store, {procs} (c={CONCURRENCY} each), {n}", "jobs/s",
                   rate["queuectl", p]),
            Metric("P2", f"pgqueuer, {procs} (batch {PGQUEUER_BATCH}), {n}", "jobs/s",
                   rate["pgqueuer", p]),
            Metric("P2", f"ratio queuectl/pgqueuer, {procs}", "x",
                   bench.ratios(rate["queuectl", p], rate["pgqueuer", p]), Target(">=", 1.0)),
            Metric("P2", f"queuectl's own CPU per job (not the server's), {procs}", "µs",
                   cpu["queuectl", p]),
            Metric("P2", f"pgqueuer's own CPU per job (not the server's), {procs}", "µs",
                   cpu["pgqueuer", p]),
        ]  # fmt: skip
    return metrics


# --- wake-up ----------------------------------------------------------------------------------


WAKE_COMMIT, WAKE_CALL, WAKE_CLAIM = (
    "commit returned→command ran",
    "enqueue called→command ran",
    "created_at→claimed (server clock)",
)


def case_wakeup(server: pg.Server, sizes: Sizes, raw: dict[str, Any]) -> list[Metric]:
    figures: dict[tuple[str, int], list[float]] = {}
    samples: list[dict[str, list[float]]] = []
    for r in range(sizes.runs):
        latencies = wakeup_round(server, sizes.wake_jobs)
        samples.append(latencies)
        for name, values in latencies.items():
            for pct in (50, 95):
                figures.setdefault((name, pct), []).append(bench.percentile(values, pct) * 1000)
        summary = ", ".join(f"{n} {v[-1]:.1f}" for (n, pct), v in figures.items() if pct == 95)
        bench.progress("wake-up", r, bench_sizes(sizes), f"p95 (ms): {summary}")
    raw["wakeup"] = samples
    return [
        Metric(
            "P3",
            f"wake-up p{pct}, {name} ({sizes.wake_jobs} jobs)",
            "ms",
            values,
            Target("<=", 20.0) if pct == 95 and name == WAKE_COMMIT else None,
        )
        for (name, pct), values in figures.items()
    ]


def wakeup_round(server: pg.Server, jobs: int) -> dict[str, list[float]]:
    """An idle engine (c=4); `jobs` jobs enqueued one at a time, WAKE_GAP apart."""
    with server.database() as url, fresh_home() as home:
        stamps = home / "t"
        stamps.mkdir()
        command = f"date +%s.%N > {stamps}/$QUEUECTL_JOB_ID"
        argv = queuectl(home / "engine", "--db", url, "worker", "start", "-c", "4", "--quiet")
        with pg.background(argv, cwd=home):
            warm = pg.run(pg.enqueue_one_by_one(url, command, str(home), WAKE_WARMUP))
            bench.read_stamps(stamps, set(warm))  # the engine is up and listening
            sent = pg.run(pg.enqueue_one_by_one(url, command, str(home), jobs, bench.WAKE_GAP))
            ran = bench.read_stamps(stamps, set(sent))
        times = pg.run(pg.job_times(url, list(sent)))
    return {
        WAKE_COMMIT: [ran[job_id] - after for job_id, (_, after) in sent.items()],
        WAKE_CALL: [ran[job_id] - before for job_id, (before, _) in sent.items()],
        WAKE_CLAIM: [claimed - created for created, claimed in times.values()],
    }


# --- report -----------------------------------------------------------------------------------

CASES = ("burn", "store", "wakeup")


def bench_sizes(sizes: Sizes) -> bench.Sizes:
    """bench.progress() reads the number of rounds from its own Sizes."""
    return replace(bench.FULL, runs=sizes.runs)


def header(server: pg.Server, runs: int, quick: bool) -> dict[str, Any]:
    info = bench.header(runs, quick)
    info.update(
        cpu=cpu_model(),
        nproc=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        postgresql=pg.run(server.version()),
        server=server.location,
        machine=platform.machine(),
    )
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def title(info: dict[str, Any]) -> str:
    return (
        f"queuectl on PostgreSQL: {info['nproc']} cores ({info['cpu']}), PostgreSQL "
        f"{info['postgresql']}, Python {info['python']}, SQLite {info['sqlite']}, kernel "
        f"{info['kernel']}, {info['date']}, {info['runs']} run{'s' if info['runs'] != 1 else ''}"
        + (" (quick: reduced sizes)" if info["quick"] else "")
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench.case_parser(__doc__, CASES, DEFAULT_OUT, default_runs=5)
    parser.add_argument("--pg", default=pg.DEFAULT_SERVER, help="the server (an admin URL)")
    parser.add_argument(
        "--profile", action="store_true", help="store case: py-spy each system's 1-process drain"
    )
    return bench.parse_cases(parser, argv, CASES)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = replace(sizes, runs=args.runs)
    chosen = args.only.split(",") if args.only else list(CASES)
    # SIGTERM unwinds like Ctrl-C, so that every database and process is cleaned up
    signal.signal(signal.SIGTERM, interrupted)
    server = pg.Server(args.pg)
    try:
        pg.run(server.check())
    except BenchError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    info = header(server, sizes.runs, args.quick)
    runners: dict[str, Callable[[], list[Metric]]] = {
        "burn": lambda: case_burn(server, sizes, raw),
        "store": lambda: case_store(server, sizes, raw, args.profile),
        "wakeup": lambda: case_wakeup(server, sizes, raw),
    }
    metrics: list[Metric] = []
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {}
    began = time.monotonic()
    try:
        for name in chosen:
            console.print(f"[bold]{name}[/] ({time.monotonic() - began:.0f} s elapsed)")
            try:
                metrics += runners[name]()
            except (BenchError, subprocess.TimeoutExpired) as exc:
                errors[name] = str(exc)
                console.print(f"[red]  {name} failed: {exc}[/]")
    finally:
        pg.stop_children()
        pg.run(server.sweep())
    info["seconds"] = round(time.monotonic() - began, 1)
    write(args.out, info, metrics, errors, raw)
    return 1 if errors else 0


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def write(
    out: Path,
    info: dict[str, Any],
    metrics: Sequence[Metric],
    errors: dict[str, str],
    raw: dict[str, Any],
) -> None:
    bench.write_results(out, info, metrics, errors)
    out.with_name(out.stem + "-raw.json").write_text(json.dumps(raw, indent=1) + "\n")
    table = bench.table(metrics, info) if metrics else None
    width = None if sys.stdout.isatty() else 150
    if table is not None:
        table.title = title(info)
        Console(highlight=False, width=width).print(table)
        with open(out.with_suffix(".txt"), "w") as text:
            Console(file=text, highlight=False, width=150).print(table)
    for name, error in errors.items():
        console.print(f"[red]{name} failed: {error}[/]")
    console.print(
        f"{len(metrics)} figures in {info['seconds']:.0f} s; written to {out} (-raw, .txt)"
    )


if __name__ == "__main__":
    sys.exit(main())
