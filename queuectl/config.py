"""Typed configuration: the keys a queue stores, their parsers, defaults and meaning.

Each key has one parser that checks type and range, used by `config set`; the engine and the
CLI read a Config dataclass, never strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from queuectl.errors import BadInput
from queuectl.units import format_duration, parse_duration, parse_size

# --- config keys ------------------------------------------------------------------------------


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise BadInput(f"expected a whole number from {low} to {high}, not {text!r}") from None
        if not low <= value <= high:
            raise BadInput(f"expected a whole number from {low} to {high}, not {value}")
        return value

    return parse


def _number(
    low: float, high: float, *, duration: bool = False, low_open: bool = False
) -> Callable[[str], float]:
    what = "a duration like 30s or 5m" if duration else "a number"

    def parse(text: str) -> float:
        try:
            value = parse_duration(text) if duration else float(text.strip())
        except (BadInput, ValueError):
            raise BadInput(f"expected {what}, not {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            shown = format_duration if duration else "{:g}".format
            bound = f"more than {shown(low)}" if low_open else f"at least {shown(low)}"
            raise BadInput(f"expected {what}, {bound} and at most {shown(high)}, not {text!r}")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() in ("none", "off", "") else parse(text)

    return parse_or_none


def _size(text: str) -> int:
    """specs.parse_size: k, kB, MB are decimal (1000), KiB, MiB binary (1024)."""
    return parse_size(text, maximum=1024**3)


@dataclass(frozen=True, slots=True)
class Config:
    """The queue's settings, typed; stored in the database (not a file) so that every process
    using the queue sees one value. Field names are the keys with '-' spelled '_'."""

    max_retries: int = 3
    backoff_base: float = 2.0
    backoff_max: float = 3600.0
    backoff_jitter: float = 0.1
    job_timeout: float | None = None
    concurrency: int = 4
    output_limit: int = 1024**2
    kill_grace: float = 5.0
    lease_time: float = 30.0
    retention: float | None = None  # None: keep finished jobs
    output_retention: float | None = None  # None: keep attempts' output

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> Config:
        """From stored key/value pairs; unknown keys (of a newer queuectl) are ignored."""
        known = {name: values[name] for name in CONFIG_KEYS if name in values}
        return cls(**{name.replace("-", "_"): value for name, value in known.items()})

    def get(self, name: str) -> Any:
        return getattr(self, config_key(name).field)

    def as_dict(self) -> dict[str, Any]:
        """By key name, in the documented order."""
        return {name: getattr(self, key.field) for name, key in CONFIG_KEYS.items()}


class ConfigKey(NamedTuple):  # not a dataclass: cheaper to import (models.py says why)
    name: str
    parse: Callable[[str], Any]
    help: str

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")

    @property
    def default(self) -> Any:
        return getattr(DEFAULTS, self.field)


CONFIG_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey(
            "max-retries",
            _integer(0, 1000),
            "retries after the first attempt for jobs that do not set max_retries",
        ),
        ConfigKey(
            "backoff-base", _number(1, 1000), "retry delay is backoff-base ** attempts seconds"
        ),
        ConfigKey(
            "backoff-max",
            _number(0, 365 * 86400, duration=True),
            "upper bound of one retry delay, seconds",
        ),
        ConfigKey(
            "backoff-jitter", _number(0, 1), "random extra delay, as a fraction of the delay"
        ),
        ConfigKey(
            "job-timeout",
            _optional(_number(0, 10 * 365 * 86400, duration=True, low_open=True)),
            "timeout for jobs that do not set one, seconds (none: no timeout)",
        ),
        ConfigKey("concurrency", _integer(1, 1024), "workers of an engine started without -c"),
        ConfigKey("output-limit", _size, "bytes of stdout and of stderr kept per attempt"),
        ConfigKey(
            "kill-grace",
            _number(0, 3600, duration=True),
            "seconds between SIGTERM and SIGKILL when a job is killed",
        ),
        ConfigKey(
            "lease-time",
            _number(2, 86400, duration=True),
            "seconds an engine holds a job before another may rescue it",
        ),
        ConfigKey(
            "retention",
            _optional(_number(0, 100 * 365 * 86400, duration=True, low_open=True)),
            "the engine purges finished jobs older than this (none: keep them)",
        ),
        ConfigKey(
            "output-retention",
            _optional(_number(0, 100 * 365 * 86400, duration=True, low_open=True)),
            "the engine drops the output of attempts older than this (none: keep it)",
        ),
    )
}
DEFAULTS = Config()


def config_key(name: str) -> ConfigKey:
    try:
        return CONFIG_KEYS[name]
    except KeyError:
        known = ", ".join(CONFIG_KEYS)
        raise BadInput(f"unknown config key {name!r}; known keys: {known}") from None


def parse_config_value(name: str, text: str) -> Any:
    key = config_key(name)
    try:
        return key.parse(text)
    except BadInput as exc:
        raise BadInput(f"invalid value for {name}: {exc}") from None
