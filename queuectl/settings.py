"""Where a queue lives, and the typed configuration keys stored in its database.

Config lives in the database (not a file) so every process using the queue sees one value; each
key has one parser that checks type and range, used by `config set` and when reading.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuectl.errors import BadInput, QueuectlError
from queuectl.models import parse_duration

DB_NAME = "queue.db"
SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
LOG_NAME = "engine.log"


def resolve_home(option: str | None) -> Path:
    """--home, else $QUEUECTL_HOME, else $XDG_DATA_HOME/queuectl, else ~/.local/share/queuectl."""
    if option:
        return Path(option).expanduser().absolute()
    if os.environ.get("QUEUECTL_HOME"):
        return Path(os.environ["QUEUECTL_HOME"]).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser().absolute() / "queuectl"


def ensure_home(home: Path) -> Path:
    """Create the home 0700; refuse one that other users could write to or that is not a dir."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = home.lstat()
    except OSError as exc:
        raise QueuectlError(f"cannot create queue home {str(home)!r}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise QueuectlError(f"queue home {str(home)!r} is not a directory; pick another --home")
    if info.st_uid != os.getuid():  # its owner could swap queue.db or engine.log for a symlink
        raise QueuectlError(
            f"queue home {str(home)!r} belongs to another user (uid "
            f"{info.st_uid}); use a directory of your own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(home, 0o700)
    return home


# --- config keys ------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d{1,20})\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


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
            bound = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise BadInput(f"expected {what}, {bound} and at most {high:g}, not {text!r}")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() in ("none", "off", "") else parse(text)

    return parse_or_none


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise BadInput(f"expected a size in bytes like 65536, 64KiB or 1MiB, not {text!r}")
    value = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower() or None]
    if value > 1024**3:
        raise BadInput(f"expected a size of at most 1GiB, not {text!r}")
    return value


@dataclass(frozen=True)
class ConfigKey:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


CONFIG_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey(
            "max-retries",
            3,
            _integer(0, 1000),
            "retries after the first attempt for jobs that do not set max_retries",
        ),
        ConfigKey(
            "backoff-base", 2.0, _number(1, 1000), "retry delay is backoff-base ** attempts seconds"
        ),
        ConfigKey(
            "backoff-max",
            3600.0,
            _number(0, 365 * 86400, duration=True),
            "upper bound of one retry delay, seconds",
        ),
        ConfigKey(
            "backoff-jitter", 0.1, _number(0, 1), "random extra delay, as a fraction of the delay"
        ),
        ConfigKey(
            "job-timeout",
            None,
            _optional(_number(0, 10 * 365 * 86400, duration=True, low_open=True)),
            "timeout for jobs that do not set one, seconds (none: no timeout)",
        ),
        ConfigKey("concurrency", 4, _integer(1, 1024), "workers of an engine started without -c"),
        ConfigKey("output-limit", 1024**2, _size, "bytes of stdout and of stderr kept per attempt"),
        ConfigKey(
            "kill-grace",
            5.0,
            _number(0, 3600, duration=True),
            "seconds between SIGTERM and SIGKILL when a job is killed",
        ),
        ConfigKey(
            "lease-time",
            30.0,
            _number(2, 86400, duration=True),
            "seconds an engine holds a job before another may rescue it",
        ),
    )
}


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
