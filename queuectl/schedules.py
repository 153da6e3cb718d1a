"""Cron schedules, pure: parsing a 5-field cron expression and a time zone, the fire times they
give, and the tick decision an engine applies (no I/O, no clock: "now" is always passed in).

Fire times come from cronsim, which matches Debian's cron, DST quirks included: a job due in the
hour that a spring-forward skips runs right after the jump, one due in the hour a fall-back
repeats runs once; jobs that run every minute or hour run in every real minute or hour. It is
imported only where a fire time is computed, so that commands that never compute one (and
importing this module from the store) stay fast to start.

Times are POSIX timestamps (floats) in and out; a time zone is an IANA name kept as text, so
that every engine, on any host whatever its own zone, reads a schedule the same.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from queuectl.errors import BadInput

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from queuectl.models import JobSpec

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_TZ = "UTC"
MAX_CRON = 200  # characters
#: the nicknames of Vixie cron that are fixed times (@reboot is not one: it has no fire time)
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_HELP = "use 5 fields: minute hour day-of-month month day-of-week (e.g. '*/15 * * * *')"
#: forward steps at most when confirming the latest tick (only DST fix-ups come after the
#: reverse search's answer, a few at most)
_MAX_STEPS = 1000
#: the latest ticks kept per schedule: a record of what each tick did; older ones guard nothing
KEEP_TICKS = 100


def validate_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise BadInput(
            f"invalid schedule name {value!r}; use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_cron(value: Any) -> str:
    """The expression with its fields separated by one space (a nickname as it was given);
    BadInput naming the bad field, for any input."""
    if not isinstance(value, str):
        raise BadInput(f"the cron expression must be text, not {type(value).__name__}")
    text = " ".join(value.split())
    if not text:
        raise BadInput(f"the cron expression is empty; {CRON_HELP}")
    if len(text) > MAX_CRON or not text.isascii() or not text.isprintable():
        raise BadInput(f"invalid cron expression {value!r}; {CRON_HELP}")
    expr = NICKNAMES.get(text.lower(), text)
    fields = expr.split(" ")
    if len(fields) != 5:
        raise BadInput(
            f"invalid cron expression {value!r}: {len(fields)} field"
            f"{'' if len(fields) == 1 else 's'}; {CRON_HELP}"
        )
    from cronsim import CronSim, CronSimError

    start = datetime(2000, 1, 1)  # naive: only the fields are checked here
    try:
        next(CronSim(expr, start))
    except CronSimError as exc:
        what = str(exc).removeprefix("Bad ").lower()
        raise BadInput(
            f"invalid cron expression {value!r}: bad {what} field; {CRON_HELP}"
        ) from None
    except StopIteration:
        raise BadInput(
            f"cron expression {value!r} never fires (no such date); {CRON_HELP}"
        ) from None
    except (ValueError, IndexError, KeyError, TypeError):  # anything else cronsim trips on
        raise BadInput(f"invalid cron expression {value!r}; {CRON_HELP}") from None
    return text


def validate_tz(value: Any) -> str:
    """An IANA time zone name (Europe/Berlin, UTC) that this machine's tz database knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str) or not value or not value.isascii() or value != value.strip():
        raise BadInput(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin or UTC")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadInput(
            f"unknown time zone {value!r}; use an IANA name like Europe/Berlin or UTC "
            "(see /usr/share/zoneinfo)"
        ) from None
    return value


@dataclass(frozen=True, slots=True)
class Cron:
    """A validated cron expression in a time zone; the fire times it gives."""

    expr: str
    tz: str = DEFAULT_TZ

    @classmethod
    def parse(cls, expr: Any, tz: Any = DEFAULT_TZ) -> Cron:
        return cls(validate_cron(expr), validate_tz(tz))

    def _zone(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.tz)

    def _fields(self) -> str:
        return NICKNAMES.get(self.expr.lower(), self.expr)

    def next_after(self, moment: float) -> float | None:
        """The first fire time strictly after `moment` (None: none within 50 years)."""
        from cronsim import CronSim

        start = datetime.fromtimestamp(math.floor(moment), self._zone())
        try:
            return next(CronSim(self._fields(), start)).timestamp()
        except StopIteration:
            return None

    def latest_at(self, moment: float, after: float) -> float | None:
        """The last fire time at or before `moment` and strictly after `after`, or None.

        A reverse search finds the last matching time; fire times are then confirmed going
        forward from just before it, so that the answer is always one of the times that
        `next_after` gives (the forward walk is what moves a tick out of a skipped DST hour).
        """
        from cronsim import CronSim

        if moment <= after:
            return None
        zone = self._zone()
        fields = self._fields()
        try:
            found = next(
                CronSim(fields, datetime.fromtimestamp(math.floor(moment) + 1, zone), reverse=True)
            ).timestamp()
        except StopIteration:
            found = None
        start = after if found is None else max(after, found - 1)
        latest = None
        forward = CronSim(fields, datetime.fromtimestamp(math.floor(start), zone))
        for _ in range(_MAX_STEPS):
            try:
                fire = next(forward).timestamp()
            except StopIteration:
                break
            if fire > moment:
                break
            if fire > after:
                latest = fire
        return latest


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as stored: when it fires, the job it enqueues (`job`: the JSON fields of a
    job spec, as `enqueue` takes them), and what it did last. Times are timestamps."""

    name: str
    cron: str
    tz: str
    job: dict[str, Any]
    no_overlap: bool = False
    paused: bool = False
    created_at: float = 0.0
    last_fire_at: float | None = None  # the last tick taken, enqueued or skipped
    last_job_id: str | None = None
    #: the state of that job now (a JobState's value); None: no job yet, or it was deleted
    last_job_state: str | None = None

    @property
    def timing(self) -> Cron:
        return Cron(self.cron, self.tz)

    def job_spec(self) -> JobSpec:
        """The job a tick enqueues (a new id each time), checked by the rules of `enqueue`;
        labelled `schedule:NAME` unless the schedule gives a label, so `list --grep` finds it."""
        from queuectl.specs import spec_from_dict

        fields = dict(self.job)
        fields.pop("id", None)
        fields.setdefault("label", f"schedule:{self.name}")
        return spec_from_dict(fields, str(fields.get("cwd") or "/"))

    @property
    def anchor(self) -> float:
        """Ticks after this are due: the last one taken, else the schedule's creation."""
        return self.created_at if self.last_fire_at is None else self.last_fire_at

    def next_fire(self, now: float) -> float | None:
        """When it fires next, as `schedule list` shows it: None while paused. A tick missed
        while no engine ran counts from now on, as the catch-up run starts at once."""
        if self.paused:
            return None
        return self.timing.next_after(max(now, self.anchor))


@dataclass(frozen=True, slots=True)
class Schedules:
    """Every schedule, and the store's "now" when they were read (the database's clock)."""

    now: float
    items: tuple[Schedule, ...] = field(default_factory=tuple)


class Fired(NamedTuple):
    """What a store did with a tick: `taken` False when another engine took it (or a later
    one) first, or the schedule was paused or removed meanwhile; the job it enqueued."""

    taken: bool
    job_id: str | None = None


class TickAction(enum.StrEnum):
    ENQUEUE = "enqueue"
    SKIP = "skip"  # --no-overlap, the previous job unfinished: taken, so never tried again


@dataclass(frozen=True, slots=True)
class Tick:
    schedule: str
    fire_at: float
    action: TickAction


#: the job states in which a job is over (states.FINISHED), by value: no import of states here
_OVER = frozenset({"completed", "dead", "canceled"})


def previous_unfinished(schedule: Schedule) -> bool:
    """Whether the schedule's last job may still run (a deleted job is over)."""
    return schedule.last_job_state is not None and schedule.last_job_state not in _OVER


def due_tick(schedule: Schedule, now: float) -> Tick | None:
    """The tick to take now, if any: the latest fire time since the last tick taken (or since
    the schedule was made), so that the ticks missed while no engine ran give one catch-up run,
    not a burst. With no_overlap, while the previous job is unfinished, the tick is taken as
    skipped (recorded, never retried). None while paused or when nothing is due."""
    if schedule.paused:
        return None
    fire_at = schedule.timing.latest_at(now, schedule.anchor)
    if fire_at is None:
        return None
    skip = schedule.no_overlap and previous_unfinished(schedule)
    return Tick(schedule.name, fire_at, TickAction.SKIP if skip else TickAction.ENQUEUE)


def seconds_to_next(schedules: Schedules) -> float | None:
    """Seconds from the store's "now" to the earliest next fire of the unpaused schedules."""
    times = [t for s in schedules.items if (t := s.next_fire(schedules.now)) is not None]
    return None if not times else min(times) - schedules.now
