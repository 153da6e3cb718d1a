"""`queuectl list` through the real CLI: filters (--state, --grep, --since/--until), --sort,
the "showing N of M" line, the table at 80 columns, streamed --json parsed back, and every
refusal. Queues are filled in-process through the Store, with exact creation times."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime

import pytest
from helpers import (
    Backend,
    Cli,
    ManualClock,
    assert_one_line_error,
    failure,
    finish,
    in_store_with,
    make_dead,
    queue_snapshot,
    seed,
    spec,
)
from test_cli import JOB_KEYS

from queuectl.models import Outcome
from queuectl.store import Store

NOW = time.time()
MINUTE = 60.0
#: the jobs `fill` makes, newest first, with how long before NOW each was created
NEWEST_FIRST = ["now-1", "soon", "label-1", "cancel-1", "done-1", "fail-1", "old-dead"]
LONG_COMMAND = "./render.sh " + " ".join(f"--frame={n}" for n in range(40))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


def ids(cli: Cli, *args: str) -> list[str]:
    jobs = json.loads(ok(cli("list", "--json", *args)))
    return [job["id"] for job in jobs]


def fill(backend: Backend) -> None:
    """One job in each state, created minutes apart, some with a label or an error."""
    clock = ManualClock(NOW - 180 * MINUTE)

    async def make(store: Store) -> None:
        await make_dead(store, ["old-dead"])  # error "exit code 1", tries 1/1
        clock.now = NOW - 120 * MINUTE
        await store.enqueue([spec("flaky.sh", id="fail-1", max_retries=3)])
        [job] = await store.claim("test-engine", 1, 30.0)
        assert await finish(store, job, failure(error="exit code 2"), retry_delay=180 * MINUTE)
        clock.now = NOW - 60 * MINUTE
        await store.enqueue([spec(LONG_COMMAND, id="done-1")])
        [job] = await store.claim("test-engine", 1, 30.0)
        assert await finish(store, job, Outcome(None, exit_code=0))
        clock.now = NOW - 30 * MINUTE
        await store.enqueue([spec("sleep 100", id="cancel-1", run_at=NOW + 600 * MINUTE)])
        await store.cancel("cancel-1")
        clock.now = NOW - 10 * MINUTE
        await store.enqueue([spec("backup.sh /data", id="label-1", label="Nightly Build")])
        clock.now = NOW - 5 * MINUTE
        await store.enqueue([spec("true", id="soon", run_at=NOW + MINUTE)])
        clock.now = NOW - MINUTE
        await store.enqueue([spec("printf '\x1b[31mred'", id="now-1")])

    in_store_with(backend, make, clock=clock)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# --- the JSON: one valid array, every key -----------------------------------------------------


def test_json_is_one_array_of_every_job(cli: Cli, backend: Backend) -> None:
    fill(backend)
    jobs = json.loads(ok(cli("list", "--json")))
    assert [job["id"] for job in jobs] == NEWEST_FIRST
    assert all(set(job) == JOB_KEYS for job in jobs)
    by_id = {job["id"]: job for job in jobs}
    assert by_id["label-1"]["label"] == "Nightly Build"
    assert by_id["old-dead"]["state"] == "dead"
    assert by_id["fail-1"]["last_error"] == "exit code 2"


def test_json_of_nothing(cli: Cli, backend: Backend) -> None:
    seed(backend)
    assert ok(cli("list", "--json")) == "[]\n"
    assert json.loads(ok(cli("list", "--json", "--state", "dead"))) == []


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "pending"], ["now-1", "soon", "label-1"]),
        (["--state", "pending", "--state", "dead"], ["now-1", "soon", "label-1", "old-dead"]),
        (["--state", "pending,dead"], ["now-1", "soon", "label-1", "old-dead"]),
        (["--state", "FAILED, dead"], ["fail-1", "old-dead"]),
        (["--state", "completed,canceled,processing"], ["cancel-1", "done-1"]),
        (["--state", "processing"], []),
        (["--grep", "Nightly"], ["label-1"]),  # the label
        (["--grep", "nightly"], []),  # exact case, like grep
        (["--grep", "backup.sh"], ["label-1"]),  # the command
        (["--grep", "done-"], ["done-1"]),  # the id
        (["--grep", "--frame=39"], ["done-1"]),
        (["--grep", "e", "--state", "dead"], ["old-dead"]),
        (["--since", "90m"], ["now-1", "soon", "label-1", "cancel-1", "done-1"]),
        (["--until", "45m"], ["done-1", "fail-1", "old-dead"]),
        (["--since", "2h30m", "--until", "45m"], ["done-1", "fail-1"]),
        (["--since", iso(NOW - 20 * MINUTE)], ["now-1", "soon", "label-1"]),
        (["--until", iso(NOW - 20 * MINUTE), "--state", "canceled"], ["cancel-1"]),
        (["--limit", "2"], ["now-1", "soon"]),
        (["--state", "pending", "--limit", "1"], ["now-1"]),
    ],
)
def test_filters(cli: Cli, backend: Backend, args: list[str], expected: list[str]) -> None:
    fill(backend)
    assert ids(cli, *args) == expected


def test_sort_next_run(cli: Cli, backend: Backend) -> None:
    """Waiting jobs soonest due first (an overdue one before one due later), then the rest
    newest first."""
    fill(backend)
    assert ids(cli, "--sort", "next-run") == [
        "label-1",  # due since 10 minutes
        "now-1",  # due since a minute
        "soon",  # due in a minute
        "fail-1",  # its retry is due in an hour
        "cancel-1",
        "done-1",
        "old-dead",
    ]
    assert ids(cli, "--sort", "next-run", "--state", "failed,pending", "--limit", "2") == [
        "label-1",
        "now-1",
    ]
    assert ids(cli, "--sort", "created", "--limit", "1") == ["now-1"]


# --- the table ----------------------------------------------------------------------------------


def test_table_says_how_many_it_did_not_show(cli: Cli, backend: Backend) -> None:
    fill(backend)
    table = ok(cli("list", "--limit", "3"))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["ID", "STATE"]
    assert [line.split()[0] for line in lines[1:4]] == NEWEST_FIRST[:3]
    assert lines[4:] == ["showing 3 of 7 (--limit N for more)"]
    filtered = ok(cli("list", "--state", "pending", "--limit", "1")).splitlines()
    assert filtered[-1] == "showing 1 of 3 (--limit N for more)"
    assert "showing" not in ok(cli("list", "--limit", "7"))
    assert "showing" not in ok(cli("list", "--json", "--limit", "3"))


def test_table_at_80_columns_keeps_id_state_tries_and_error(cli: Cli, backend: Backend) -> None:
    fill(backend)
    table = ok(cli("list", env={"COLUMNS": "80"}))
    lines = table.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert re.match(r"ID\s+STATE\s+.*TRIES\s+.*COMMAND\s+LAST ERROR$", lines[0])
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == NEWEST_FIRST
    assert re.search(r"\bdead\s+(\d+\s+)?1/1\b.*exit code 1$", rows["old-dead"])
    assert re.search(r"\bfailed\s+(\d+\s+)?1/4\b.*exit code 2$", rows["fail-1"])
    assert rows["done-1"].endswith("./render.sh --frame…")
    assert "--frame=39" not in table  # the command is what gave way


def test_table_at_80_columns_with_generated_ids_and_long_errors(cli: Cli, backend: Backend) -> None:
    error = "exit code 127: sh: 1: convert: not found (see the job's stderr)"

    async def make(store: Store) -> None:
        await store.enqueue(
            [
                spec(LONG_COMMAND, id=f"{n}bcdefghjkmn", max_retries=0, label="batch")
                for n in range(3)
            ]
        )
        for job in await store.claim("test-engine", 3, 30.0):
            assert await finish(store, job, failure(code=127, error=error))

    in_store_with(backend, make, clock=ManualClock(NOW))
    lines = ok(cli("list", env={"COLUMNS": "80"})).splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for n, line in enumerate(lines[1:]):
        assert re.match(rf"{2 - n}bcdefghjkmn  dead\s.*\b1/1\s.*exit code 127: sh: 1", line), line


def test_table_when_wide_shows_every_column(cli: Cli, backend: Backend) -> None:
    fill(backend)
    lines = ok(cli("list", env={"COLUMNS": "200"})).splitlines()
    assert lines[0].split() == [
        "ID", "STATE", "PRI", "TRIES", "CREATED", "NEXT", "RUN", "LABEL", "COMMAND", "LAST",
        "ERROR",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "Nightly Build" in rows["label-1"]
    assert re.search(r"\bin 5\dm\d\ds\b", rows["fail-1"])  # its retry, in the NEXT RUN column
    assert "./render.sh --frame=0 --frame=1 --frame=2" in rows["done-1"]  # more room
    assert "\\x1b[31mred" in rows["now-1"]  # control characters shown, not sent to the terminal
    assert "\x1b" not in "\n".join(lines)


def test_table_of_nothing(cli: Cli, backend: Backend) -> None:
    seed(backend)
    assert ok(cli("list")) == "no jobs\n"
    fill(backend)
    assert ok(cli("list", "--grep", "no such text")) == "no jobs match\n"


# --- long listings stream, page after page ----------------------------------------------------


def test_long_listing_pages_through_jobs_of_one_instant(cli: Cli, backend: Backend) -> None:
    """12,000 jobs enqueued in one transaction share their creation time: the listing still
    gives each once, in the order of enqueue reversed, across the store's pages."""
    clock = ManualClock(NOW)

    async def enqueue(store: Store) -> list[str]:
        return await store.enqueue([spec(f"echo {n}", id=f"j{n:05d}") for n in range(12_000)])

    enqueued = in_store_with(backend, enqueue, clock=clock)
    assert ids(cli, "--limit", "1000000") == enqueued[::-1]
    table = ok(cli("list", "--limit", "11000")).splitlines()
    assert len(table) == 1 + 11_000 + 1
    assert [line.split()[0] for line in table[1:3]] == ["j11999", "j11998"]
    assert table[-2].split()[0] == "j01000"
    assert table[-1] == "showing 11,000 of 12,000 (--limit N for more)"


# --- refusals: exit 2 (or 1 for a missing queue), one line, nothing changed -------------------

REFUSED: list[tuple[str, list[str], str]] = [
    ("unknown state", ["--state", "bogus"], "unknown state 'bogus'; use one of: blocked, pending"),
    ("unknown state in a list", ["--state", "pending,bogus"], "unknown state 'bogus'"),
    ("empty state in a list", ["--state", "pending,"], "unknown state ''"),
    ("empty grep", ["--grep", ""], "--grep is empty"),
    ("bad since", ["--since", "soon"], "--since: invalid time 'soon'"),
    ("since without timezone", ["--since", "2026-01-31T09:00:00"], "no timezone"),
    ("bad until", ["--until", "5 minutes"], "--until: invalid time"),
    ("since after until", ["--since", "1h", "--until", "2h"], "--since '1h' is not before"),
    ("unknown sort", ["--sort", "priority"], "priority"),
    ("zero limit", ["--limit", "0"], "limit"),
    ("limit too big", ["--limit", "1000001"], "limit"),
]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(args, fragment) for _, args, fragment in REFUSED],
    ids=[case for case, _, _ in REFUSED],
)
def test_refused(cli: Cli, backend: Backend, args: list[str], fragment: str) -> None:
    seed(backend, pending=["p1"], dead=["d1"])
    before = queue_snapshot(backend)
    for form in ([], ["--json"]):
        result = cli("list", *args, *form)
        assert fragment in assert_one_line_error(result, 2)
        assert result.stdout == ""
    assert queue_snapshot(backend) == before


def test_a_missing_queue_is_not_created(backend: Backend, cli: Cli) -> None:
    if backend.db is not None:
        pytest.skip("a queue home without a database is an SQLite matter")
    for args in (["list"], ["list", "--json"]):
        message = assert_one_line_error(cli(*args), 1)
        assert f"no queue at '{backend.home / 'queue.db'}'" in message
    assert not backend.exists()
