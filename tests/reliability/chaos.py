"""Chaos scenarios: real engine processes running real shell commands, killed on purpose.

Each scenario is a plain function of a fresh queue home, a size and a random seed, and returns
a `Result`: what it ran and what went wrong. tests/reliability/test_chaos.py runs small, fixed
forms of them; scripts/soak.py runs them many times with random sizes and timings.

What counts as what:

- lost: a job the queue accepted whose work was not done: missing from the database, or in a
  final state it should not be in (dead, canceled, or pending/failed once a `--until-empty`
  engine has exited), or completed while its command never finished on the completing run;
- duplicated_while_running: two runs of one job alive at the same time. Each tracked command
  records its pid; a run that finds the previous run's process still alive (same job id in its
  environment, not a zombie) writes an overlap line. Runs that both finished are also compared
  by their start/end timestamps, and the attempts table must show each attempt settled before
  the next began. Counted once per job, however much evidence. In scenario 3 (no crash at
  all) every execution of a job beyond the first counts;
- stuck: a job left in `processing` when everything is over;
- problems: everything else that is wrong (a traceback or "database is locked" on a stderr, a
  process of a dead engine's job still alive, a crash loop, a wrong attempt history, ...).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_process import EngineProcess, attempts, jobs
from helpers import db_path, run_cli, seed, wait_for

ENGINE_DIED = "the engine running the job died"
FAULT_POINTS = ("claim", "spawn", "finish")
KILLED = -signal.SIGKILL
#: lines that must never reach a log or a user's terminal
BAD_OUTPUT = ("Traceback", "database is locked", "database is busy")
#: engine log lines that mean the engine lost track of a job or of its leases
BAD_ENGINE_LOG = (
    *BAD_OUTPUT,
    "could not record its outcome",
    "outcome not recorded",
    "could not renew leases",
)
FAST_CONFIG = {"backoff-max": 0.0, "backoff-jitter": 0.0}  # retries are due at once


# --- the result record -------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    runs: int = 1
    jobs: int = 0
    lost: int = 0
    duplicated_while_running: int = 0
    stuck: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: facts worth reporting that are not failures (e.g. a re-run allowed by at-least-once)
    notes: Counter[str] = field(default_factory=Counter)
    #: the engines' logs, kept when something went wrong
    logs: str = ""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated_while_running or self.stuck or self.problems)

    def add(self, other: Result) -> None:
        self.runs += other.runs
        self.jobs += other.jobs
        self.lost += other.lost
        self.duplicated_while_running += other.duplicated_while_running
        self.stuck += other.stuck
        self.problems += other.problems
        self.seconds += other.seconds
        self.notes.update(other.notes)
        self.logs += other.logs

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def summary(self) -> str:
        head = (
            f"{self.scenario}: runs={self.runs} jobs={self.jobs} lost={self.lost} "
            f"duplicated_while_running={self.duplicated_while_running} stuck={self.stuck} "
            f"problems={len(self.problems)}"
        )
        return "\n".join([head, *(f"  - {text}" for text in self.problems)])


# --- engines ---------------------------------------------------------------------------------


class Engines:
    """Starts engines on one home and, at the end, leaves none of them (or their jobs) behind."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.started: list[EngineProcess] = []

    def start(self, *args: str, fault: str = "") -> EngineProcess:
        """`queuectl worker start ARGS`; QUEUECTL_FAULT is always set, so that a fault in the
        caller's environment never leaks into an engine meant to run without one."""
        engine = EngineProcess(self.home, *args, env={"QUEUECTL_FAULT": fault})
        self.started.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.started:
            engine.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- engine pid {engine.pid} {' '.join(engine.args)} exit "
            f"{engine.proc.returncode}\n{_tail(engine.log(), 40)}"
            for engine in self.started
        )


@contextmanager
def engines(home: Path, result: Result) -> Iterator[Engines]:
    group = Engines(home)
    try:
        yield group
    finally:
        group.close()
        for engine in group.started:
            _scan(result, f"engine {engine.pid} log", engine.log(), BAD_ENGINE_LOG)
        if not result.ok:
            result.logs += f"engine logs of {home}:\n{group.logs()}\n"


def dead_engines_left_nothing(result: Result, dead: Sequence[EngineProcess]) -> None:
    """No process of a job started by a killed engine may outlive the next engine's recovery."""
    for engine in dead:
        try:
            wait_for(lambda engine=engine: not engine.job_groups(), timeout=3)
        except AssertionError:
            groups = sorted(engine.job_groups())
            result.problem(
                f"processes of jobs of the killed engine {engine.pid} still run "
                f"in process groups {groups}"
            )


# --- tracked commands --------------------------------------------------------------------------


def tracked_command(track: Path, job_id: str, seconds: float, marker: str = "") -> str:
    """A shell command that logs its runs to TRACK/ID.log and detects an overlapping run.

    `start T PID ATTEMPT` and `end T PID ATTEMPT` lines; before starting, if the pid of the
    previous run (TRACK/ID.pid) is alive and still this job's (its environment holds this job
    id, so a recycled pid does not count; a zombie's environment is empty), it appends
    `ATTEMPT PREVPID` to TRACK/ID.overlap.
    """
    base = shlex.quote(str(track / job_id))
    check = (
        'prev=$(cat "$f.pid" 2>/dev/null); '
        'if [ -n "$prev" ] && [ "$prev" != $$ ] && '
        'tr "\\000" "\\n" 2>/dev/null < /proc/$prev/environ '
        '| grep -qx "QUEUECTL_JOB_ID=$QUEUECTL_JOB_ID"; then '
        'echo "$QUEUECTL_ATTEMPT $prev" >> "$f.overlap"; fi; '
    )
    body = (
        'echo $$ > "$f.pid"; '
        'echo "start $(date +%s.%N) $$ $QUEUECTL_ATTEMPT" >> "$f.log"; '
        f"sleep {seconds:.3f}; "
        'echo "end $(date +%s.%N) $$ $QUEUECTL_ATTEMPT" >> "$f.log"'
    )
    prefix = f": {marker}; " if marker else ""
    return f"{prefix}f={base}; {check}{body}"


@dataclass
class Run:
    attempt: int
    pid: int
    start: float
    end: float | None = None


def tracked_runs(track: Path, job_id: str) -> list[Run]:
    runs: dict[tuple[int, int], Run] = {}
    try:
        lines = (track / f"{job_id}.log").read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[0] not in ("start", "end"):
            continue  # a run killed in the middle of a write
        kind, at, pid, attempt = parts[0], float(parts[1]), int(parts[2]), int(parts[3])
        if kind == "start":
            runs[(attempt, pid)] = Run(attempt, pid, at)
        elif (attempt, pid) in runs:
            runs[(attempt, pid)].end = at
    return sorted(runs.values(), key=lambda run: run.start)


def check_tracked(result: Result, home: Path, track: Path, expected: Mapping[str, str]) -> None:
    """Judge every tracked job once everything is over: `expected` maps id to final state."""
    rows = jobs(home)
    for job_id, want in expected.items():
        row = rows.get(job_id)
        runs = tracked_runs(track, job_id)
        _check_overlaps(result, home, track, job_id, runs)
        if row is None:
            result.lost += 1
            result.problem(f"{job_id}: not in the database")
            continue
        state = row["state"]
        if state == "processing":
            result.stuck += 1
            result.problem(f"{job_id}: stuck in processing (attempts {row['attempts']})")
            continue
        if state != want:
            result.lost += 1
            result.problem(
                f"{job_id}: {state}, expected {want}; attempts {row['attempts']}, "
                f"last error {row['last_error']!r}"
            )
            continue
        if state == "completed":
            finished = [run for run in runs if run.attempt == row["attempts"] and run.end]
            if not finished:
                result.lost += 1
                result.problem(
                    f"{job_id}: completed at attempt {row['attempts']} but that "
                    f"run never finished its command (runs: {runs})"
                )
        ends = sum(1 for run in runs if run.end is not None)
        if ends > 1:
            result.notes["re-run after its command had finished"] += 1
    strays = [
        row["id"]
        for row in rows.values()
        if row["id"] not in expected and row["state"] == "processing"
    ]
    result.stuck += len(strays)


def _check_overlaps(
    result: Result, home: Path, track: Path, job_id: str, runs: Sequence[Run]
) -> None:
    try:
        overlaps = (track / f"{job_id}.overlap").read_text().splitlines()
    except FileNotFoundError:
        overlaps = []
    found = len(overlaps)
    if overlaps:
        result.problem(
            f"{job_id}: a run started while the previous run was alive "
            f"(attempt, previous pid): {overlaps}"
        )
    for earlier, later in itertools.pairwise(runs):
        if earlier.end is not None and later.start < earlier.end:
            found += 1
            result.problem(f"{job_id}: runs overlap in time: {earlier} and {later}")
    attempts_seen = Counter(run.attempt for run in runs)
    for attempt, count in attempts_seen.items():
        if count > 1:  # no engine here is stopped gracefully: each death costs an attempt
            result.problem(f"{job_id}: attempt number {attempt} ran {count} times")
    history = attempts(home, job_id)
    for earlier_row, later_row in itertools.pairwise(history):
        if (
            earlier_row["finished_at"] is None
            or later_row["started_at"] < earlier_row["finished_at"]
        ):
            found += 1
            result.problem(
                f"{job_id}: attempt {later_row['run']} began before attempt "
                f"{earlier_row['run']} was settled"
            )
    if found:  # counted once per job, however much evidence there is
        result.duplicated_while_running += 1


def check_history(
    result: Result, home: Path, job_id: str, crashed: Sequence[int], owner: str | None = None
) -> None:
    """Attempts `crashed` (1-based) of the job failed because their engine died."""
    history = attempts(home, job_id)
    for number in crashed:
        if number > len(history):
            result.problem(f"{job_id}: no attempt {number} in its history ({len(history)})")
            continue
        error = history[number - 1]["error"] or ""
        if ENGINE_DIED not in error or (owner is not None and owner not in error):
            result.problem(
                f"{job_id}: attempt {number} error {error!r}, expected "
                f"{ENGINE_DIED!r} naming {owner}"
            )


# --- scenario 1: kill -9 with jobs running ---------------------------------------------------


def kill9_with_jobs_running(
    home: Path,
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
    track = home / "track"
    track.mkdir(parents=True)
    seed(home, config=FAST_CONFIG)
    ids = [f"k{n:03d}" for n in range(jobs_count)]
    specs = [
        {
            "id": job_id,
            "max_retries": 2 + kills,  # every kill may cost each job one attempt
            "command": tracked_command(track, job_id, rng.uniform(min_seconds, max_seconds)),
        }
        for job_id in ids
    ]
    _enqueue_file(home, specs)
    if early_kill is None:
        early_kill = rng.random() < 0.25
    killed: list[EngineProcess] = []
    crashed: list[tuple[str, int, str]] = []  # (job id, run, engine id) held at a kill
    pid_files = [track / f"{job_id}.pid" for job_id in ids]
    with engines(home, result) as group:
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
            owner = _engine_id(engine)
            held = [
                (job_id, row["runs"], row["lease_owner"])
                for job_id, row in jobs(home).items()
                if row["state"] == "processing" and row["lease_owner"] == owner
            ]
            if number == 0:
                result.notes["jobs running at the first kill"] += len(held)
            crashed += held

        orphaned = sum(1 for row in jobs(home).values() if row["state"] == "processing")
        last = group.start("--until-empty", "-c", str(jobs_count))
        code = last.wait(timeout=90)
        if code != 0:
            result.problem(f"the restarted engine exited {code}")
        dead_engines_left_nothing(result, killed)
        check_tracked(result, home, track, dict.fromkeys(ids, "completed"))
        for job_id, run, owner in crashed:
            check_history(result, home, job_id, [run], owner)
        recovered = f"recovered {orphaned} job"
        if orphaned and recovered not in last.log():
            result.problem(f"the last engine's log lacks {recovered!r}")
    result.notes["engines killed"] += len(killed)
    result.seconds = time.monotonic() - started_at
    return result


# --- scenario 2: a crash at each step of a job's life ------------------------------------------


def crash_at_fault_point(
    home: Path,
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
    assert point in FAULT_POINTS, point
    started_at = time.monotonic()
    rng = random.Random(seed_value)
    result = Result(f"crash at {point}", jobs=jobs_count)
    result.notes[f"crash at {point}{'' if targeted else ' (untargeted)'}"] += 1
    track = home / "track"
    track.mkdir(parents=True)
    seed(home, config=FAST_CONFIG)
    ids = [f"c{n:02d}" for n in range(jobs_count)]
    target = rng.choice(ids)
    marker = "CHAOS_TARGET"
    _enqueue_file(
        home,
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
    fault = f"{point}:{marker}" if targeted else point
    with engines(home, result) as group:
        first = group.start("-c", str(jobs_count), fault=fault)
        code = first.wait(timeout=60)
        if code != KILLED:
            result.problem(
                f"the engine with QUEUECTL_FAULT={fault} exited {code}, not by its own SIGKILL"
            )
        owner = _engine_id(first)
        held = [job_id for job_id, row in jobs(home).items() if row["state"] == "processing"]
        result.notes["jobs held by the crashed engine"] += len(held)
        if targeted and target not in held:
            result.problem(
                f"the target {target} was not processing after the crash "
                f"({jobs(home).get(target, {}).get('state')})"
            )
        second = group.start("--until-empty", "-c", str(jobs_count))
        code = second.wait(timeout=60)
        if code != 0:
            result.problem(f"the restarted engine exited {code}")
        dead_engines_left_nothing(result, [first])
        check_tracked(result, home, track, dict.fromkeys(ids, "completed"))
        finished_first = set()
        for job_id in held:
            check_history(result, home, job_id, [1], owner)
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
            history = json.loads(run_cli(home, "show", target, "--json", check=True).stdout)[
                "history"
            ]
            if not history or ENGINE_DIED not in (history[0]["error"] or ""):
                result.problem(f"`show {target}` history does not record the crash: {history}")
    result.seconds = time.monotonic() - started_at
    return result


# --- scenario 3: concurrent enqueuers while the engine runs ---------------------------------


def concurrent_enqueue(
    home: Path,
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
    traceback, and the database passes `PRAGMA integrity_check`."""
    started_at = time.monotonic()
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
        steps = [_cli_step(home, json.dumps(spec)) for spec in specs[:single_count]]
        rest = specs[single_count:]
        chunk = 0
        while rest:
            size = rng.randint(min_chunk, max_chunk)
            path = work / f"{number}-{chunk}.jsonl"
            path.write_text("".join(json.dumps(spec) + "\n" for spec in rest[:size]))
            steps.append(_cli_step(home, "--file", str(path)))
            rest = rest[size:]
            chunk += 1
        rng.shuffle(steps)
        script = work / f"enqueuer-{number}.sh"
        script.write_text("rc=0\n" + "".join(f"{step} || rc=1\n" for step in steps) + "exit $rc\n")
        scripts.append(script)

    with engines(home, result) as group:
        engine = group.start("-c", str(concurrency), "-q")
        wait_for(lambda: db_path(home).exists() and engine.alive(), timeout=30)
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
                result.problem(f"enqueuer {number} stderr: {_tail(stderr, 10)}")
                _scan(result, f"enqueuer {number} stderr", stderr, BAD_OUTPUT)
        if accepted != total:
            result.problem(f"the enqueuers acknowledged {accepted} jobs, not {total}")
        try:
            wait_for(
                lambda: _count(home, "state = 'completed'") >= accepted,
                timeout=max(30.0, deadline - (time.monotonic() - started_at)),
                interval=0.5,
            )
        except AssertionError:
            done = _count(home, "state = 'completed'")
            result.problem(f"only {done} of {accepted} jobs completed in time")
        code = engine.stop(signal.SIGTERM, timeout=60)
        if code != 0:
            result.problem(f"the engine exited {code} on SIGTERM")
        noise = engine.log().strip()
        if noise:  # -q: only failures are logged, and nothing here may fail
            result.problem(f"the engine (-q) logged: {_tail(noise, 10)}")

        executed = Counter((out.read_text() if out.exists() else "").split())
        expected = {f"e{number}-{n}" for number in range(enqueuers) for n in range(per_enqueuer)}
        rows = {
            row[0]: (row[1], row[2]) for row in _query(home, "SELECT id, state, runs FROM jobs")
        }
        for job_id in expected:
            state, runs = rows.get(job_id, (None, 0))
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
        if strangers or len(rows) != total:
            result.problem(
                f"{len(rows)} jobs in the database, unknown output {sorted(strangers)[:5]}"
            )
        check = _query(home, "PRAGMA integrity_check")
        if check != [("ok",)]:
            result.problem(f"PRAGMA integrity_check: {check[:5]}")
    result.seconds = time.monotonic() - started_at
    return result


def _cli_step(home: Path, *args: str) -> str:
    """One `queuectl enqueue` line of an enqueuer's shell script."""
    return '"$PY" ' + shlex.join(["-m", "queuectl", "--home", str(home), "enqueue", *args])


# --- scenario 4: a poison job -------------------------------------------------------------------


def poison_job(
    home: Path,
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
    track = home / "track"
    track.mkdir(parents=True)
    seed(home, config=FAST_CONFIG)
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
    _enqueue_file(home, specs)
    fault = f"{point}:POISON"
    deaths: list[EngineProcess] = []
    with engines(home, result) as group:
        code = None
        for _ in range(max_restarts + 1):
            engine = group.start("--until-empty", "-c", str(concurrency), fault=fault)
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
        check_tracked(result, home, track, {"poison": "dead", **dict.fromkeys(ids, "completed")})
        history = attempts(home, "poison")
        row = jobs(home).get("poison", {})
        if len(history) != max_retries + 1 or row.get("attempts") != max_retries + 1:
            result.problem(
                f"poison: {len(history)} attempts recorded, attempts="
                f"{row.get('attempts')}, expected {max_retries + 1}"
            )
        check_history(result, home, "poison", range(1, len(history) + 1))
    result.seconds = time.monotonic() - started_at
    return result


# --- small helpers ------------------------------------------------------------------------------


def _enqueue_file(home: Path, specs: Sequence[dict[str, Any]]) -> None:
    path = home / f"jobs-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
    result = run_cli(home, "enqueue", "--file", str(path), check=True)
    assert result.stdout.strip() == f"enqueued {len(specs)} jobs", result.stdout


def _engine_id(engine: EngineProcess) -> str | None:
    """The engine id from its log line `engine ID started: ...` (None if it never got there)."""
    for line in engine.log().splitlines():
        if " engine " in line and " started: " in line:
            return line.split(" engine ", 1)[1].split(" started: ", 1)[0]
    return None


def _query(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path(home), timeout=30)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def _count(home: Path, where: str) -> int:
    return int(_query(home, f"SELECT count(*) FROM jobs WHERE {where}")[0][0])


def _scan(result: Result, where: str, text: str, needles: Sequence[str]) -> None:
    for needle in needles:
        if needle in text:
            line = next(line for line in text.splitlines() if needle in line)
            result.problem(f"{where}: {needle!r}: {line.strip()}")


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
