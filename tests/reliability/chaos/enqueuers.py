"""Scenario 3: enqueuer processes adding jobs while an engine runs them; every job must run
exactly once, and nobody may see "database is locked" or a traceback."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter

from helpers import Backend, all_jobs, in_store, job_counts, wait_for

from queuectl.states import JobState
from queuectl.store import Store

from .harness import engines
from .result import BAD_OUTPUT, Result, tail


def concurrent_enqueue(
    backend: Backend,
    *,
    enqueuers: int = 4,
    per_enqueuer: int = 250,
    seed_value: int = 0,
    concurrency: int = 20,
    singles: int = 3,
    min_chunk: int = 40,
    max_chunk: int = 90,
) -> Result:
    """Scenario 3: `enqueuers` processes each enqueue `per_enqueuer` jobs (`enqueue --file`
    in random chunks, plus `singles` one-job enqueues) while an engine runs at
    `concurrency`: every job runs exactly once, nobody sees "database is locked" or a
    traceback, and the queue's reads agree with each other (`consistency_problems`)."""
    started_at = time.monotonic()
    home = backend.home
    rng = random.Random(seed_value)
    total = enqueuers * per_enqueuer
    result = Result("concurrent enqueue", jobs=total)
    out = home / "out"
    work = home / "enqueue"
    work.mkdir(parents=True)
    scripts = []
    for number in range(enqueuers):
        ids = [f"e{number}-{n}" for n in range(per_enqueuer)]
        specs = [{"id": job_id, "command": f"echo {job_id} >> {out}"} for job_id in ids]
        single_count = min(singles, len(specs))
        steps = [_cli_step(backend, json.dumps(spec)) for spec in specs[:single_count]]
        rest = specs[single_count:]
        chunk = 0
        while rest:
            size = rng.randint(min_chunk, max_chunk)
            path = work / f"{number}-{chunk}.jsonl"
            path.write_text("".join(json.dumps(spec) + "\n" for spec in rest[:size]))
            steps.append(_cli_step(backend, "--file", str(path)))
            rest = rest[size:]
            chunk += 1
        rng.shuffle(steps)
        script = work / f"enqueuer-{number}.sh"
        script.write_text("rc=0\n" + "".join(f"{step} || rc=1\n" for step in steps) + "exit $rc\n")
        scripts.append(script)

    with engines(backend, result) as group:
        engine = group.start("-c", str(concurrency), "-q")
        wait_for(lambda: backend.exists() and engine.alive(), timeout=30)
        procs = []
        for number, script in enumerate(scripts):
            time.sleep(rng.uniform(0, 0.2))
            with (
                open(work / f"enqueuer-{number}.stdout", "wb") as stdout,
                open(work / f"enqueuer-{number}.stderr", "wb") as stderr,
            ):
                procs.append(
                    subprocess.Popen(
                        ["/bin/sh", str(script)],
                        stdin=subprocess.DEVNULL,
                        stdout=stdout,
                        stderr=stderr,
                        cwd=home,
                        env={**os.environ, "PY": sys.executable},
                    )
                )
        deadline = 60 + total / 20
        for number, proc in enumerate(procs):
            try:
                code = proc.wait(timeout=max(1.0, deadline - (time.monotonic() - started_at)))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                result.problem(f"enqueuer {number} did not finish in time")
            if code != 0:
                result.problem(f"enqueuer {number} exited {code}")
        accepted = 0
        for number in range(enqueuers):
            stdout = (work / f"enqueuer-{number}.stdout").read_text()
            stderr = (work / f"enqueuer-{number}.stderr").read_text()
            accepted += sum(
                int(line.split()[1]) if line.startswith("enqueued ") else 1
                for line in stdout.splitlines()
                if line.strip()
            )
            if stderr.strip():
                result.problem(f"enqueuer {number} stderr: {tail(stderr, 10)}")
                result.scan(f"enqueuer {number} stderr", stderr, BAD_OUTPUT)
        if accepted != total:
            result.problem(f"the enqueuers acknowledged {accepted} jobs, not {total}")
        try:
            wait_for(
                lambda: job_counts(backend)["completed"] >= accepted,
                timeout=max(30.0, deadline - (time.monotonic() - started_at)),
                interval=0.5,
            )
        except AssertionError:
            done = job_counts(backend)["completed"]
            result.problem(f"only {done} of {accepted} jobs completed in time")
        code = engine.stop(signal.SIGTERM, timeout=60)
        if code != 0:
            result.problem(f"the engine exited {code} on SIGTERM")
        noise = engine.log().strip()
        if noise:  # -q: only failures are logged, and nothing here may fail
            result.problem(f"the engine (-q) logged: {tail(noise, 10)}")

        executed = Counter((out.read_text() if out.exists() else "").split())
        expected = {f"e{number}-{n}" for number in range(enqueuers) for n in range(per_enqueuer)}
        jobs = {job.id: (job.state, job.runs) for job in all_jobs(backend).values()}
        for job_id in expected:
            state, runs = jobs.get(job_id, (None, 0))
            if state == "processing":
                result.stuck += 1
            elif state != "completed" or executed[job_id] == 0:
                result.lost += 1
                if result.lost <= 5:
                    result.problem(f"{job_id}: {state}, executed {executed[job_id]} times")
            if executed[job_id] > 1 or runs > 1:
                result.duplicated_while_running += max(executed[job_id], runs) - 1
                result.problem(f"{job_id}: executed {executed[job_id]} times in {runs} runs")
        strangers = set(executed) - expected
        if strangers or len(jobs) != total:
            result.problem(f"{len(jobs)} jobs in the queue, unknown output {sorted(strangers)[:5]}")
        for problem in in_store(backend, consistency_problems)[:5]:
            result.problem(problem)
    result.seconds = time.monotonic() - started_at
    return result


async def consistency_problems(store: Store) -> list[str]:
    """Where the queue's reads disagree: the count per state, the list of every job, the list of
    each state's jobs, and each job's attempts (one per run). Through the Store, so on every
    backend; a damaged table or index shows as a disagreement or a storage error."""
    problems = []
    every = await store.list_jobs(None, 1_000_000_000)
    listed = Counter(job.state for job in every)
    counts = {state: count for state, count in (await store.counts()).items() if count}
    if counts != listed:
        problems.append(f"counts() {counts} but list_jobs() finds {dict(listed)}")
    for state in JobState:
        in_state = await store.list_jobs(state, 1_000_000_000)
        if len(in_state) != listed[state] or any(job.state != state for job in in_state):
            problems.append(f"list_jobs({state}) finds {len(in_state)}, not {listed[state]}")
    for job in every:
        attempts = await store.attempts(job.id)
        if [attempt.run for attempt in attempts] != list(range(1, job.runs + 1)):
            problems.append(f"{job.id}: {job.runs} runs, attempts {[a.run for a in attempts]}")
    return problems


def _cli_step(backend: Backend, *args: str) -> str:
    """One `queuectl enqueue` line of an enqueuer's shell script."""
    argv = ["-m", "queuectl", "--home", str(backend.home), *backend.cli_args(), "enqueue", *args]
    return '"$PY" ' + shlex.join(argv)
