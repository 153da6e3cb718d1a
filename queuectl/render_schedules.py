"""`schedule list` for people (a plain table that fits 80 columns) and for programs (--json, the
schema documented in the README: the same keys for every schedule, times ISO 8601 in UTC).

Plain text, not rich: the listing needs no more layout than render_plain gives, and rich
would cost the command most of its start-up.
"""

from __future__ import annotations

import shutil
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queuectl.render import iso, printable
from queuectl.schedules import Schedule, Schedules

HEADERS = ("NAME", "CRON", "TZ", "NEXT", "LAST JOB", "STATE")
#: the widest each column may be when the table must fit 80 columns (1 + 69 + 5 gaps of 2)
NARROW = (12, 13, 13, 9, 12, 10)
WIDTH = 80


def schedule_dict(schedule: Schedule, now: float) -> dict[str, Any]:
    job = schedule.job
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "tz": schedule.tz,
        "no_overlap": schedule.no_overlap,
        "paused": schedule.paused,
        "next_fire_at": iso(schedule.next_fire(now)),
        "last_fire_at": iso(schedule.last_fire_at),
        "last_job_id": schedule.last_job_id,
        "last_job_state": schedule.last_job_state,
        "created_at": iso(schedule.created_at),
        "job": {
            "command": job["command"],
            "cwd": job.get("cwd"),
            "env": job.get("env", {}),
            "priority": job.get("priority", 0),
            "max_retries": job.get("max_retries"),
            "timeout": job.get("timeout"),
            "label": job.get("label"),
            "queue": job.get("queue", "default"),
        },
    }


def schedules_json(schedules: Schedules) -> list[dict[str, Any]]:
    return [schedule_dict(schedule, schedules.now) for schedule in schedules.items]


def until(seconds: float) -> str:
    """A short relative time: 'in 42s', 'in 59m59s', 'in 23h59m', 'in 6d23h'."""
    whole = max(0, round(seconds))
    if whole < 1:
        return "now"
    if whole < 60:
        return f"in {whole}s"
    if whole < 3600:
        return f"in {whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"in {whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"in {whole // 86400}d{whole % 86400 // 3600:02d}h"


def next_text(schedule: Schedule, now: float) -> str:
    if schedule.paused:
        return "paused"
    fire = schedule.next_fire(now)
    return "never" if fire is None else until(fire - now)


def fire_time(schedule: Schedule, now: float) -> str:
    """The next fire time in the schedule's own zone, for `schedule add` and `resume`:
    '2026-12-02 09:00 Europe/Berlin (in 20h59m)'."""
    if schedule.paused:
        return "paused"
    fire = schedule.next_fire(now)
    if fire is None:
        return "never"
    moment = datetime.fromtimestamp(fire, ZoneInfo(schedule.tz))
    return f"{moment:%Y-%m-%d %H:%M} {schedule.tz} ({until(fire - now)})"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def schedules_table(schedules: Schedules) -> None:
    from queuectl import render_plain

    out = sys.stdout
    if not schedules.items:
        out.write("no schedules; add one with `queuectl schedule add NAME --cron EXPR -- CMD`\n")
        return
    rows = [
        [
            printable(schedule.name),
            schedule.cron,
            schedule.tz,
            next_text(schedule, schedules.now),
            printable(schedule.last_job_id or "-"),
            schedule.last_job_state or "-",
        ]
        for schedule in schedules.items
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADERS)]
    room = shutil.get_terminal_size().columns if out.isatty() else WIDTH
    if 1 + sum(widths) + 2 * (len(widths) - 1) > max(room, WIDTH):
        rows = [[_cut(cell, NARROW[i]) for i, cell in enumerate(row)] for row in rows]
    render_plain.table(out, rows, HEADERS)
