"""`make bench-peers`: the same burn-down of `true` commands through queuectl, its peers and the
bare asyncio loop, at several concurrencies (issue 14).

- queuectl: `worker start --until-idle`, as in scripts/bench.py case 1;
- the bare loop: scripts/bench.py's BASELINE, an asyncio loop that only starts the commands
  (bench.baseline): what any runner written in Python could do at best;
- huey: a SqliteHuey consumer with thread workers, each task running its command with
  subprocess.run(shell=True) and capturing its output (as queuectl keeps it);
- task-spooler (`tsp`, Debian package task-spooler) with `tsp -S N`.

Every runner gets the same jobs, enqueued before the clock starts (but for tsp, whose server
holds at most 1000 queued jobs: see tsp_drain). Two figures each: from the start of the process
that runs the jobs (interpreter start-up included) to the last job's end, and the runner's own
time (queuectl: first start to last finish in its database; the bare loop and huey: their own
clock from the start of the loop or of Consumer.start(); tsp's server is already running, so
both are the same). Each round runs every runner once at one concurrency, starting with a
different one each round (bench.in_turn), and queuectl's ratio to each other runner is taken
per round before the median. Targets (issue 14): queuectl >= 0.9 of the bare loop at c=20, and
ahead of huey and task-spooler (ratio >= 1, process wall) at every concurrency.

    .venv/bin/python scripts/bench_peers.py [--runs 3] [--jobs 2000] [--concurrency 1,20,64]
        [--jobs-c1 N]    # fewer jobs at c=1 (for every runner alike)
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console
from rich.table import Table

import bench  # scripts/ is not a package: found through the sys.path entry above
from bench import PYTHON, BenchError, Metric, Target, console, fresh_home, run

DEFAULT_OUT = bench.ROOT / "bench" / "peers.json"
TSP_POLL = 0.05  # seconds between two looks at `tsp -l`
TSP_PREQUEUE = 900  # jobs queued before the clock starts (see tsp_drain)

HUEY_APP = """
import subprocess

from huey import SqliteHuey

huey = SqliteHuey("bench", filename={db!r})


@huey.task()
def shell(command):
    return subprocess.run(command, shell=True, capture_output=True).returncode
"""

HUEY_ENQUEUE = """
import sys
sys.path.insert(0, sys.argv[1])
from hueyapp import shell
for _ in range(int(sys.argv[2])):
    shell(sys.argv[3])
"""

HUEY_CONSUMER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from huey.consumer import Consumer
from hueyapp import huey
jobs, workers = int(sys.argv[2]), int(sys.argv[3])
consumer = Consumer(huey, workers=workers, worker_type="thread")
start = time.perf_counter()
consumer.start()
while huey.result_count() < jobs:
    time.sleep(0.005)
print(time.perf_counter() - start, flush=True)
consumer.stop(graceful=True)
"""


@dataclass(frozen=True)
class Drain:
    jobs: int
    wall: float  # seconds, start-up of the runner's process included
    inner: float  # seconds, the runner's own clock

    @property
    def rate(self) -> float:
        return self.jobs / self.wall

    @property
    def inner_rate(self) -> float:
        return self.jobs / self.inner


# --- the peers --------------------------------------------------------------------------------


def queuectl_drain(jobs: int, concurrency: int) -> Drain:
    result = bench.burn_down(jobs, concurrency)
    return Drain(jobs, result.wall, result.span)


def huey_drain(jobs: int, concurrency: int) -> Drain:
    """Enqueue `jobs` tasks (untimed), then time a consumer until every result is stored."""
    with fresh_home() as folder:
        (folder / "hueyapp.py").write_text(HUEY_APP.format(db=str(folder / "huey.db")))
        run([PYTHON, "-c", HUEY_ENQUEUE, str(folder), str(jobs), "true"], cwd=folder)
        argv = [PYTHON, "-c", HUEY_CONSUMER, str(folder), str(jobs), str(concurrency)]
        start = time.perf_counter()
        with subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, text=True) as consumer:
            assert consumer.stdout is not None
            line = consumer.stdout.readline()  # printed once every result is in
            wall = time.perf_counter() - start
            consumer.wait(timeout=bench.PROCESS_TIMEOUT)
        if not line.strip():
            raise BenchError(f"the huey consumer exited {consumer.returncode} before the end")
    return Drain(jobs, wall, float(line))


def tsp_drain(jobs: int, concurrency: int) -> Drain:
    """Queue jobs behind a gate job on one slot (untimed), then open N slots and the gate and
    time until `tsp -l` lists every job as finished.

    tsp keeps one client process, holding a connection to its server, per queued job, and its
    server takes at most 1000 connections: at most TSP_PREQUEUE jobs wait before the clock
    starts, and the rest are submitted while it runs (those `tsp` calls are timed; each blocks
    while the server is full)."""
    with fresh_home() as folder:
        env = {**os.environ, "TS_SOCKET": str(folder / "ts.sock"), "TMPDIR": str(folder),
               "TS_MAXFINISHED": str(jobs + 10)}  # fmt: skip
        gate = folder / "go"

        def tsp(*args: str) -> str:
            return subprocess.run(
                ["tsp", *args], env=env, cwd=folder, capture_output=True, text=True, check=True,
                timeout=bench.PROCESS_TIMEOUT,
            ).stdout  # fmt: skip

        tsp("-S", "1")
        try:
            tsp("sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done")
            queued = min(jobs, TSP_PREQUEUE)
            for _ in range(queued):
                tsp("true")
            start = time.perf_counter()
            tsp("-S", str(concurrency))
            gate.touch()
            for _ in range(jobs - queued):
                tsp("true")
            while tsp("-l").count(" finished ") < jobs + 1:
                time.sleep(TSP_POLL)
            wall = time.perf_counter() - start
        finally:
            gate.touch()
            subprocess.run(["tsp", "-K"], env=env, capture_output=True, check=False, timeout=30)
    return Drain(jobs, wall, wall)


def baseline_drain(jobs: int, concurrency: int) -> Drain:
    result = bench.baseline(jobs, concurrency)
    return Drain(jobs, result.wall, result.span)


QUEUECTL = "queuectl"
BARE = "bare asyncio loop"
HUEY = "huey (SqliteHuey, threads)"
TSP = "task-spooler (tsp)"

#: queuectl/runner, process wall: issue 14's targets (queuectl >= 0.9 of the bare loop at c=20,
#: ahead of huey and task-spooler at every concurrency)
PEER_TARGET = Target(">=", 1.0)
BARE_TARGETS = {20: Target(">=", 0.9)}


def target_for(runner: str, concurrency: int) -> Target | None:
    if runner == BARE:
        return BARE_TARGETS.get(concurrency)
    return PEER_TARGET if runner != QUEUECTL else None


@dataclass(frozen=True)
class Peer:
    name: str
    drain: Callable[[int, int], Drain]
    missing: str | None  # why it cannot run here, or None


def peers() -> list[Peer]:
    huey_missing = (
        "huey is not installed; install it with `.venv/bin/pip install -e '.[bench]'`"
        if importlib.util.find_spec("huey") is None
        else None
    )
    tsp_missing = (
        "task-spooler is not installed (`apt-get install task-spooler` gives `tsp`)"
        if shutil.which("tsp") is None
        else None
    )
    return [
        Peer(QUEUECTL, queuectl_drain, None),
        Peer(BARE, baseline_drain, None),
        Peer(HUEY, huey_drain, huey_missing),
        Peer(TSP, tsp_drain, tsp_missing),
    ]


# --- main -------------------------------------------------------------------------------------

WALL, OWN = "process wall", "own clock"
RATIO_WALL, RATIO_OWN = "queuectl/runner, process wall", "queuectl/runner, own clock"


def measure(chosen: Sequence[Peer], runs: int, jobs: int, concurrency: int) -> list[Metric]:
    """Round-robin at one concurrency: each round runs every runner once, so they share the
    machine's noise; each Metric's case is `c=N`, its name `RUNNER: FIGURE`."""
    results: dict[str, list[Drain]] = {peer.name: [] for peer in chosen}
    for r in range(runs):
        steps = [functools.partial(peer.drain, jobs, concurrency) for peer in chosen]
        for peer, drain in zip(chosen, bench.in_turn(r, *steps), strict=True):
            results[peer.name].append(drain)
        figures = ", ".join(f"{name} {found[-1].rate:.0f}" for name, found in results.items())
        console.print(f"  c={concurrency} round {r + 1}/{runs}, {jobs} jobs (jobs/s): {figures}")
    case = f"c={concurrency}"
    ours = results.get(QUEUECTL, [])
    metrics: list[Metric] = []
    for name, found in results.items():
        rates = [d.rate for d in found]
        inner = [d.inner_rate for d in found]
        metrics += [
            Metric(case, f"{name}: {WALL}", "jobs/s", rates, note=f"{jobs} jobs"),
            Metric(case, f"{name}: {OWN}", "jobs/s", inner, note=f"{jobs} jobs"),
        ]
        if ours and name != QUEUECTL:
            wall_ratio = bench.ratios([d.rate for d in ours], rates)
            own_ratio = bench.ratios([d.inner_rate for d in ours], inner)
            target = target_for(name, concurrency)
            metrics += [
                Metric(case, f"{name}: {RATIO_WALL}", "x", wall_ratio, target),
                Metric(case, f"{name}: {RATIO_OWN}", "x", own_ratio),
            ]
    return metrics


def side_by_side(metrics: Sequence[Metric], info: dict[str, Any], label: str) -> Table:
    """One row per concurrency and runner: its figures as median (min-max)."""
    title = (
        f"{label}: {info['cores']} cores, Python {info['python']}, kernel {info['kernel']}, "
        f"{info['date']}, {info['runs']} run{'s' if info['runs'] != 1 else ''}"
    )
    caption = "median (min-max); the ratios are taken per round, then their median"
    out = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    out.add_column("c", justify="right")
    out.add_column("runner")
    out.add_column("jobs", justify="right")
    for name in (f"{WALL} jobs/s", f"{OWN} jobs/s", "queuectl/it, wall", "queuectl/it, own"):
        out.add_column(name, justify="right")
    out.add_column("target")
    out.add_column("")
    cases = dict.fromkeys(m.case for m in metrics)
    for case in cases:
        found = {m.name: m for m in metrics if m.case == case}
        runners = dict.fromkeys(name.split(": ")[0] for name in found)
        for runner in runners:
            wall, own = found[f"{runner}: {WALL}"], found.get(f"{runner}: {OWN}")
            ratio, ratio_own = (
                found.get(f"{runner}: {RATIO_WALL}"),
                found.get(f"{runner}: {RATIO_OWN}"),
            )
            style = {"PASS": "green", "MISS": "red"}.get(ratio.result if ratio else "", "")
            out.add_row(
                case.removeprefix("c="),
                runner,
                wall.note.removesuffix(" jobs"),
                spread(wall),
                spread(own) if own else "",
                spread(ratio) if ratio else "",
                spread(ratio_own) if ratio_own else "",
                str(ratio.target or "") if ratio else "",
                f"[{style}]{ratio.result}[/]" if ratio and style else "",
                end_section=runner == list(runners)[-1],
            )
    return out


def spread(metric: Metric) -> str:
    low, high = min(metric.values), max(metric.values)
    return f"{bench.number(metric.median)} ({bench.number(low)}-{bench.number(high)})"


def concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per drain (default 2000)")
    parser.add_argument(
        "--jobs-c1", type=int, help="jobs per drain at c=1, for every runner (default: --jobs)"
    )
    parser.add_argument(
        "--concurrency",
        type=concurrencies,
        default=[1, 20, 64],
        help="comma-separated worker counts (default 1,20,64)",
    )
    parser.add_argument("--only", help="comma-separated runners (default: all that are installed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON results file")
    args = parser.parse_args(argv)
    if min(args.runs, args.jobs, args.jobs_c1 or 1) < 1:
        parser.error("--runs, --jobs and --jobs-c1 must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    chosen = []
    for peer in peers():
        if wanted is not None and not (wanted & {peer.name, peer.name.split()[0]}):
            continue
        if peer.missing:
            console.print(f"[yellow]skipping {peer.name}: {peer.missing}[/]")
        else:
            chosen.append(peer)
    info = bench.header(args.runs, quick=False)
    info |= {"jobs": args.jobs, "jobs_c1": args.jobs_c1 or args.jobs}
    info["concurrency"] = args.concurrency
    began = time.monotonic()
    errors: dict[str, str] = {}
    metrics: list[Metric] = []
    for concurrency in args.concurrency:
        jobs = args.jobs_c1 if concurrency == 1 and args.jobs_c1 else args.jobs
        console.print(f"[bold]c={concurrency}[/] ({time.monotonic() - began:.0f} s elapsed)")
        try:
            metrics += measure(chosen, args.runs, jobs, concurrency)
        except (BenchError, subprocess.SubprocessError) as exc:
            errors[f"c={concurrency}"] = str(exc)
            console.print(f"[red]c={concurrency} failed: {exc}[/]")
    info["seconds"] = round(time.monotonic() - began, 1)
    bench.write_results(args.out, info, metrics, errors)
    width = None if sys.stdout.isatty() else 150
    label = f"{args.jobs} × true"
    if args.jobs_c1 and args.jobs_c1 != args.jobs and 1 in args.concurrency:
        label += f" ({args.jobs_c1} at c=1, for every runner)"
    Console(highlight=False, width=width).print(side_by_side(metrics, info, label))
    missed = [f"{m.case} {m.name}" for m in metrics if m.result == "MISS"]
    console.print(
        f"{sum(1 for m in metrics if m.target)} targets, {len(missed)} missed"
        + (": " + "; ".join(missed) if missed else "")
    )
    console.print(f"{info['seconds']:.0f} s; written to {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
