"""The dashboard's parts on their own (issue 12): output cleaning, statistics, the page cursor,
--bind, the Host check, the broadcaster's handling of a slow client, and the metrics' count of
finished jobs; and `queuectl status` showing the execution statistics."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re

import pytest
from engine_process import StartEngine
from helpers import Backend, Cli

from queuectl.cli.web import parse_bind
from queuectl.errors import BadInput
from queuectl.models import Job
from queuectl.service import stats
from queuectl.service.dashboard import Cursor
from queuectl.states import JobState
from queuectl.web.metrics import FinishTracker
from queuectl.web.security import Guard, split_host
from queuectl.web.sse import CLIENT_BUFFER, Broadcaster
from queuectl.web.text import Cleaner, clean

NOW = 1_800_000_000.0


def job(job_id: str, state: JobState, finished: float, ran: float = 1.0, **fields: object) -> Job:
    values: dict[str, object] = dict(
        id=job_id, command="true", state=state, priority=0, max_retries=0, timeout=None,
        cwd="/", env={}, attempts=1, runs=1, created_at=finished - ran - 5, updated_at=finished,
        run_at=finished - ran - 5, next_run_at=finished - ran - 5, last_error=None,
        exit_code=0, started_at=finished - ran, finished_at=finished, lease_owner=None,
        lease_expires_at=None, pid=None,
    )  # fmt: skip
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


def test_output_is_cleaned_of_escapes_even_split_across_chunks() -> None:
    assert clean(b"\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok\r\n\x07bell\xff") == "red ok\nbell\ufffd"
    cleaner = Cleaner()
    parts = [b"a\x1b[3", b"1mb\x1b", b"[0mc \xe2\x82", b"\xac"]
    assert "".join(cleaner.feed("stdout", part) for part in parts) == "abc €"
    assert cleaner.feed("stderr", b"<b>") == "<b>"  # escaping is the templates' job


def test_statistics_count_the_last_minute_and_hour_with_mean_and_p95() -> None:
    jobs = [job(f"c{n}", JobState.COMPLETED, NOW - 10 - n, ran=float(n + 1)) for n in range(20)]
    jobs += [job("f1", JobState.DEAD, NOW - 120), job("f2", JobState.FAILED, NOW - 30)]
    jobs += [job("x", JobState.CANCELED, NOW - 5), job("old", JobState.COMPLETED, NOW - 4000)]
    found = stats.compute(jobs, NOW)
    assert (found.completed_minute, found.failed_minute) == (20, 1)
    assert (found.completed_hour, found.failed_hour) == (20, 2)
    assert found.throughput == 21
    assert found.p95_duration == 19.0  # nearest rank: the 21st of 22 durations (1..20, 1, 1)
    assert found.mean_duration == pytest.approx((sum(range(1, 21)) + 2) / 22)
    assert len(found.minutes) == 60
    assert sum(m.completed for m in found.minutes) == 20
    assert found.minutes[-1].start <= NOW < found.minutes[-1].start + 60
    assert stats.compute([], NOW).p95_duration is None
    assert stats.percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_the_page_cursor_and_bind_are_parsed_with_one_line_errors() -> None:
    cursor = Cursor(1712.25, "job:1")
    assert Cursor.parse(cursor.token()) == cursor
    for bad in ("", "x~job", "nan~job", "12.5", "inf~j"):
        with pytest.raises(BadInput, match="cursor"):
            Cursor.parse(bad)
    assert parse_bind("127.0.0.1:8421") == ("127.0.0.1", 8421)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_bind(":9000") == ("", 9000)
    for bad in ("nowhere", "127.0.0.1:99999", "example.com:80", "127.0.0.1:"):
        with pytest.raises(BadInput, match="--bind"):
            parse_bind(bad)


def test_the_host_allow_list() -> None:
    assert split_host("[::1]:8421") == ("::1", 8421)
    assert split_host("example") == ("example", None)
    local = Guard("127.0.0.1", 8421, None)
    assert local.host_allowed("127.0.0.1:8421") and local.host_allowed("localhost:8421")
    assert not local.host_allowed("127.0.0.1:8422")  # another port: another origin
    assert not local.host_allowed("attacker.example:8421")
    assert not local.host_allowed(None)
    anywhere = Guard("0.0.0.0", 80, "t" * 20)
    assert anywhere.host_allowed("10.1.2.3") and not anywhere.host_allowed("attacker.example")


async def test_a_slow_client_is_dropped_and_the_others_go_on() -> None:
    counter = 0

    async def produce() -> dict[str, str]:
        nonlocal counter
        counter += 1
        return {"counts": f"<b>{counter}</b>"}

    async def changed(timeout: float) -> bool:
        await asyncio.sleep(0)
        return True  # a queue that changes all the time

    broadcaster = Broadcaster(produce, changed, debounce=0.001)
    slow, fast = broadcaster.subscribe(), broadcaster.subscribe()
    received = 0
    task = asyncio.create_task(broadcaster.run())
    try:
        while received < CLIENT_BUFFER + 5:  # the fast one reads; the slow one never does
            await asyncio.wait_for(fast.ready.wait(), 5)
            fast.ready.clear()
            received += len(fast.messages)
            fast.messages.clear()
        assert slow.dropped and slow not in broadcaster.clients
        assert not fast.dropped and fast in broadcaster.clients
        assert (asyncio.get_running_loop().time()) > 0.2 and counter >= CLIENT_BUFFER
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    broadcaster.unsubscribe(fast)
    assert not broadcaster.clients


def test_the_metrics_count_each_finished_job_once() -> None:
    tracker = FinishTracker(since=NOW - 100)
    first = [job("a", JobState.COMPLETED, NOW - 50), job("b", JobState.DEAD, NOW - 40)]
    tracker.add(first)
    tracker.add(first)  # read again by the next scrape's overlap
    assert tracker.finished == {"completed": 1, "failed": 0, "dead": 1, "canceled": 0}
    again = dataclasses.replace(first[0], runs=2, started_at=NOW - 11, finished_at=NOW - 10)
    tracker.add([again, job("old", JobState.COMPLETED, NOW - 500)])
    assert tracker.finished["completed"] == 2
    assert tracker.durations["completed"].total == pytest.approx(2.0)
    assert tracker.wait.counts[-1] == 0 and sum(tracker.wait.counts) == 2
    assert math.isclose(tracker.since, NOW - 10 - 30)


def test_status_shows_the_execution_statistics(
    cli: Cli, backend: Backend, engines: StartEngine
) -> None:
    cli("enqueue", "--id", "ok1", "--", "true", check=True)
    cli("enqueue", "--id", "ok2", "--", "sleep 0.2", check=True)
    cli("enqueue", "--id", "bad", "--max-retries", "0", "--", "exit 3", check=True)
    engines("--until-empty", "-q").wait()
    text = cli("status", check=True).stdout
    assert "last minute: 2 completed, 1 failed; last hour: 2 completed, 1 failed" in text, text
    match = re.search(
        r"durations: mean (\S+), p95 (\S+) \(last hour\); throughput 3 jobs/min", text
    )
    assert match, text
    assert match.group(2).endswith("ms") and int(match.group(2)[:-2]) >= 200, text
