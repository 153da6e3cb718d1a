"""Output for people (rich tables, colour only on a terminal) and for programs (--json).

JSON keys are stable; times are ISO 8601 in UTC. rich is imported only by the commands that
draw a table, so that `queuectl enqueue` starts fast.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from queuectl.models import Attempt, Job
from queuectl.states import JobState

if TYPE_CHECKING:
    from rich.console import Console

    from queuectl.engine.status import EngineReport
    from queuectl.service.stats import ExecStats

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters made visible (\\x1b): a job's output must not drive a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


STATE_STYLE = {
    JobState.PENDING: "cyan",
    JobState.PROCESSING: "yellow",
    JobState.COMPLETED: "green",
    JobState.FAILED: "magenta",
    JobState.DEAD: "red",
    JobState.CANCELED: "dim",
}


@functools.lru_cache(maxsize=1024)
def iso(ts: float | None) -> str | None:
    """Cached: a job's times repeat (created, run at, next run), and a million-row `list
    --json` formats seven of them per row."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def local_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts)
    fmt = "%H:%M:%S" if moment.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S"
    return moment.strftime(fmt)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def relative(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "-"
    delta = ts - (time.time() if now is None else now)
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "command": job.command,
        "state": job.state.value,
        "priority": job.priority,
        "max_retries": job.max_retries,
        "timeout": job.timeout,
        "cwd": job.cwd,
        "env": job.env,
        "attempts": job.attempts,
        "runs": job.runs,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "run_at": iso(job.run_at),
        "next_run_at": iso(job.next_run_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "exit_code": job.exit_code,
        "last_error": job.last_error,
        "error_kind": job.error_kind.value if job.error_kind else None,
        "label": job.label,
        "queue": job.queue,
        "unique_key": job.unique_key,
        "lease_owner": job.lease_owner,
        "lease_expires_at": iso(job.lease_expires_at),
        "pid": job.pid,
    }


def job_detail_dict(
    job: Job, attempts: Sequence[Attempt], parents: Sequence[str], children: Sequence[str]
) -> dict[str, Any]:
    """`show --json` (and the dashboard's /api/jobs/ID): the job, its relatives, its history."""
    return {
        **job_dict(job),
        "parents": list(parents),
        "children": list(children),
        "history": [attempt_dict(attempt) for attempt in attempts],
    }


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    return {
        "run": attempt.run,
        "engine": attempt.engine,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration": attempt.duration,
        "exit_code": attempt.exit_code,
        "error": attempt.error,
        "error_kind": attempt.error_kind.value if attempt.error_kind else None,
        "stdout": attempt.stdout.decode("utf-8", "replace"),
        "stderr": attempt.stderr.decode("utf-8", "replace"),
        "stdout_truncated": attempt.stdout_truncated,
        "stderr_truncated": attempt.stderr_truncated,
    }


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def console() -> Console:
    from rich.console import Console

    # Piped output is not cut to a guessed 80 columns: it goes to files and other programs.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=False, width=width)


def _text(value: str) -> str:
    from rich.markup import escape

    return escape(printable(value))


def shorten(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _state(state: JobState) -> str:
    return f"[{STATE_STYLE[state]}]{state.value}[/]"


def jobs_table(jobs: Sequence[Job], title: str | None = None) -> None:
    from rich.table import Table

    out = console()
    if not jobs:
        out.print("no jobs" if title is None else f"{title}: none")
        return
    now = time.time()
    rows = []
    for job in jobs:
        waiting = job.state in (JobState.PENDING, JobState.FAILED)
        rows.append(
            (
                job.id,
                job.state.value,
                str(job.priority),
                f"{job.attempts}/{job.max_retries + 1}",
                local_time(job.created_at),
                relative(job.next_run_at, now) if waiting else "-",
                shorten(job.command),
                shorten(job.last_error or "", 40),
            )
        )
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    headers = ("ID", "STATE", "PRI", "TRIES", "CREATED", "NEXT RUN", "COMMAND", "LAST ERROR")
    for index, name in enumerate(headers):
        if name in ("COMMAND", "LAST ERROR"):  # only these give way on a narrow terminal
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        else:
            width = max(len(name), *(len(row[index]) for row in rows))
            table.add_column(
                name,
                no_wrap=True,
                min_width=width,
                justify="right" if name in ("PRI", "TRIES") else "left",
            )
    for row, job in zip(rows, jobs, strict=True):
        cells = [_text(cell) for cell in row]
        cells[1] = _state(job.state)
        table.add_row(*cells)
    out.print(table)


def counts_table(counts: dict[JobState, int], extra: Iterable[tuple[str, str]] = ()) -> None:
    """Plain text, not rich (render_plain): `status` is the command run in loops."""
    from queuectl import render_plain

    rows = [(state.value, str(count)) for state, count in counts.items()]
    render_plain.table(sys.stdout, rows, right={1}, states=list(counts), indent="")
    for label, value in extra:
        sys.stdout.write(f"{label}: {printable(value)}\n")


def plural(count: int, noun: str) -> str:
    """`1 worker`, `2 workers`: every count shown to people goes through this."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def status(
    counts: dict[JobState, int],
    paused: bool,
    engine: EngineReport,
    stats: ExecStats | None = None,
) -> None:
    from queuectl import render_plain

    if not engine.running:
        line = "not running"
    elif not engine.answered:
        line = f"running (pid {engine.pid or '?'}), {engine.error or 'not answering'}"
    else:
        stopping = ", stopping" if engine.stopping else ""
        line = (
            f"running (pid {engine.pid}, up {duration(engine.uptime)}, "
            f"{plural(engine.concurrency or 0, 'worker')}{stopping}); since start: "
            f"{engine.completed} completed, {engine.failed} failed"
        )
    extra = [("engine", line)]
    if engine.queues is not None:
        extra.append(("engine queues", ", ".join(engine.queues)))
    if paused:
        extra.insert(0, ("queue", "paused: no job starts until `queuectl resume`"))
    if stats is not None and stats.completed_hour + stats.failed_hour:
        at_least = "at least " if stats.capped else ""
        extra.append(
            (
                "last minute",
                f"{stats.completed_minute} completed, {stats.failed_minute} failed; last hour: "
                f"{at_least}{stats.completed_hour} completed, {stats.failed_hour} failed",
            )
        )
        extra.append(
            (
                "durations",
                f"mean {duration(stats.mean_duration)}, p95 {duration(stats.p95_duration)} "
                f"(last hour); throughput {stats.throughput:g} jobs/min",
            )
        )
    counts_table(counts, extra)
    if not engine.running_jobs:
        return
    rows = [
        (
            printable(job.id),
            str(job.attempt),
            duration(job.elapsed),
            str(job.pid or "-"),
            printable(shorten(job.command)),
        )
        for job in engine.running_jobs
    ]
    headers = ("ID", "ATTEMPT", "ELAPSED", "PID", "COMMAND")
    render_plain.table(sys.stdout, rows, headers, title="running")


def job_detail(
    job: Job,
    attempts: Sequence[Attempt],
    parents: Sequence[str] = (),
    children: Sequence[str] = (),
) -> None:
    from rich.table import Table

    out = console()
    fields = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    timeout = "none" if job.timeout is None else duration(job.timeout)
    for label, value in (
        ("id", _text(job.id)),
        ("state", _state(job.state)),
        ("command", _text(job.command)),
        ("label", _text(job.label or "-")),
        ("queue", _text(job.queue)),
        ("unique key", _text(job.unique_key or "-")),
        ("after", _text(", ".join(parents) or "-")),
        ("children", _text(", ".join(children) or "-")),
        ("cwd", _text(job.cwd)),
        ("env", _text(" ".join(f"{k}={v}" for k, v in job.env.items())) or "-"),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_retries + 1} (max_retries {job.max_retries})"),
        ("timeout", timeout),
        ("created", local_time(job.created_at)),
        ("run at", local_time(job.run_at)),
        ("next run", local_time(job.next_run_at)),
        ("started", local_time(job.started_at)),
        ("finished", local_time(job.finished_at)),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("last error", _text(job.last_error or "-")),
    ):
        fields.add_row(label, value)
    if job.lease_owner:
        fields.add_row(
            "held by",
            f"{_text(job.lease_owner)} until "
            f"{local_time(job.lease_expires_at)} (pid {job.pid or '-'})",
        )
    out.print(fields)
    if not attempts:
        out.print("\nno attempts yet")
        return
    table = Table(title="attempts", title_justify="left", box=None, header_style="bold")
    for name in ("RUN", "STARTED", "DURATION", "EXIT", "ERROR"):
        table.add_column(name, overflow="fold")
    for attempt in attempts:
        table.add_row(
            str(attempt.run),
            local_time(attempt.started_at),
            duration(attempt.duration),
            "-" if attempt.exit_code is None else str(attempt.exit_code),
            _text(attempt.error or ""),
        )
    out.print()
    out.print(table)


def config_table(values: dict[str, Any], helps: dict[str, str]) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for name in ("KEY", "VALUE", "MEANING"):
        table.add_column(name)
    for name, value in values.items():
        table.add_row(name, format_value(value), helps[name])
    console().print(table)


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
