"""Parsing and validation of job specs (JSON and command-line shorthand), durations and times.

Pure (no I/O) so it can be unit-tested and fuzzed; anything that is not a valid spec raises
BadInput with a message that names the field, and never anything else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from queuectl.errors import BadInput
from queuectl.models import JobSpec

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
MAX_COMMAND_BYTES = 128 * 1024
MAX_DURATION = 100 * 365 * 86400.0
_LATEST_TIME = 253370764800.0  # 9999-01-01T00:00:00Z: every accepted time can be shown


def new_job_id() -> str:
    """12 random base32 characters (60 bits): short to type, collision-free at millions of jobs."""
    bits = secrets.randbits(60)
    return "".join(_ID_ALPHABET[(bits >> shift) & 31] for shift in range(55, -5, -5))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'30s', '5m', '2h', '1.5d', '250ms' or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise BadInput(f"invalid duration {text!r}; use a number with a unit, like 30s, 5m or 2h")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise BadInput(f"duration {text!r} is too long; use at most 100 years")
    return seconds


def parse_time(text: str) -> float:
    """An ISO 8601 time that names its timezone, as a POSIX timestamp."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"invalid time {text!r}; use ISO 8601 with a timezone, like 2026-01-31T09:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise BadInput(f"time {text!r} has no timezone; add one, like +00:00 or Z")
    stamp = moment.timestamp()
    if not 0 <= stamp < _LATEST_TIME:
        raise BadInput(f"time {text!r} is out of range; use a time from 1970 to 9998")
    return stamp


def validate_id(value: Any) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise BadInput(
            f"invalid id {value!r}; use 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_command(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"'command' must be a string, not {_type_name(value)}")
    if not value.strip():
        raise BadInput("'command' is empty; give the shell command to run")
    if "\x00" in value:
        raise BadInput("'command' contains a NUL byte, which a shell command cannot hold")
    _require_utf8("command", value)
    if len(value.encode("utf-8")) > MAX_COMMAND_BYTES:
        raise BadInput(f"'command' is longer than {MAX_COMMAND_BYTES} bytes; put it in a script")
    return value


def _require_utf8(name: str, value: str) -> None:
    """Lone surrogates (a JSON escape like \\ud800, or undecodable argv bytes) are not text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{name!r} is not valid UTF-8 text") from None


def validate_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name!r} must be an integer, not {_type_name(value)}")
    if minimum is not None and value < minimum:
        raise BadInput(f"{name!r} must be >= {minimum}, not {value}")
    if abs(value) > 2**62:
        raise BadInput(f"{name!r} is out of range: {value}")
    return value


def validate_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"'timeout' must be a number of seconds, not {_type_name(value)}")
    if value > 10 * 365 * 86400:  # before float(): a huge int would overflow
        raise BadInput(f"'timeout' is out of range: {value}; use at most ten years")
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"'timeout' must be a positive number of seconds, not {value}")
    return float(value)


def validate_env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadInput(f"'env' must be an object of strings, not {_type_name(value)}")
    for key, val in value.items():
        if not key or "=" in key or "\x00" in key:
            raise BadInput(f"'env' has an invalid variable name {key!r}")
        if not isinstance(val, str) or "\x00" in val:
            raise BadInput(f"'env' value of {key!r} must be a string without NUL bytes")
        _require_utf8("env", key + val)
    return dict(value)


def validate_cwd(value: Any) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise BadInput(f"'cwd' must be a directory path, not {value!r}")
    if not value.startswith("/"):
        raise BadInput(f"'cwd' must be an absolute path, not {value!r}")
    _require_utf8("cwd", value)
    return value


_FIELDS = frozenset({"id", "command", "max_retries", "priority", "timeout", "run_at", "cwd", "env"})


def parse_job_json(text: str, default_cwd: str) -> JobSpec:
    """Parse one job from JSON text; raises BadInput, never anything else, for any input."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"invalid JSON: {exc}") from None
    return spec_from_dict(data, default_cwd)


def spec_from_dict(data: Any, default_cwd: str) -> JobSpec:
    if not isinstance(data, dict):
        raise BadInput(f"a job must be a JSON object, not {_type_name(data)}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise BadInput(f"unknown field {unknown[0]!r}; known fields: {', '.join(sorted(_FIELDS))}")
    if "command" not in data:
        raise BadInput("'command' is missing; give the shell command to run")
    run_at = data.get("run_at")
    if run_at is not None and not isinstance(run_at, str):
        raise BadInput(f"'run_at' must be an ISO 8601 string, not {_type_name(run_at)}")
    return JobSpec(
        command=validate_command(data["command"]),
        cwd=validate_cwd(data["cwd"]) if data.get("cwd") is not None else default_cwd,
        id=validate_id(data["id"]) if data.get("id") is not None else None,
        max_retries=(
            validate_int("max_retries", data["max_retries"], 0)
            if data.get("max_retries") is not None
            else None
        ),
        priority=(
            validate_int("priority", data["priority"]) if data.get("priority") is not None else 0
        ),
        timeout=validate_timeout(data["timeout"]) if data.get("timeout") is not None else None,
        run_at=parse_time(run_at) if run_at is not None else None,
        env=validate_env(data["env"]) if data.get("env") is not None else {},
    )


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# --- the command line's forms: shorthand options and files of JSON lines --------------------


@dataclass(frozen=True, slots=True)
class Shorthand:
    """A job's options as typed on a command line: durations and times still text, so that
    their errors name what the user wrote."""

    job_id: str | None = None
    max_retries: int | None = None
    priority: int | None = None
    timeout: str | None = None
    run_at: str | None = None
    delay: str | None = None

    @property
    def given(self) -> bool:
        return any(getattr(self, field.name) is not None for field in dataclasses.fields(self))


def shorthand_spec(command: str, cwd: str, options: Shorthand) -> JobSpec:
    """Validated by the same rules as a JSON job, so both forms accept and refuse alike."""
    if options.run_at is not None and options.delay is not None:
        raise BadInput("give --run-at or --delay, not both")
    data: dict[str, Any] = {
        "command": command,
        "id": options.job_id,
        "max_retries": options.max_retries,
        "priority": options.priority or 0,
    }
    if options.timeout is not None:
        data["timeout"] = parse_duration(options.timeout)
    spec = spec_from_dict(data, cwd)
    if options.run_at:
        when: float | None = parse_time(options.run_at)
    elif options.delay:
        when = time.time() + parse_duration(options.delay)
    else:
        when = None
    return dataclasses.replace(spec, run_at=when)


class JobBatch(NamedTuple):
    """Jobs parsed from JSON lines, with the line each id came from, so that an id the store
    refuses can still be reported by line."""

    source: str
    specs: list[JobSpec]
    line_of: dict[str, int]


def parse_job_lines(data: bytes, source: str, cwd: str) -> JobBatch:
    """Every line is checked before anything is stored: a bad file stores nothing.

    Lines end at \\n only: JSON strings may hold U+2028 and other characters that
    str.splitlines() would also split on. `source` names the input in messages.
    """
    try:
        lines = [line.removesuffix("\r") for line in data.decode("utf-8").split("\n")]
    except UnicodeDecodeError:
        raise BadInput(f"{source!r} is not UTF-8 text; write one JSON object per line") from None
    specs: list[JobSpec] = []
    line_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            spec = parse_job_json(line, cwd)
        except BadInput as exc:
            raise BadInput(f"{source} line {number}: {exc}") from None
        if spec.id is not None:
            if spec.id in line_of:
                raise BadInput(
                    f"{source} line {number}: job id {spec.id!r} already appears on "
                    f"line {line_of[spec.id]}"
                )
            line_of[spec.id] = number
        specs.append(spec)
    if not specs:
        raise BadInput(f"{source} holds no jobs; write one JSON object per line")
    return JobBatch(source, specs, line_of)
