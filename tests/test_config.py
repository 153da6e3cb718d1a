"""The typed config keys (their parsers, defaults and help) and the Config record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from queuectl.config import (
    CONFIG_KEYS,
    DEFAULTS,
    Config,
    config_key,
    parse_config_value,
)
from queuectl.errors import BadInput
from queuectl.render import format_value

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
    ("output-limit", "64k", 64000),  # k and kB are decimal, KiB binary (units.py)
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
    ("retention", "none", None),
    ("retention", "7d", 7 * 86400.0),
    ("retention", "90", 90.0),
    ("output-retention", "off", None),
    ("output-retention", "12h", 12 * 3600.0),
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
    ("retention", "0"),
    ("retention", "36501d"),
    ("output-retention", "0s"),
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


# --- the Config record ------------------------------------------------------------------------


def test_config_fields_are_the_keys() -> None:
    """One field per key, named like it with '-' spelled '_', defaulting to the key's default."""
    fields = [field.name for field in dataclasses.fields(Config)]
    assert fields == [key.field for key in CONFIG_KEYS.values()]
    assert [name.replace("-", "_") for name in CONFIG_KEYS] == fields
    assert Config() == DEFAULTS
    for name, key in CONFIG_KEYS.items():
        assert getattr(Config(), key.field) == key.default == Config().get(name)


def test_config_defaults() -> None:
    assert Config().as_dict() == {
        "max-retries": 3,
        "backoff-base": 2.0,
        "backoff-max": 3600.0,
        "backoff-jitter": 0.1,
        "job-timeout": None,
        "concurrency": 4,
        "output-limit": 1024**2,
        "kill-grace": 5.0,
        "lease-time": 30.0,
        "retention": None,
        "output-retention": None,
    }


def test_as_dict_is_in_the_documented_order() -> None:
    config = Config.from_stored({"lease-time": 60.0, "max-retries": 1, "concurrency": 2})
    assert list(config.as_dict()) == list(CONFIG_KEYS)
    assert config.as_dict() == {
        **Config().as_dict(),
        "lease-time": 60.0,
        "max-retries": 1,
        "concurrency": 2,
    }


def test_from_stored_takes_defaults_for_missing_keys() -> None:
    assert Config.from_stored({}) == Config()
    config = Config.from_stored({"job-timeout": 30.0, "kill-grace": 0.0})
    assert (config.job_timeout, config.kill_grace) == (30.0, 0.0)
    assert config == dataclasses.replace(Config(), job_timeout=30.0, kill_grace=0.0)


def test_from_stored_ignores_unknown_keys() -> None:
    """A newer queuectl may have stored keys this one does not know; they are not an error."""
    config = Config.from_stored({"concurrency": 8, "from-the-future": 1, "max_retries": 9})
    assert config == dataclasses.replace(Config(), concurrency=8)
    assert "from-the-future" not in config.as_dict()
    assert config.max_retries == 3  # a field name is not a key


def test_get_by_key_name() -> None:
    config = Config(max_retries=5, job_timeout=None, output_limit=100)
    assert config.get("max-retries") == 5 == config.max_retries
    assert config.get("job-timeout") is None
    assert config.get("output-limit") == 100
    with pytest.raises(BadInput, match="unknown config key 'max_retries'"):
        config.get("max_retries")
    with pytest.raises(BadInput, match="unknown config key 'colour'"):
        config.get("colour")


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().concurrency = 8  # type: ignore[misc]


@pytest.mark.parametrize(("name", "text", "expected"), VALID)
def test_a_parsed_value_builds_a_config(name: str, text: str, expected: Any) -> None:
    """What `config set` parses, the store keeps and Config.from_stored reads back."""
    config = Config.from_stored({name: parse_config_value(name, text)})
    assert config.get(name) == expected
