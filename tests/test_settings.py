"""Where the queue lives, and the typed config keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from queuectl.errors import BadInput, QueuectlError
from queuectl.render import format_value
from queuectl.settings import (
    CONFIG_KEYS,
    config_key,
    ensure_home,
    parse_config_value,
    resolve_home,
)

VALID: list[tuple[str, str, Any]] = [
    ("max-retries", "0", 0),
    ("max-retries", "3", 3),
    ("max-retries", " 7 ", 7),
    ("max-retries", "1000", 1000),
    ("backoff-base", "1", 1.0),
    ("backoff-base", "2.5", 2.5),
    ("backoff-base", "1000", 1000.0),
    ("backoff-max", "0", 0.0),
    ("backoff-max", "90", 90.0),
    ("backoff-max", "1h", 3600.0),
    ("backoff-max", "365d", 365 * 86400.0),
    ("backoff-jitter", "0", 0.0),
    ("backoff-jitter", "0.25", 0.25),
    ("backoff-jitter", "1", 1.0),
    ("job-timeout", "none", None),
    ("job-timeout", "None", None),
    ("job-timeout", "off", None),
    ("job-timeout", "", None),
    ("job-timeout", "30s", 30.0),
    ("job-timeout", "250ms", 0.25),
    ("job-timeout", "2h", 7200.0),
    ("job-timeout", "45", 45.0),
    ("concurrency", "1", 1),
    ("concurrency", "16", 16),
    ("concurrency", "1024", 1024),
    ("output-limit", "0", 0),
    ("output-limit", "65536", 65536),
    ("output-limit", "64KiB", 65536),
    ("output-limit", "64kib", 65536),
    ("output-limit", "64k", 65536),
    ("output-limit", "64KB", 64000),
    ("output-limit", "1MiB", 1024**2),
    ("output-limit", "1MB", 1000**2),
    ("output-limit", "512 b", 512),
    ("output-limit", "1GiB", 1024**3),
    ("kill-grace", "0", 0.0),
    ("kill-grace", "5s", 5.0),
    ("kill-grace", "1h", 3600.0),
    ("lease-time", "2", 2.0),
    ("lease-time", "30s", 30.0),
    ("lease-time", "1d", 86400.0),
]

# (key, text, a fragment the message must contain)
TYPE_ERRORS: list[tuple[str, str, str]] = [
    ("max-retries", "abc", "whole number"),
    ("max-retries", "1.5", "whole number"),
    ("max-retries", "", "whole number"),
    ("backoff-base", "abc", "number"),
    ("backoff-base", "", "number"),
    ("backoff-max", "soon", "duration"),
    ("backoff-max", "-1", "duration"),
    ("backoff-jitter", "lots", "number"),
    ("job-timeout", "forever", "duration"),
    ("job-timeout", "-5s", "duration"),
    ("concurrency", "four", "whole number"),
    ("output-limit", "lots", "size"),
    ("output-limit", "-1", "size"),
    ("output-limit", "1.5MiB", "size"),
    ("output-limit", "10 TB", "size"),
    ("kill-grace", "5 minutes", "duration"),
    ("lease-time", "abc", "duration"),
]

RANGE_ERRORS: list[tuple[str, str]] = [
    ("max-retries", "-1"),
    ("max-retries", "1001"),
    ("backoff-base", "0.5"),
    ("backoff-base", "0"),
    ("backoff-base", "1001"),
    ("backoff-base", "inf"),
    ("backoff-base", "nan"),
    ("backoff-max", "366d"),
    ("backoff-jitter", "-0.1"),
    ("backoff-jitter", "1.5"),
    ("backoff-jitter", "nan"),
    ("job-timeout", "0"),
    ("job-timeout", "0s"),
    ("job-timeout", "3651d"),
    ("concurrency", "0"),
    ("concurrency", "-4"),
    ("concurrency", "1025"),
    ("output-limit", "2GiB"),
    ("output-limit", "1073741825"),
    ("kill-grace", "3601"),
    ("kill-grace", "2h"),
    ("lease-time", "1"),
    ("lease-time", "1.5s"),
    ("lease-time", "2d"),
]


def test_every_key_is_covered_by_the_valid_cases() -> None:
    assert {name for name, _, _ in VALID} == set(CONFIG_KEYS)
    assert {name for name, _ in RANGE_ERRORS} == set(CONFIG_KEYS)


@pytest.mark.parametrize(("name", "text", "expected"), VALID)
def test_valid_values(name: str, text: str, expected: Any) -> None:
    value = parse_config_value(name, text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("name", "text", "fragment"), TYPE_ERRORS)
def test_type_errors(name: str, text: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_config_value(name, text)
    message = str(info.value)
    assert message.startswith(f"invalid value for {name}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(("name", "text"), RANGE_ERRORS)
def test_range_errors(name: str, text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_config_value(name, text)
    assert str(info.value).startswith(f"invalid value for {name}: ")


@pytest.mark.parametrize("name", sorted(CONFIG_KEYS))
def test_default_round_trips_through_its_parser(name: str) -> None:
    """What `config list` prints for a default is accepted back by `config set`."""
    key = CONFIG_KEYS[name]
    assert key.name == name
    assert key.help
    assert key.parse(format_value(key.default)) == key.default


def test_unknown_key() -> None:
    with pytest.raises(BadInput, match="unknown config key 'colour'; known keys: max-retries"):
        config_key("colour")
    with pytest.raises(BadInput, match="colour"):
        parse_config_value("colour", "red")
    assert config_key("concurrency") is CONFIG_KEYS["concurrency"]


# --- where the queue lives --------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No queue variables set, and $HOME in a temporary directory."""
    monkeypatch.delenv("QUEUECTL_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def test_home_default(clean_env: Path) -> None:
    assert resolve_home(None) == clean_env / "user" / ".local" / "share" / "queuectl"


def test_home_from_xdg_data_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    assert resolve_home(None) == clean_env / "xdg" / "queuectl"


def test_empty_variables_are_ignored(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "")
    monkeypatch.setenv("QUEUECTL_HOME", "")
    assert resolve_home(None) == clean_env / "user" / ".local" / "share" / "queuectl"
    assert resolve_home("") == clean_env / "user" / ".local" / "share" / "queuectl"


def test_queuectl_home_beats_xdg(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    monkeypatch.setenv("QUEUECTL_HOME", str(clean_env / "env-home"))
    assert resolve_home(None) == clean_env / "env-home"


def test_option_beats_everything(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    monkeypatch.setenv("QUEUECTL_HOME", str(clean_env / "env-home"))
    assert resolve_home(str(clean_env / "opt")) == clean_env / "opt"


def test_home_is_absolute_and_expands_tilde(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_home("~/q") == clean_env / "user" / "q"
    monkeypatch.setenv("QUEUECTL_HOME", "~/envq")
    assert resolve_home(None) == clean_env / "user" / "envq"
    monkeypatch.chdir(clean_env)
    relative = resolve_home("rel/q")
    assert relative.is_absolute()
    assert relative == clean_env / "rel" / "q"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_home_creates_0700(home: Path) -> None:
    target = home / "a" / "b"
    assert ensure_home(target) == target
    assert target.is_dir()
    assert _mode(target) == 0o700


def test_ensure_home_tightens_an_open_home(home: Path) -> None:
    target = home / "open"
    target.mkdir()
    os.chmod(target, 0o755)
    ensure_home(target)
    assert _mode(target) == 0o700


def test_ensure_home_is_idempotent(home: Path) -> None:
    (home / "keep").write_text("x")
    ensure_home(home)
    ensure_home(home)
    assert (home / "keep").read_text() == "x"
    assert _mode(home) == 0o700


def test_ensure_home_refuses_a_file(home: Path) -> None:
    target = home / "file"
    target.write_text("not a directory")
    with pytest.raises(QueuectlError) as info:
        ensure_home(target)
    assert str(target) in str(info.value)
    assert target.read_text() == "not a directory"


def test_ensure_home_under_a_file_fails_cleanly(home: Path) -> None:
    (home / "file").write_text("")
    with pytest.raises(QueuectlError, match="cannot create queue home"):
        ensure_home(home / "file" / "sub")
