"""Scenario 1: `kill -9` of an engine with jobs running (and of the engines that recover its
jobs); then a `--until-empty` engine must complete every job, never two runs of one at once."""

from __future__ import annotations

import random
import time

from engine_process import EngineProcess
from helpers import Backend, all_jobs, seed, wait_for

from .harness import FAST_CONFIG, dead_engines_left_nothing, engine_id, engines, enqueue_file
from .result import Result
from .tracking import check_history, check_tracked, tracked_command


def kill9_with_jobs_running(
    backend: Backend,
    *,
    jobs_count: int = 20,
    seed_value: int = 0,
    min_seconds: float = 1.5,
    max_seconds: float = 3.0,
    max_kill_delay: float = 0.5,
    early_kill: bool | None = None,
    kills: int = 1,
) -> Result:
    """Scenario 1: `kill -9` of an engine running `jobs_count` jobs at concurrency
    `jobs_count`, then a `--until-empty` engine; every job must complete, once at a time.

    The kill comes a random delay (up to `max_kill_delay`) after every job has started, or,
    with `early_kill`, a random moment after the first one has (claims and spawns still under
    way). `early_kill=None` picks one of the two at random (1 in 4 early). With `kills` > 1,
    each restarted engine but the last is killed too, a random moment after it started
    (during its recovery of the previous engine's jobs, or while it runs them again).
    """
    started_at = time.monotonic()
    rng = random.Random(seed_value)
    result = Result("kill -9 with jobs running", jobs=jobs_count)
    track = backend.home / "track"
    track.mkdir(parents=True)
    seed(backend, config=FAST_CONFIG)
    ids = [f"k{n:03d}" for n in range(jobs_count)]
    specs = [
        {
            "id": job_id,
            "max_retries": 2 + kills,  # every kill may cost each job one attempt
            "command": tracked_command(track, job_id, rng.uniform(min_seconds, max_seconds)),
        }
        for job_id in ids
    ]
    enqueue_file(backend, specs)
    if early_kill is None:
        early_kill = rng.random() < 0.25
    killed: list[EngineProcess] = []
    crashed: list[tuple[str, int, str | None]] = []  # (job id, run, engine id) held at a kill
    pid_files = [track / f"{job_id}.pid" for job_id in ids]
    with engines(backend, result) as group:
        for number in range(kills):
            engine = group.start("-c", str(jobs_count))
            if number > 0:
                wait_for(engine.started, timeout=30)
                time.sleep(rng.uniform(0, max_kill_delay + 1.0))
            elif early_kill:
                wait_for(lambda: any(path.exists() for path in pid_files), timeout=30)
                time.sleep(rng.uniform(0, 0.3))
            else:
                wait_for(
                    lambda: all(path.exists() for path in pid_files),
                    timeout=30,
                    message=f"not every job started:\n{engine.log()}",
                )
                time.sleep(rng.uniform(0, max_kill_delay))
            engine.kill9()
            killed.append(engine)
            owner = engine_id(engine)
            held = [
                (job.id, job.runs, job.lease_owner)
                for job in all_jobs(backend).values()
                if job.state == "processing" and job.lease_owner == owner
            ]
            if number == 0:
                result.notes["jobs running at the first kill"] += len(held)
            crashed += held

        orphaned = sum(1 for job in all_jobs(backend).values() if job.state == "processing")
        last = group.start("--until-empty", "-c", str(jobs_count))
        code = last.wait(timeout=90)
        if code != 0:
            result.problem(f"the restarted engine exited {code}")
        dead_engines_left_nothing(result, killed)
        check_tracked(result, backend, track, dict.fromkeys(ids, "completed"))
        for job_id, run, held_by in crashed:
            check_history(result, backend, job_id, [run], held_by)
        recovered = f"recovered {orphaned} job"
        if orphaned and recovered not in last.log():
            result.problem(f"the last engine's log lacks {recovered!r}")
    result.notes["engines killed"] += len(killed)
    result.seconds = time.monotonic() - started_at
    return result
