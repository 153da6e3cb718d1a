"""The real CLI managing cron schedules on both backends: add, list (table and --json), pause,
resume, remove, every error path (one line, exit 2, nothing changed), and a real engine taking
a schedule's catch-up tick at once (one job, not a burst)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from engine_process import StartEngine, list_jobs
from helpers import Backend, Cli, ManualClock, assert_one_line_error, in_store_with, wait_for
from test_startup import heavy, imported

from queuectl.schedules import Schedule

KEYS = {
    "name",
    "cron",
    "tz",
    "no_overlap",
    "paused",
    "next_fire_at",
    "last_fire_at",
    "last_job_id",
    "last_job_state",
    "created_at",
    "job",
}
JOB_KEYS = {"command", "cwd", "env", "priority", "max_retries", "timeout", "label", "queue"}


def schedules(cli: Cli) -> list[dict[str, Any]]:
    result = cli("schedule", "list", "--json", check=True)
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def when(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_add_then_list(cli: Cli) -> None:
    added = cli(
        "schedule", "add", "report", "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin",
        "--priority", "4", "--max-retries", "0", "--timeout", "5m", "--env", "MODE=full",
        "--cwd", "/tmp", "--queue", "reports", "--", "make", "report", check=True,
    )  # fmt: skip
    assert added.stdout.startswith("added schedule report; next fire 20")
    assert "Europe/Berlin (in " in added.stdout and added.stdout.count("\n") == 1
    cli("schedule", "add", "every", "--cron", "* * * * *", "--no-overlap", "--", "date", check=True)
    [every, report] = schedules(cli)
    assert set(report) == KEYS and set(report["job"]) == JOB_KEYS
    assert (report["name"], report["cron"], report["tz"]) == (
        "report",
        "0 9 * * 1-5",
        "Europe/Berlin",
    )
    assert report["job"] == {
        "command": "make report",
        "cwd": "/tmp",
        "env": {"MODE": "full"},
        "priority": 4,
        "max_retries": 0,
        "timeout": 300.0,
        "label": None,
        "queue": "reports",
    }
    assert every["job"]["queue"] == "default"
    assert report["no_overlap"] is False and every["no_overlap"] is True
    assert report["paused"] is False and report["last_job_id"] is None
    assert report["last_fire_at"] is None and report["last_job_state"] is None
    nxt = when(every["next_fire_at"])
    assert nxt % 60 == 0 and 0 < nxt - time.time() <= 61
    assert every["next_fire_at"].endswith("+00:00")  # ISO 8601 UTC
    assert when(report["next_fire_at"]) > time.time()


def test_the_table_fits_80_columns(cli: Cli) -> None:
    cli("schedule", "add", "short", "--cron", "@hourly", "--", "true", check=True)
    long_name = "a-rather-long-schedule-name-for-the-nightly-report"
    cli(
        "schedule", "add", long_name, "--cron", "0,15,30,45 0-6,18-23 1-15 1-6,9-12 1-5",
        "--tz", "America/Argentina/Buenos_Aires", "--", "true", check=True,
    )  # fmt: skip
    cli("schedule", "pause", "short", check=True)
    table = cli("schedule", "list", check=True).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "CRON", "TZ", "NEXT", "LAST", "JOB", "STATE"]
    assert max(len(line) for line in lines) <= 80, table
    assert "paused" in table and "…" in table  # the long cells were cut
    assert any(line.split()[0] == "short" for line in lines[1:])


def test_an_empty_list(cli: Cli) -> None:
    cli("enqueue", "--", "true", check=True)  # the queue exists
    assert schedules(cli) == []
    assert "no schedules" in cli("schedule", "list", check=True).stdout


def test_pause_resume_remove(cli: Cli) -> None:
    cli("schedule", "add", "s", "--cron", "*/5 * * * *", "--", "true", check=True)
    assert cli("schedule", "pause", "s", check=True).stdout == "paused schedule s\n"
    [paused] = schedules(cli)
    assert paused["paused"] is True and paused["next_fire_at"] is None
    resumed = cli("schedule", "resume", "s", check=True).stdout
    assert resumed.startswith("resumed schedule s; next fire ") and "UTC (in " in resumed
    [again] = schedules(cli)
    assert again["paused"] is False and when(again["next_fire_at"]) % 300 == 0
    assert cli("schedule", "remove", "s", check=True).stdout == "removed schedule s\n"
    assert schedules(cli) == []


def test_errors_are_one_line_and_change_nothing(cli: Cli) -> None:
    cli("schedule", "add", "taken", "--cron", "0 0 * * *", "--", "true", check=True)
    before = schedules(cli)
    for args, says in [
        (("add", "x", "--cron", "61 * * * *", "--", "true"), "bad minute field"),
        (("add", "x", "--cron", "* * * *", "--", "true"), "4 fields"),
        (("add", "x", "--cron", "* * * * * *", "--", "true"), "6 fields"),
        (("add", "x", "--cron", "* * * * *", "--tz", "Mars/Base", "--", "true"), "time zone"),
        (("add", "bad name", "--cron", "* * * * *", "--", "true"), "invalid schedule name"),
        (("add", "taken", "--cron", "* * * * *", "--", "true"), "already exists"),
        (("add", "x", "--cron", "* * * * *"), "needs a command"),
        (("add", "x", "--cron", "* * * * *", '{"command": "true"}'), "not a JSON job"),
        (("add", "x", "--cron", "* * * * *", "--timeout", "soon", "--", "true"), "timeout"),
        (("add", "x", "--cron", "* * * * *", "--priority", "x", "--", "true"), "priority"),
        (("add", "x", "--", "true"), "--cron"),
        (("add", "x", "--cron", "* * * * *", "--queue", "a b", "--", "true"), "queue"),
        (("add", "x", "--cron", "* * * * *", "--cwd", "/no/such/dir", "--", "true"), "--cwd"),
        (("remove", "nope"), "schedule 'nope' not found"),
        (("pause", "nope"), "schedule 'nope' not found"),
        (("resume", "nope"), "schedule 'nope' not found"),
    ]:
        message = assert_one_line_error(cli("schedule", *args), 2)
        assert says in message, (args, message)
    assert schedules(cli) == before


def test_list_on_no_queue_creates_none(cli: Cli, backend: Backend) -> None:
    if backend.name != "sqlite":
        return  # a PostgreSQL test database exists from the start
    message = assert_one_line_error(cli("schedule", "list"), 1)
    assert "no queue at" in message and not backend.exists()


def test_an_engine_takes_the_catch_up_tick_at_once(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    """A schedule made 10 minutes ago by the store's clock (as if no engine had run since):
    the engine enqueues its latest missed tick when it starts, once, and runs it."""
    past = ManualClock(time.time() - 600)

    async def add(store: Any) -> None:
        job = {"command": "echo caught-up", "cwd": "/"}
        await store.add_schedule(Schedule("late", "* * * * *", "UTC", job))

    if time.time() % 60 > 50:  # the next minute's own tick would come within the test
        time.sleep(61 - time.time() % 60)
    in_store_with(backend, add, clock=past)
    started = time.time()
    engines("-c", "2")

    def done() -> list[dict[str, Any]] | None:
        jobs = list_jobs(cli)
        return jobs if jobs and all(job["state"] == "completed" for job in jobs) else None

    jobs = wait_for(done, 30)
    time.sleep(1.5)  # a second pass of the scheduler would show a burst by now
    jobs = list_jobs(cli)
    assert [job["label"] for job in jobs] == ["schedule:late"]
    [listed] = schedules(cli)
    assert listed["last_job_id"] == jobs[0]["id"] and listed["last_job_state"] == "completed"
    fired = when(listed["last_fire_at"])
    assert fired % 60 == 0 and started - 61 < fired <= started + 60


def test_only_the_commands_that_compute_a_fire_time_import_cronsim(tmp_path: Path) -> None:
    home = tmp_path / "q"
    assert "cronsim" not in imported(home, "enqueue", "--", "true")
    assert "cronsim" not in imported(home, "status")
    assert "cronsim" not in imported(home, "schedule", "list")  # none to compute
    assert "cronsim" in imported(home, "schedule", "add", "s", "--cron", "@daily", "--", "true")
    assert heavy(imported(home, "schedule", "list")) == []
