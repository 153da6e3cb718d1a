"""Engines that crash on purpose (QUEUECTL_FAULT, see queuectl.faults): scenario 2, a crash at
each step of a job's life, then a restart without the fault; scenario 4, a poison job that
kills every engine that runs it."""

from __future__ import annotations

import json
import random
import time

from engine_process import EngineProcess
from helpers import Backend, all_jobs, job_attempts, job_state, run_cli, seed

from queuectl.faults import POINTS
from queuectl.states import ErrorKind

from .harness import (
    FAST_CONFIG,
    KILLED,
    dead_engines_left_nothing,
    engine_id,
    engines,
    enqueue_file,
    fault,
)
from .result import Result
from .tracking import ENGINE_DIED, check_history, check_tracked, tracked_command, tracked_runs

# --- scenario 2: a crash at each step of a job's life ------------------------------------------


def crash_at_fault_point(
    backend: Backend,
    *,
    point: str = "spawn",
    targeted: bool = True,
    jobs_count: int = 4,
    seed_value: int = 0,
    min_seconds: float = 0.05,
    max_seconds: float = 0.5,
) -> Result:
    """Scenario 2: QUEUECTL_FAULT=POINT[:TARGET] makes the engine SIGKILL itself at that step
    of one job's life (of the first job's, untargeted); an engine started without the fault
    must then finish every job: the crashed attempt is recorded as the engine's death."""
    assert point in POINTS, point
    started_at = time.monotonic()
    rng = random.Random(seed_value)
    result = Result(f"crash at {point}", jobs=jobs_count)
    result.notes[f"crash at {point}{'' if targeted else ' (untargeted)'}"] += 1
    track = backend.home / "track"
    track.mkdir(parents=True)
    seed(backend, config=FAST_CONFIG)
    ids = [f"c{n:02d}" for n in range(jobs_count)]
    target = rng.choice(ids)
    marker = "CHAOS_TARGET"
    enqueue_file(
        backend,
        [
            {
                "id": job_id,
                "max_retries": 3,
                "command": tracked_command(
                    track,
                    job_id,
                    rng.uniform(min_seconds, max_seconds),
                    marker if job_id == target else "",
                ),
            }
            for job_id in ids
        ],
    )
    crash = f"{point}:{marker}" if targeted else point
    with engines(backend, result) as group:
        first = group.start("-c", str(jobs_count), env=fault(crash))
        code = first.wait(timeout=60)
        if code != KILLED:
            result.problem(
                f"the engine with QUEUECTL_FAULT={crash} exited {code}, not by its own SIGKILL"
            )
        owner = engine_id(first)
        held = [job.id for job in all_jobs(backend).values() if job.state == "processing"]
        result.notes["jobs held by the crashed engine"] += len(held)
        if targeted and target not in held:
            result.problem(
                f"the target {target} was not processing after the crash "
                f"({job_state(backend, target)})"
            )
        second = group.start("--until-empty", "-c", str(jobs_count))
        code = second.wait(timeout=60)
        if code != 0:
            result.problem(f"the restarted engine exited {code}")
        dead_engines_left_nothing(result, [first])
        check_tracked(result, backend, track, dict.fromkeys(ids, "completed"))
        finished_first = set()
        for job_id in held:
            check_history(result, backend, job_id, [1], owner)
            first_run = [run for run in tracked_runs(track, job_id) if run.attempt == 1]
            if point == "claim" and first_run:
                result.problem(f"{job_id}: crashed right after the claim, yet attempt 1 ran")
            if any(run.end for run in first_run):
                finished_first.add(job_id)
        # `finish` fires once the command is over: the job it fired for ran to its end
        # (untargeted: whichever job ended first)
        if point == "finish" and not (target in finished_first if targeted else finished_first):
            result.problem(
                f"crashed before recording the outcome of {target if targeted else 'a job'}, "
                "yet no such held job's attempt 1 finished its command"
            )
        if targeted:
            shown = run_cli(backend.home, *backend.cli_args(), "show", target, "--json", check=True)
            history = json.loads(shown.stdout)["history"]
            if (
                not history
                or ENGINE_DIED not in (history[0]["error"] or "")
                or history[0]["error_kind"] != ErrorKind.ENGINE_DIED
            ):
                result.problem(f"`show {target}` history does not record the crash: {history}")
    result.seconds = time.monotonic() - started_at
    return result


# --- scenario 4: a poison job -------------------------------------------------------------------


def poison_job(
    backend: Backend,
    *,
    max_retries: int = 2,
    others: int = 6,
    concurrency: int = 4,
    seed_value: int = 0,
    point: str = "spawn",
    max_restarts: int = 10,
    max_seconds: float = 0.3,
) -> Result:
    """Scenario 4 (the issue's scenario 7): QUEUECTL_FAULT=POINT:POISON kills the engine
    whenever it runs the poison job. A supervisor restarts the engine, fault still set, each
    time it dies: the poison job must be given up after max_retries + 1 attempts (dead, each
    attempt an engine death), the other jobs complete, and the engine then stays up."""
    assert point in ("claim", "spawn"), "a `finish` fault also fires in recovery"
    started_at = time.monotonic()
    rng = random.Random(seed_value)
    result = Result("poison job", jobs=others + 1)
    result.notes[f"poisoned at {point}"] += 1
    track = backend.home / "track"
    track.mkdir(parents=True)
    seed(backend, config=FAST_CONFIG)
    ids = [f"p{n:02d}" for n in range(others)]
    specs = [
        {
            "id": job_id,
            "max_retries": max_restarts,
            "command": tracked_command(track, job_id, rng.uniform(0.02, max_seconds)),
        }
        for job_id in ids
    ]
    specs.insert(
        rng.randint(0, len(specs)),
        {
            "id": "poison",
            "max_retries": max_retries,
            "command": tracked_command(track, "poison", 0.1, "POISON"),
        },
    )
    enqueue_file(backend, specs)
    crash = f"{point}:POISON"
    deaths: list[EngineProcess] = []
    with engines(backend, result) as group:
        code = None
        for _ in range(max_restarts + 1):
            engine = group.start("--until-empty", "-c", str(concurrency), env=fault(crash))
            code = engine.wait(timeout=60)
            if code != KILLED:
                break
            deaths.append(engine)
        if code != 0:
            result.problem(
                f"the last engine exited {code} after {len(deaths)} deaths (a crash loop?)"
            )
        if len(deaths) != max_retries + 1:
            result.problem(
                f"the engine died {len(deaths)} times, expected max_retries + 1 = {max_retries + 1}"
            )
        result.notes["engine deaths"] += len(deaths)
        dead_engines_left_nothing(result, deaths)
        check_tracked(result, backend, track, {"poison": "dead", **dict.fromkeys(ids, "completed")})
        history = job_attempts(backend, "poison")
        poison = all_jobs(backend).get("poison")
        attempts = None if poison is None else poison.attempts
        if len(history) != max_retries + 1 or attempts != max_retries + 1:
            result.problem(
                f"poison: {len(history)} attempts recorded, attempts={attempts}, "
                f"expected {max_retries + 1}"
            )
        check_history(result, backend, "poison", range(1, len(history) + 1))
    result.seconds = time.monotonic() - started_at
    return result
