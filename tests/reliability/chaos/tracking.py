"""Tracked commands: shell commands that record each run of their job, and the judging of every
job, once a scenario is over, by those records and by what the queue says of it."""

from __future__ import annotations

import itertools
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import Backend, all_jobs, job_attempts

from queuectl.states import ErrorKind

from .result import Result

ENGINE_DIED = "the engine running the job died"


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


def check_tracked(
    result: Result, backend: Backend, track: Path, expected: Mapping[str, str]
) -> None:
    """Judge every tracked job once everything is over: `expected` maps id to final state."""
    jobs = all_jobs(backend)
    for job_id, want in expected.items():
        job = jobs.get(job_id)
        runs = tracked_runs(track, job_id)
        _check_overlaps(result, backend, track, job_id, runs)
        if job is None:
            result.lost += 1
            result.problem(f"{job_id}: not in the queue")
            continue
        if job.state == "processing":
            result.stuck += 1
            result.problem(f"{job_id}: stuck in processing (attempts {job.attempts})")
            continue
        if job.state != want:
            result.lost += 1
            result.problem(
                f"{job_id}: {job.state}, expected {want}; attempts {job.attempts}, "
                f"last error {job.last_error!r}"
            )
            continue
        if job.state == "completed":
            finished = [run for run in runs if run.attempt == job.attempts and run.end]
            if not finished:
                result.lost += 1
                result.problem(
                    f"{job_id}: completed at attempt {job.attempts} but that "
                    f"run never finished its command (runs: {runs})"
                )
        ends = sum(1 for run in runs if run.end is not None)
        if ends > 1:
            result.notes["re-run after its command had finished"] += 1
    strays = [
        job.id for job in jobs.values() if job.id not in expected and job.state == "processing"
    ]
    result.stuck += len(strays)


def _check_overlaps(
    result: Result, backend: Backend, track: Path, job_id: str, runs: Sequence[Run]
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
    history = job_attempts(backend, job_id)
    for earlier_attempt, later_attempt in itertools.pairwise(history):
        if (
            earlier_attempt.finished_at is None
            or later_attempt.started_at < earlier_attempt.finished_at
        ):
            found += 1
            result.problem(
                f"{job_id}: attempt {later_attempt.run} began before attempt "
                f"{earlier_attempt.run} was settled"
            )
    if found:  # counted once per job, however much evidence there is
        result.duplicated_while_running += 1


def check_history(
    result: Result,
    backend: Backend,
    job_id: str,
    crashed: Sequence[int],
    owner: str | None = None,
) -> None:
    """Attempts `crashed` (1-based) of the job failed because their engine (`owner`) died."""
    history = job_attempts(backend, job_id)
    for number in crashed:
        if number > len(history):
            result.problem(f"{job_id}: no attempt {number} in its history ({len(history)})")
            continue
        attempt = history[number - 1]
        error = attempt.error or ""
        if (
            attempt.error_kind is not ErrorKind.ENGINE_DIED
            or ENGINE_DIED not in error
            or (owner is not None and owner not in error)
        ):
            result.problem(
                f"{job_id}: attempt {number} error {error!r} (kind {attempt.error_kind}), "
                f"expected {ENGINE_DIED!r} (kind {ErrorKind.ENGINE_DIED}) naming {owner}"
            )
