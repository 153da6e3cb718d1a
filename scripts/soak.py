"""`make soak`: run the chaos scenarios many times with random sizes and timings.

    .venv/bin/python scripts/soak.py                # 50 runs of each scenario (~60 min)
    .venv/bin/python scripts/soak.py --runs 5 --seed 7
    .venv/bin/python scripts/soak.py --quick        # 2 runs each, small sizes (~3 min)
    .venv/bin/python scripts/soak.py --only multi-stop --only multi-cut

The scenarios are the ones of the test suite (tests/reliability/chaos/), each run on a fresh
queue (of the --backend, sqlite by default) with its own random seed, derived from --seed, so a
failing run can be repeated:

1. kill -9 of an engine running 20 jobs (random job durations, random delay before the kill,
   sometimes while the claims and spawns are still under way), sometimes of the restarted
   engines too (during their recovery or their re-runs), then a --until-empty engine;
2. an engine SIGKILLing itself at a random step of a job's life (QUEUECTL_FAULT=claim|spawn|
   finish, targeted at one job or not), then a restart without the fault;
3. 4 enqueuer processes adding jobs (enqueue --file in random chunks, plus single enqueues)
   while an engine runs 20 at a time; every --full-every'th run is the full 4 x 2,500;
4. a poison job (QUEUECTL_FAULT=spawn|claim:POISON) with a random max_retries, the engine
   restarted by a supervisor each time it dies;

and, always on PostgreSQL (whatever --backend says), many engines, each with a home of its own
(tests/reliability/chaos/multi.py):

5. multi-drain: 2-4 engines drain 2,000-5,000 jobs (every --full-every'th run 4 x 20,000), each
   executed exactly once;
6. multi-kill9: kill -9 of one of 2-4 engines with jobs running; the others rescue its jobs;
7. multi-stop: SIGSTOP of an engine past its lease, then SIGCONT: its jobs ran again
   elsewhere, its late outcomes are refused, its job processes killed (mostly with them out
   of the other engines' reach, as on another host);
8. multi-cut: the server terminates the engines' sessions 2-6 times while they run jobs.

Prints a table (scenario, runs, jobs, lost, duplicated-while-running, stuck, problems) and
exits 1 if any of them is non-zero. The queue directory of a failed run is kept and named.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the scenarios live with the tests, which import their helpers as top-level modules
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import BACKENDS, Backend, make_backend, release_backend  # noqa: E402
from reliability.chaos.crashes import crash_at_fault_point, poison_job  # noqa: E402
from reliability.chaos.enqueuers import concurrent_enqueue  # noqa: E402
from reliability.chaos.kill9 import kill9_with_jobs_running  # noqa: E402
from reliability.chaos.multi import (  # noqa: E402
    connections_cut,
    drain_exactly_once,
    kill9_one_of_many,
    sigstop_past_lease,
)
from reliability.chaos.result import Result  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from queuectl.faults import POINTS  # noqa: E402

Scenario = Callable[[Backend, random.Random, bool, bool], Result]


def kill9(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    shortest = rng.uniform(0.2, 1.5)
    return kill9_with_jobs_running(
        backend,
        jobs_count=8 if quick else 20,
        seed_value=rng.randrange(2**32),
        min_seconds=shortest,
        max_seconds=shortest + rng.uniform(0.1, 2.0),
        max_kill_delay=rng.uniform(0.0, 2.5),
        early_kill=None,
        kills=rng.choice([1, 1, 2, 3]),
    )


def fault(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    return crash_at_fault_point(
        backend,
        point=rng.choice(POINTS),
        targeted=rng.random() < 0.7,
        jobs_count=rng.randint(2, 4 if quick else 8),
        seed_value=rng.randrange(2**32),
        min_seconds=0.02,
        max_seconds=rng.uniform(0.05, 2.0),
    )


def enqueue(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    if full:
        return concurrent_enqueue(
            backend,
            enqueuers=4,
            per_enqueuer=2500,
            seed_value=rng.randrange(2**32),
            concurrency=20,
            singles=10,
            min_chunk=150,
            max_chunk=600,
        )
    return concurrent_enqueue(
        backend,
        enqueuers=4,
        per_enqueuer=50 if quick else rng.randint(100, 250),
        seed_value=rng.randrange(2**32),
        concurrency=20,
        singles=rng.randint(1, 4),
        min_chunk=rng.randint(10, 40),
        max_chunk=rng.randint(40, 120),
    )


def poison(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    return poison_job(
        backend,
        max_retries=rng.randint(0, 3),
        others=rng.randint(2, 10),
        concurrency=rng.randint(1, 6),
        seed_value=rng.randrange(2**32),
        point=rng.choice(["spawn", "spawn", "claim"]),
        max_restarts=10,
    )


def multi_drain(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    if full:
        return drain_exactly_once(backend, jobs_count=20_000, engines_count=4, concurrency=8)
    return drain_exactly_once(
        backend,
        jobs_count=500 if quick else rng.randint(2000, 5000),
        engines_count=rng.randint(2, 4),
        concurrency=rng.choice([2, 4, 8, 12]),
    )


def multi_kill9(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    engines = rng.randint(2, 4)
    concurrency = rng.randint(2, 4 if quick else 8)
    shortest = rng.uniform(1.0, 3.0)
    return kill9_one_of_many(
        backend,
        engines_count=engines,
        concurrency=concurrency,
        jobs_count=engines * concurrency,
        seed_value=rng.randrange(2**32),
        min_seconds=shortest,
        max_seconds=shortest + rng.uniform(0.1, 2.0),
        max_kill_delay=rng.uniform(0.0, 1.0),
    )


def multi_stop(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    return sigstop_past_lease(
        backend,
        short_jobs=rng.randint(0, 4),
        long_jobs=rng.randint(1, 4),
        short_seconds=rng.uniform(0.2, 1.5),
        rescuers=rng.randint(1, 3),
        other_host=rng.random() < 0.7,
    )


def multi_cut(backend: Backend, rng: random.Random, quick: bool, full: bool) -> Result:
    engines = rng.randint(2, 4)
    shortest = rng.uniform(0.05, 0.5)
    return connections_cut(
        backend,
        engines_count=engines,
        concurrency=rng.randint(2, 6),
        jobs_count=40 if quick else rng.randint(40, 120),
        later_jobs=12 * engines,
        cuts=2 if quick else rng.randint(2, 6),
        seed_value=rng.randrange(2**32),
        min_seconds=shortest,
        max_seconds=shortest + rng.uniform(0.1, 1.5),
    )


SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "kill9": ("kill -9 with jobs running", kill9),
    "fault": ("crash at a fault point", fault),
    "enqueue": ("concurrent enqueue", enqueue),
    "poison": ("poison job", poison),
    "multi-drain": ("multi-engine drain", multi_drain),
    "multi-kill9": ("multi-engine kill -9", multi_kill9),
    "multi-stop": ("multi-engine SIGSTOP past the lease", multi_stop),
    "multi-cut": ("multi-engine connections cut", multi_cut),
}
#: scenarios of many engines on one queue: PostgreSQL whatever --backend says
ONLY_ON = {key: "postgres" for key in SCENARIOS if key.startswith("multi-")}


def where(backend: str, chosen: list[str]) -> str:
    """The backends the chosen scenarios run on, for the first line."""
    fixed = sorted({ONLY_ON[key] for key in chosen if key in ONLY_ON})
    if not fixed or fixed == [backend]:
        return backend
    if all(key in ONLY_ON for key in chosen):
        return ", ".join(fixed)
    return f"{backend} (multi-: {', '.join(fixed)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs of each scenario (50)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--quick", action="store_true", help="2 runs each, small sizes")
    parser.add_argument(
        "--full-every",
        type=int,
        default=10,
        metavar="K",
        help="every K-th concurrent-enqueue run is 4 x 2,500 jobs, every K-th multi-drain run "
        "4 engines x 20,000 jobs (0: never)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=BACKENDS[0],
        help=f"where the queues are stored ({BACKENDS[0]}; the multi- scenarios: postgres)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    args = parser.parse_args()
    runs = args.runs if args.runs is not None else (2 if args.quick else 50)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    chosen = args.only or list(SCENARIOS)
    console = Console(stderr=True)
    console.print(
        f"soak: {runs} runs of {', '.join(chosen)} on {where(args.backend, chosen)}, seed {seed}"
        f"{' (quick)' if args.quick else ''}"
    )

    totals = {key: Result(SCENARIOS[key][0], runs=0) for key in chosen}
    kept: list[str] = []
    began = time.monotonic()
    for number in range(runs):
        for key in chosen:  # interleaved: an interrupted soak has still tried every scenario
            name, scenario = SCENARIOS[key]
            rng = random.Random(f"{seed}-{key}-{number}")
            full = (
                key in ("enqueue", "multi-drain")
                and not args.quick
                and args.full_every > 0
                and number % args.full_every == 0
            )
            home = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
            started = time.monotonic()
            backend = None
            try:
                backend = make_backend(ONLY_ON.get(key, args.backend), home)
                result = scenario(backend, rng, args.quick, full)
            except Exception:
                result = Result(name, problems=[f"the scenario raised:\n{traceback.format_exc()}"])
            result.seconds = time.monotonic() - started
            totals[key].add(result)
            if result.ok:
                shutil.rmtree(home, ignore_errors=True)
                if backend is not None:
                    release_backend(backend)  # a failed run's database is kept until the end
                verdict = "[green]ok[/green]"
            else:
                kept.append(str(home))
                verdict = f"[red]FAILED[/red] (kept {home})"
                console.print(result.summary(), markup=False, highlight=False)
                console.print(result.logs[-6000:], markup=False, highlight=False)
            console.print(
                f"run {number + 1}/{runs} {key:11} {result.jobs:6} jobs "
                f"{result.seconds:6.1f}s {verdict}"
            )

    table = Table(title=f"chaos soak: seed {seed}, {time.monotonic() - began:.0f} s")
    for column in (
        "scenario",
        "runs",
        "jobs",
        "lost",
        "duplicated-while-running",
        "stuck",
        "problems",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for total in totals.values():
        table.add_row(
            total.scenario,
            str(total.runs),
            str(total.jobs),
            str(total.lost),
            str(total.duplicated_while_running),
            str(total.stuck),
            str(len(total.problems)),
            f"{total.seconds:.0f}",
        )
    out = Console()
    if not out.is_terminal:
        out = Console(width=130)
    out.print(table)
    for total in totals.values():
        if total.notes:
            notes = ", ".join(f"{what}: {count}" for what, count in sorted(total.notes.items()))
            out.print(f"{total.scenario}: {notes}", highlight=False)
    failed = [total for total in totals.values() if not total.ok]
    for total in failed:
        console.print(total.summary()[:4000], markup=False, highlight=False)
    if kept:
        console.print(f"queues of failed runs kept: {' '.join(kept)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
