"""Parsing and validation of job specs (JSON and command-line shorthand); the units they use
(durations, sizes, times) are parsed in units.py and re-exported here.

Pure (no I/O) so it can be unit-tested and fuzzed; anything that is not a valid spec raises
BadInput with a message that names the field, and never anything else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from queuectl.errors import BadInput
from queuectl.models import DEFAULT_QUEUE, JobSpec

# The units live in their own module; they are re-exported here, where callers look for parsers.
from queuectl.units import MAX_DURATION as MAX_DURATION
from queuectl.units import format_duration as format_duration
from queuectl.units import format_size as format_size
from queuectl.units import parse_duration as parse_duration
from queuectl.units import parse_moment as parse_moment
from queuectl.units import parse_size as parse_size
from queuectl.units import parse_time as parse_time
from queuectl.units import shown as shown

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
MAX_COMMAND_BYTES = 128 * 1024
MAX_TIMEOUT = 10 * 365 * 86400.0
MAX_LABEL = 200  # characters: a label is shown on one line of a listing


def new_job_id() -> str:
    """12 random base32 characters (60 bits): short to type, collision-free at millions of jobs."""
    # os.urandom, as secrets does, without importing secrets (hmac, hashlib, random): ~2 ms of
    # every `enqueue` start-up.
    bits = int.from_bytes(os.urandom(8)) >> 4
    return "".join(_ID_ALPHABET[(bits >> shift) & 31] for shift in range(55, -5, -5))


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
    """Seconds as a JSON number, or a duration string as on the command line (`"5m"`)."""
    if isinstance(value, str):
        try:
            value = parse_duration(value, MAX_TIMEOUT)
        except BadInput as exc:
            raise BadInput(f"'timeout': {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(
            f"'timeout' must be a number of seconds or a duration like \"5m\", "
            f"not {_type_name(value)}"
        )
    if value > MAX_TIMEOUT:  # before float(): a huge int would overflow
        raise BadInput(f"'timeout' is too long; use at most {format_duration(MAX_TIMEOUT)}")
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_label(value: Any) -> str:
    """Free text shown on a listing's one line per job, and searched by `list --grep`."""
    if not isinstance(value, str):
        raise BadInput(f"'label' must be a string, not {_type_name(value)}")
    if not value.strip():
        raise BadInput("'label' is empty; give some text or leave it out")
    if _CONTROL.search(value):
        raise BadInput("'label' holds a control character (a newline, a tab); use one line of text")
    if len(value) > MAX_LABEL:
        raise BadInput(f"'label' is longer than {MAX_LABEL} characters; shorten it")
    _require_utf8("label", value)
    return value


QUEUE_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_UNIQUE_KEY = 200  # characters
MAX_PARENTS = 1000  # parents of one job


def validate_queue_name(value: Any) -> str:
    if not isinstance(value, str) or not QUEUE_PATTERN.fullmatch(value):
        raise BadInput(f"invalid queue name {value!r}; use 1-64 letters, digits, '.', '_' or '-'")
    return value


def validate_unique_key(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"'unique_key' must be a string, not {_type_name(value)}")
    if not value or len(value) > MAX_UNIQUE_KEY or _CONTROL.search(value):
        raise BadInput(
            f"invalid unique key {value!r}; use 1-{MAX_UNIQUE_KEY} characters of one line"
        )
    _require_utf8("unique_key", value)
    return value


def validate_after(value: Any) -> tuple[str, ...]:
    """The parents' ids: a JSON array of ids (the command line's comma list is split first)."""
    if not isinstance(value, list):
        raise BadInput(f"'after' must be an array of job ids, not {_type_name(value)}")
    if not value:
        raise BadInput("'after' is empty; name the jobs that must complete first, or leave it out")
    if len(value) > MAX_PARENTS:
        raise BadInput(f"'after' names more than {MAX_PARENTS} jobs")
    return tuple(dict.fromkeys(validate_id(parent) for parent in value))


_FIELDS = frozenset(
    {
        "id",
        "command",
        "max_retries",
        "priority",
        "timeout",
        "run_at",
        "cwd",
        "env",
        "label",
        "queue",
        "after",
        "unique_key",
    }
)


def parse_job_json(text: str, default_cwd: str) -> JobSpec:
    """Parse one job from JSON text; raises BadInput, never anything else, for any input."""
    return spec_from_dict(_load_json(text), default_cwd)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"invalid JSON: {exc}") from None


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
        label=validate_label(data["label"]) if data.get("label") is not None else None,
        queue=validate_queue_name(data["queue"])
        if data.get("queue") is not None
        else DEFAULT_QUEUE,
        after=validate_after(data["after"]) if data.get("after") is not None else (),
        unique_key=(
            validate_unique_key(data["unique_key"]) if data.get("unique_key") is not None else None
        ),
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


class Shorthand(NamedTuple):
    """A job's options as typed on a command line: durations and times still text, so that
    their errors name what the user wrote. `cwd` is absolute and `env` resolved (see
    env_options) by the caller, which knows the shell's directory and environment. A
    NamedTuple, not a dataclass: cheaper to import (models.py says why)."""

    job_id: str | None = None
    max_retries: int | None = None
    priority: int | None = None
    timeout: str | None = None
    run_at: str | None = None
    delay: str | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None
    label: str | None = None
    queue: str | None = None
    after: str | None = None  # ID[,ID...]
    unique_key: str | None = None

    @property
    def given(self) -> bool:
        return any(value is not None for value in self)


def shorthand_spec(command: str, cwd: str, options: Shorthand) -> JobSpec:
    """Validated by the same rules as a JSON job, so both forms accept and refuse alike."""
    return _with_options({"command": command}, cwd, options)


def job_from_args(args: Sequence[str], cwd: str, options: Shorthand) -> JobSpec:
    """`enqueue`'s arguments: one JSON job, or the words of a shell command.

    Options given with a JSON job override its fields of the same name (`--env` adds to its
    env, a name in both taking the option's value; `--run-at` or `--delay` replaces its
    run_at), so a job kept as JSON can be varied per call. Anything else that looks like JSON
    is refused rather than run as a command that begins with `{"`.
    """
    if not args:
        raise BadInput("nothing to enqueue; give a JSON job, `-- COMMAND...` or --file PATH")
    if len(args) == 1 and args[0].lstrip().startswith("{"):
        return _with_options(_load_json(args[0]), cwd, options)
    if is_json_object(args[0]):
        if any(is_json_object(arg) for arg in args[1:]):
            raise BadInput("one JSON job per argument list; use --file for several")
        raise BadInput(
            "a JSON job takes no command words after it; put the command in its 'command' field"
        )
    return shorthand_spec(" ".join(args), cwd, options)


def is_json_object(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _with_options(data: Any, cwd: str, options: Shorthand) -> JobSpec:
    if options.run_at is not None and options.delay is not None:
        raise BadInput("give --run-at or --delay, not both")
    if not isinstance(data, dict):
        raise BadInput(f"a job must be a JSON object, not {_type_name(data)}")
    merged = dict(data)
    for name, value in (
        ("id", options.job_id),
        ("max_retries", options.max_retries),
        ("priority", options.priority),
        ("timeout", options.timeout),
        ("cwd", options.cwd),
        ("label", options.label),
        ("queue", options.queue),
        ("unique_key", options.unique_key),
    ):
        if value is not None:
            merged[name] = value
    if options.after is not None:
        merged["after"] = [part.strip() for part in options.after.split(",")]
    if options.env is not None:
        own = merged.get("env")
        merged["env"] = {**(validate_env(own) if own is not None else {}), **options.env}
    if options.run_at is not None or options.delay is not None:
        merged.pop("run_at", None)
    spec = spec_from_dict(merged, cwd)
    if options.run_at is not None:
        return dataclasses.replace(spec, run_at=parse_time(options.run_at))
    if options.delay is not None:
        return dataclasses.replace(spec, run_at=time.time() + parse_duration(options.delay))
    return spec


def env_options(items: Sequence[str], environ: Mapping[str, str]) -> dict[str, str] | None:
    """`--env KEY=VALUE`, or `--env KEY` for the value KEY has in `environ` (this shell's)."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in environ:
                raise BadInput(f"--env {key!r}: {key} is not set here; give {key}=VALUE")
            value = environ[key]
        env[key] = value
    return validate_env(env) if items else None


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
