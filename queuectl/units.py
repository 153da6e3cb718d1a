"""Units: one parser each for durations, sizes and times, used by JSON fields, command-line
flags and config keys alike, and formatters that spell values the way the parsers read them,
so that a message says "at most 3650d", never "at most 3.1536e+08".

A duration is a bare number of seconds (`90`, `0.5`) or parts with units from the largest to
the smallest, each at most once: w, d, h, m, s, ms (`1h30m`, `2d`, `1.5h`, `250ms`,
`1m30.5s`). A size is a whole number of bytes with an optional unit, case ignored: k, M, G, T
(also kB, MB, GB, TB) are decimal powers of 1000 and KiB, MiB, GiB, TiB binary powers of 1024,
as SI and IEC define them. A time is ISO 8601 with its timezone.

Pure (no I/O); anything invalid raises BadInput with a one-line message.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from queuectl.errors import BadInput

MAX_DURATION = 100 * 365 * 86400.0
_LATEST_TIME = 253370764800.0  # 9999-01-01T00:00:00Z: every accepted time can be shown

_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)\s*")
_BARE_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")
_ORDER = list(_DURATION_UNITS)


def parse_duration(text: str, maximum: float = MAX_DURATION) -> float:
    """Seconds from `90`, `90s`, `1h30m`, `2d`, `1.5h` or `250ms`; at most `maximum`."""
    bare = _BARE_SECONDS.fullmatch(text)
    if bare:
        seconds = float(bare.group(1))
    else:
        seconds, position, last = 0.0, len(text) - len(text.lstrip()), -1
        for part in _DURATION_PART.finditer(text, position):
            unit = _ORDER.index(part.group(2))
            if part.start() != position or unit <= last:
                break
            seconds += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
            position, last = part.end(), unit
        if last < 0 or position != len(text):
            raise BadInput(
                f"invalid duration {shown(text)}; use seconds or units from largest to smallest, "
                "like 90, 30s, 1h30m, 2d or 250ms"
            )
    if not math.isfinite(seconds) or seconds > maximum:
        raise BadInput(
            f"duration {shown(text.strip())} is too long; use at most {format_duration(maximum)}"
        )
    return seconds


def shown(text: str, width: int = 40) -> str:
    """`text` quoted for a message, cut short: an error names the input, not all of it."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def format_duration(seconds: float) -> str:
    """The shortest spelling that parse_duration reads back: 3650d, 1h30m, 1m30.5s, 250ms."""
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms" if seconds else "0s"
    whole = int(seconds)
    parts = []
    for unit in ("d", "h", "m"):
        count, whole = divmod(whole, int(_DURATION_UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    rest = round(whole + seconds - int(seconds), 3)
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


_SIZE = re.compile(r"\s*(\d{1,20})\s*(b|[kmgt]b?|[kmgt]ib)?\s*", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {"": 1, "b": 1} | {
    unit: base**power
    for power, prefix in enumerate("kmgt", start=1)
    for unit, base in ((prefix, 1000), (f"{prefix}b", 1000), (f"{prefix}ib", 1024))
}


def parse_size(text: str, maximum: int | None = None) -> int:
    """Bytes from `65536`, `10k`, `10kB` (10,000), `10KiB` (10,240), `1MiB`, `2G`."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise BadInput(
            f"invalid size {shown(text)}; use a whole number of bytes with an optional unit, like "
            "65536, 64KiB (binary, 1024) or 64kB (decimal, 1000)"
        )
    value = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if maximum is not None and value > maximum:
        raise BadInput(
            f"size {shown(text.strip())} is too large; use at most {format_size(maximum)}"
        )
    return value


def format_size(size: int) -> str:
    """The shortest exact spelling: 1GiB, 64KiB, 10MB, 1500B."""
    for power in range(4, 0, -1):
        for base, suffix in ((1024, "iB"), (1000, "B")):
            if size and size % base**power == 0:
                unit = "kMGT"[power - 1] if base == 1000 else "KMGT"[power - 1]
                return f"{size // base**power}{unit}{suffix}"
    return f"{size}B"


def parse_time(text: str) -> float:
    """An ISO 8601 time that names its timezone, as a POSIX timestamp."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"invalid time {shown(text)}; use ISO 8601 with a timezone, "
            "like 2026-01-31T09:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise BadInput(f"time {shown(text)} has no timezone; add one, like +00:00 or Z")
    stamp = moment.timestamp()
    if not 0 <= stamp < _LATEST_TIME:
        raise BadInput(f"time {shown(text)} is out of range; use a time from 1970 to 9998")
    return stamp


def parse_moment(text: str, now: float) -> float:
    """A point in time: ISO 8601 with a timezone, or a duration ago (`2h`: two hours ago)."""
    try:
        return now - parse_duration(text)
    except BadInput:
        pass
    try:
        return parse_time(text)
    except BadInput as exc:
        raise BadInput(f"{exc}, or a duration ago like 2h") from None
