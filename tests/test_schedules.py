"""The pure cron logic (queuectl/schedules.py) on a clock the test sets: fire times across DST
transitions, the tick decision (one catch-up run for missed ticks, --no-overlap skips), and the
one-line errors for bad expressions, time zones and names."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from queuectl.errors import BadInput
from queuectl.schedules import (
    Cron,
    Schedule,
    Schedules,
    TickAction,
    due_tick,
    previous_unfinished,
    seconds_to_next,
    validate_cron,
    validate_name,
    validate_tz,
)

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: spring forward 29 March 02:00, back 25 October 03:00
NEW_YORK = ZoneInfo("America/New_York")  # 2026: forward 8 March 02:00, back 1 November 02:00


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    tz: ZoneInfo | None = None,
    fold: int = 0,
) -> float:
    """A timestamp from wall-clock time in `tz` (UTC when None); `fold=1` is the second
    occurrence of a wall time that a fall-back repeats."""
    zone = tz or UTC
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold).timestamp()


def wall(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def fires(cron: Cron, start: float, count: int) -> list[float]:
    times, moment = [], start
    for _ in range(count):
        nxt = cron.next_after(moment)
        assert nxt is not None
        times.append(nxt)
        moment = nxt
    return times


def schedule(cron: str = "* * * * *", tz: str = "UTC", **fields: Any) -> Schedule:
    """A schedule made at 12:00:30 UTC on 1 June 2026, with `fields` changed."""
    made = Schedule("s", cron, tz, {"command": "true"}, created_at=at(2026, 6, 1, 12, 0) + 30)
    return dataclasses.replace(made, **fields)


# --- fire times -------------------------------------------------------------------------------


def test_next_after_is_strictly_after_the_moment() -> None:
    cron = Cron.parse("*/15 * * * *")
    assert cron.next_after(at(2026, 6, 1, 12, 0)) == at(2026, 6, 1, 12, 15)
    assert cron.next_after(at(2026, 6, 1, 12, 0) - 0.5) == at(2026, 6, 1, 12, 0)
    assert cron.next_after(at(2026, 6, 1, 12, 14) + 59.9) == at(2026, 6, 1, 12, 15)


def test_a_zone_shifts_the_fire_time() -> None:
    cron = Cron.parse("0 9 * * *", "Europe/Berlin")
    assert cron.next_after(at(2026, 1, 10)) == at(2026, 1, 10, 8, 0)  # 09:00 CET
    assert cron.next_after(at(2026, 7, 10)) == at(2026, 7, 10, 7, 0)  # 09:00 CEST


def test_spring_forward_runs_a_job_of_the_skipped_hour_right_after_the_jump() -> None:
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    times = fires(cron, at(2026, 3, 28, 12, tz=BERLIN), 3)
    assert [wall(t, BERLIN) for t in times] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_fall_back_runs_a_daily_job_of_the_repeated_hour_once() -> None:
    cron = Cron.parse("30 1 * * *", "America/New_York")
    times = fires(cron, at(2026, 10, 31, 12, tz=NEW_YORK), 3)
    assert [wall(t, NEW_YORK) for t in times] == [
        "2026-11-01T01:30:00-04:00",  # the first 01:30 (EDT) only
        "2026-11-02T01:30:00-05:00",
        "2026-11-03T01:30:00-05:00",
    ]
    assert times[1] - times[0] == 25 * 3600


def test_an_hourly_job_runs_in_every_real_hour_across_both_transitions() -> None:
    cron = Cron.parse("0 * * * *", "Europe/Berlin")
    back = fires(cron, at(2026, 10, 25, 0, 30, tz=BERLIN), 5)
    assert [b - a for a, b in itertools.pairwise(back)] == [3600] * 4  # 02:00 twice
    assert [wall(t, BERLIN)[11:] for t in back][1:3] == ["02:00:00+02:00", "02:00:00+01:00"]
    forward = fires(cron, at(2026, 3, 29, 0, 30, tz=BERLIN), 3)
    assert [b - a for a, b in itertools.pairwise(forward)] == [3600] * 2
    assert [wall(t, BERLIN)[11:] for t in forward] == [
        "01:00:00+01:00",
        "03:00:00+02:00",  # 02:00 does not exist
        "04:00:00+02:00",
    ]


def test_every_minute_runs_every_real_minute_through_a_fall_back() -> None:
    cron = Cron.parse("* * * * *", "Europe/Berlin")
    start = at(2026, 10, 25, 2, 58, tz=BERLIN)  # CEST, one hour before the clocks go back
    times = fires(cron, start, 120)
    assert all(b - a == 60 for a, b in itertools.pairwise(times))
    assert times[-1] == start + 120 * 60


def test_nicknames_and_spacing_are_accepted() -> None:
    assert validate_cron("  0   3 * *  1-5 ") == "0 3 * * 1-5"
    assert Cron.parse("@daily").next_after(at(2026, 6, 1, 12)) == at(2026, 6, 2)
    assert Cron.parse("@HOURLY").next_after(at(2026, 6, 1, 12, 1)) == at(2026, 6, 1, 13)


# --- the tick decision ------------------------------------------------------------------------


def test_nothing_is_due_before_the_first_tick_after_creation() -> None:
    s = schedule()  # created 12:00:30
    assert due_tick(s, at(2026, 6, 1, 12, 0) + 59) is None
    tick = due_tick(s, at(2026, 6, 1, 12, 1))
    assert tick is not None and tick.fire_at == at(2026, 6, 1, 12, 1)
    assert tick.action is TickAction.ENQUEUE and tick.schedule == "s"


def test_a_tick_already_taken_is_not_due_again() -> None:
    s = schedule(last_fire_at=at(2026, 6, 1, 12, 1))
    assert due_tick(s, at(2026, 6, 1, 12, 1) + 59.9) is None
    tick = due_tick(s, at(2026, 6, 1, 12, 2) + 0.2)
    assert tick is not None and tick.fire_at == at(2026, 6, 1, 12, 2)


def test_missed_ticks_give_one_catch_up_run_at_the_latest_missed_tick() -> None:
    s = schedule("*/5 * * * *", last_fire_at=at(2026, 6, 1, 12, 5))
    now = at(2026, 6, 1, 15, 7)  # no engine from 12:05 to 15:07: 36 ticks missed
    tick = due_tick(s, now)
    assert tick is not None and tick.fire_at == at(2026, 6, 1, 15, 5)
    taken = dataclasses.replace(s, last_fire_at=tick.fire_at)
    assert due_tick(taken, now) is None  # the rest are not a burst
    assert due_tick(taken, at(2026, 6, 1, 15, 10)) is not None


def test_a_catch_up_after_a_long_outage_of_a_daily_job() -> None:
    s = schedule("0 2 * * *", "Europe/Berlin", last_fire_at=at(2026, 3, 20, 2, tz=BERLIN))
    tick = due_tick(s, at(2026, 3, 29, 9, tz=BERLIN))  # back on the day of the jump
    assert tick is not None
    assert wall(tick.fire_at, BERLIN) == "2026-03-29T03:00:00+02:00"  # 02:00 moved to 03:00


def test_the_catch_up_never_goes_before_the_schedule_was_made() -> None:
    s = schedule("0 0 1 1 *", created_at=at(2026, 6, 1))
    assert due_tick(s, at(2026, 12, 31, 23, 59)) is None
    tick = due_tick(s, at(2027, 1, 1, 0, 0) + 5)
    assert tick is not None and tick.fire_at == at(2027, 1, 1)


def test_the_tick_in_the_repeated_hour_is_taken_once() -> None:
    s = schedule("30 1 * * *", "America/New_York", created_at=at(2026, 10, 31, tz=NEW_YORK))
    first = at(2026, 11, 1, 1, 30, tz=NEW_YORK)  # EDT
    second = at(2026, 11, 1, 1, 30, tz=NEW_YORK, fold=1)  # EST, one hour later
    tick = due_tick(s, first + 1)
    assert tick is not None and tick.fire_at == first
    taken = dataclasses.replace(s, last_fire_at=first)
    assert due_tick(taken, second + 1) is None


def test_no_overlap_skips_while_the_previous_job_is_unfinished() -> None:
    now = at(2026, 6, 1, 12, 2) + 1
    for state in ("pending", "processing", "failed", "blocked"):
        s = schedule(no_overlap=True, last_job_id="j1", last_job_state=state)
        tick = due_tick(s, now)
        assert tick is not None and tick.action is TickAction.SKIP, state
        assert tick.fire_at == at(2026, 6, 1, 12, 2)
    for state in ("completed", "dead", "canceled", None):  # None: deleted, or no job yet
        s = schedule(no_overlap=True, last_job_id="j1", last_job_state=state)
        tick = due_tick(s, now)
        assert tick is not None and tick.action is TickAction.ENQUEUE, state


def test_without_no_overlap_an_unfinished_job_does_not_hold_a_tick() -> None:
    s = schedule(last_job_id="j1", last_job_state="processing")
    assert previous_unfinished(s)
    tick = due_tick(s, at(2026, 6, 1, 12, 2) + 1)
    assert tick is not None and tick.action is TickAction.ENQUEUE


def test_a_skipped_tick_is_not_retried() -> None:
    s = schedule(no_overlap=True, last_job_id="j1", last_job_state="processing")
    skipped = due_tick(s, at(2026, 6, 1, 12, 2) + 1)
    assert skipped is not None and skipped.action is TickAction.SKIP
    taken = dataclasses.replace(s, last_fire_at=skipped.fire_at, last_job_state="completed")
    assert due_tick(taken, at(2026, 6, 1, 12, 2) + 50) is None  # the job ended: still no rerun
    nxt = due_tick(taken, at(2026, 6, 1, 12, 3))
    assert nxt is not None and nxt.action is TickAction.ENQUEUE


def test_a_paused_schedule_is_never_due_and_has_no_next_fire() -> None:
    s = schedule(paused=True)
    assert due_tick(s, at(2026, 6, 2)) is None
    assert s.next_fire(at(2026, 6, 2)) is None


def test_next_fire_counts_from_now_or_the_last_tick() -> None:
    s = schedule("0 * * * *", last_fire_at=at(2026, 6, 1, 13))
    assert s.next_fire(at(2026, 6, 1, 12, 40)) == at(2026, 6, 1, 14)  # a clock behind the tick
    assert s.next_fire(at(2026, 6, 1, 15, 10)) == at(2026, 6, 1, 16)
    board = Schedules(now=at(2026, 6, 1, 15, 10), items=(s, schedule("*/20 * * * *")))
    assert seconds_to_next(board) == 600  # 15:20
    assert seconds_to_next(Schedules(now=0.0, items=(schedule(paused=True),))) is None


# --- bad input: one line, naming what was wrong -----------------------------------------------


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("61 * * * *", "bad minute field"),
        ("* 24 * * *", "bad hour field"),
        ("* * 0 * *", "bad day-of-month field"),
        ("* * * 13 *", "bad month field"),
        ("* * * * 8", "bad day-of-week field"),
        ("a b c d e", "bad minute field"),
        ("* * *", "3 fields"),
        ("* * * * * *", "6 fields"),  # cronsim's seconds field is not cron's
        ("@reboot", "1 field"),
        ("", "empty"),
        ("0 0 31 4 *", "bad day-of-month field"),  # 31 April
        ("*\t* * *\n*", None),  # whitespace is spacing: valid
        ("* * * * \x00", "invalid cron expression"),
        ("１ * * * *", "invalid cron expression"),  # a full-width digit
        ("*/0 * * * *", "bad minute field"),
    ],
)
def test_bad_cron_expressions_are_one_line_bad_input(expr: str, says: str | None) -> None:
    if says is None:
        assert validate_cron(expr) == "* * * * *"
        return
    with pytest.raises(BadInput) as caught:
        validate_cron(expr)
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "5 fields" in message  # and what to do


def test_a_cron_expression_must_be_text() -> None:
    with pytest.raises(BadInput, match="must be text"):
        validate_cron(5)


@pytest.mark.parametrize(
    "tz", ["Mars/Olympus", "", "europe/berlin ", "../../etc/passwd", "/etc/localtime", "Europe"]
)
def test_bad_time_zones_are_one_line_bad_input(tz: str) -> None:
    with pytest.raises(BadInput, match="unknown time zone") as caught:
        validate_tz(tz)
    assert "\n" not in str(caught.value)


def test_good_time_zones() -> None:
    assert validate_tz("UTC") == "UTC"
    assert validate_tz("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"
    assert Cron.parse("0 0 * * *", "Asia/Kolkata").next_after(at(2026, 6, 1)) == at(
        2026, 6, 1, 18, 30
    )  # midnight IST is 18:30 UTC the day before


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "ü", "a/b", None])
def test_bad_schedule_names(name: object) -> None:
    with pytest.raises(BadInput, match="invalid schedule name"):
        validate_name(name)
    assert validate_name("nightly.report_2-x") == "nightly.report_2-x"
