"""The job, its states and attempts, and validation of job specs from JSON and the command line.

Validation is pure (no I/O) so it can be unit-tested and fuzzed; anything that is not a valid
spec raises BadInput with a message that names the field.
"""

from __future__ import annotations

import enum
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from queuectl.errors import BadInput


class JobState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELED = "canceled"

    @classmethod
    def parse(cls, text: str) -> JobState:
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise BadInput(f"unknown state {text!r}; use one of: {names}") from None


RUNNABLE_STATES = (JobState.PENDING, JobState.FAILED)
TERMINAL_STATES = (JobState.COMPLETED, JobState.DEAD, JobState.CANCELED)

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
MAX_COMMAND_BYTES = 128 * 1024
MAX_DURATION = 100 * 365 * 86400.0
_LATEST_TIME = 253370764800.0  # 9999-01-01T00:00:00Z: every accepted time can be shown


def new_job_id() -> str:
    """12 random base32 characters (60 bits): short to type, collision-free at millions of jobs."""
    bits = secrets.randbits(60)
    return "".join(_ID_ALPHABET[(bits >> shift) & 31] for shift in range(55, -5, -5))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated request to enqueue a job; None means 'take the queue's configured default'."""

    command: str
    cwd: str
    id: str | None = None
    max_retries: int | None = None
    priority: int = 0
    timeout: float | None = None
    run_at: float | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    command: str
    state: JobState
    priority: int
    max_retries: int
    timeout: float | None
    cwd: str
    env: dict[str, str]
    attempts: int
    runs: int
    created_at: float
    updated_at: float
    run_at: float
    next_run_at: float
    last_error: str | None
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    job_id: str
    run: int
    engine: str | None
    started_at: float
    finished_at: float | None
    exit_code: int | None
    error: str | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class OutcomeKind(enum.StrEnum):
    """How an attempt ended; the store maps it (and the retry budget) to the job's next state."""

    SUCCESS = "success"
    FAILURE = "failure"  # counts against max_retries: retried later or dead
    INTERRUPTED = "interrupted"  # the engine stopped it: back to pending, no retry used
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    exit_code: int | None = None
    error: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters made visible (\\x1b): a job's output must not drive a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


# --- parsing -------------------------------------------------------------------------------

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
