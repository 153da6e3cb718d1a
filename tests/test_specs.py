"""Validation of job specs and the small parsers: pure, so tested directly and fuzzed."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queuectl.errors import BadInput
from queuectl.models import JobSpec
from queuectl.service.each import each_batch
from queuectl.specs import (
    ID_PATTERN,
    MAX_COMMAND_BYTES,
    MAX_DURATION,
    Shorthand,
    env_options,
    format_duration,
    format_size,
    job_from_args,
    new_job_id,
    parse_duration,
    parse_job_json,
    parse_moment,
    parse_size,
    parse_time,
    spec_from_dict,
    validate_command,
    validate_cwd,
    validate_env,
    validate_id,
    validate_int,
    validate_label,
    validate_timeout,
)

CWD = "/work/dir"
FIELDS = ("id", "command", "max_retries", "priority", "timeout", "run_at", "cwd", "env", "label")


# --- durations and times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1.5d", 129600.0),
        ("250ms", 0.25),
        ("10", 10.0),
        ("0", 0.0),
        ("0.5", 0.5),
        (" 7 s ", 7.0),
        ("1d", 86400.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("1m30.5s", 90.5),
        ("1w2d", 9 * 86400.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4.005),
        ("1s500ms", 1.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "-5s",
        "5x",
        "1e3",
        "5 minutes",
        ".5s",
        "5.s",
        "inf",
        "nan",
        "s",
        "5ss",
        "30m1h",  # largest unit first
        "1h1h",
        "1h-30m",
        "1hh",
        "h",
        "1y",
        "1h30",  # a part without a unit after one with a unit
        "1h 30m x",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_is_always_finite() -> None:
    """A duration becomes a delay, a timeout or a config value; inf is never meaningful."""
    with pytest.raises(BadInput, match=r"too long; use at most 36500d$"):
        parse_duration("9" * 400 + "s")


def test_parse_duration_maximum_is_said_in_the_same_units() -> None:
    with pytest.raises(BadInput) as info:
        parse_duration("11d", maximum=10 * 86400)
    assert str(info.value) == "duration '11d' is too long; use at most 10d"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (0.0005, "0.5ms"),
        (1.5, "1.5s"),
        (90, "1m30s"),
        (90.5, "1m30.5s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (86400, "1d"),
        (10 * 365 * 86400, "3650d"),
        (MAX_DURATION, "36500d"),
        (86400 + 1, "1d1s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(0, int(MAX_DURATION * 1000)))
def test_format_duration_reads_back(millis: int) -> None:
    """What a message says can be typed back in."""
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


# --- sizes: k, kB, MB decimal; KiB, MiB binary ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("65536", 65536),
        ("512b", 512),
        ("512 B", 512),
        ("10k", 10_000),
        ("10K", 10_000),
        ("10kB", 10_000),
        ("10KB", 10_000),
        ("10KiB", 10_240),
        ("10kib", 10_240),
        ("10M", 10_000_000),
        ("10MB", 10_000_000),
        ("10MiB", 10 * 1024**2),
        ("2G", 2 * 1000**3),
        ("2GiB", 2 * 1024**3),
        ("1T", 1000**4),
        ("1TiB", 1024**4),
        (" 64 KiB ", 65536),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "k", "-1", "1.5MiB", "10 kilobytes", "10kk", "10Kb2", "0x10", "1e3", "10 iB"]
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="invalid size"):
        parse_size(text)


def test_parse_size_maximum_is_said_in_the_same_units() -> None:
    with pytest.raises(BadInput) as info:
        parse_size("2GiB", maximum=1024**3)
    assert str(info.value) == "size '2GiB' is too large; use at most 1GiB"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (1500, "1500B"), (64000, "64kB"), (65536, "64KiB"), (10**6, "1MB"),
     (1024**3, "1GiB"), (3 * 1024**4, "3TiB")],
)  # fmt: skip
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(0, 2**50))
def test_format_size_reads_back(size: int) -> None:
    assert parse_size(format_size(size)) == size


# --- a moment: a time, or a duration ago ------------------------------------------------------


def test_parse_moment() -> None:
    now = 1_800_000_000.0
    assert parse_moment("2h", now) == now - 7200
    assert parse_moment("90", now) == now - 90
    assert (
        parse_moment("2026-01-31T09:00:00Z", now)
        == datetime(2026, 1, 31, 9, tzinfo=UTC).timestamp()
    )
    for text, fragment in [
        ("soon", "or a duration ago like 2h"),
        ("2026-01-31T09:00:00", "no timezone"),
    ]:
        with pytest.raises(BadInput, match=fragment):
            parse_moment(text, now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T09:00:00+00:00", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31T09:00:00Z", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31T11:00:00+02:00", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31 04:00:00-05:00", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        (" 2026-01-31T09:00:00.250Z ", datetime(2026, 1, 31, 9, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected.timestamp()


@pytest.mark.parametrize("text", ["2026-01-31T09:00:00", "2026-01-31", "2026-01-31 09:00"])
def test_parse_time_requires_a_timezone(text: str) -> None:
    with pytest.raises(BadInput, match="no timezone"):
        parse_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2026-13-01T00:00:00Z",
        "31/01/2026 09:00",
        "2026-01-31T25:00:00+00:00",
        "1700000000",
    ],
)
def test_parse_time_rejects_garbage(text: str) -> None:
    with pytest.raises(BadInput, match="invalid time"):
        parse_time(text)


def test_parse_time_result_can_be_shown() -> None:
    """Any accepted time must convert back to a UTC datetime, as `show` and `list` do."""
    for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
        try:
            ts = parse_time(text)
        except BadInput:
            continue
        datetime.fromtimestamp(ts, UTC)


# --- single fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "job1", "A.b_c:d-e", "0", "x" * 128, "2026-01-31"])
def test_validate_id_accepts(value: str) -> None:
    assert validate_id(value) == value


@pytest.mark.parametrize(
    "value", ["", "-a", ".a", "_a", "a b", "a/b", "x" * 129, "é", "a\n", "a\x00", 5, None, ["a"]]
)
def test_validate_id_rejects(value: Any) -> None:
    with pytest.raises(BadInput, match="invalid id"):
        validate_id(value)


def test_validate_command() -> None:
    assert validate_command("echo hi") == "echo hi"
    assert validate_command("x" * MAX_COMMAND_BYTES) == "x" * MAX_COMMAND_BYTES
    for bad, fragment in [
        (5, "must be a string"),
        (None, "must be a string"),
        (["echo"], "must be a string"),
        ("", "empty"),
        ("  \n\t", "empty"),
        ("echo \x00", "NUL"),
        ("x" * (MAX_COMMAND_BYTES + 1), "longer"),
        ("é" * (MAX_COMMAND_BYTES // 2 + 1), "longer"),
    ]:
        with pytest.raises(BadInput, match=fragment):
            validate_command(bad)


@pytest.mark.parametrize("text", ["echo \ud800", "echo \udcff", "\udfff"])
def test_command_must_be_storable_text(text: str) -> None:
    """A lone surrogate (from a JSON escape or a non-UTF-8 argv byte) cannot be stored as
    UTF-8 text; it must be refused as bad input, not crash the store later."""
    with pytest.raises(BadInput):
        validate_command(text)


def test_validate_int() -> None:
    assert validate_int("priority", -5) == -5
    assert validate_int("max_retries", 0, 0) == 0
    assert validate_int("priority", 2**62) == 2**62
    for value, fragment in [
        (True, "integer"),
        (1.0, "integer"),
        ("1", "integer"),
        (None, "integer"),
        (2**62 + 1, "out of range"),
        (-(2**62) - 1, "out of range"),
        (10**100, "out of range"),
    ]:
        with pytest.raises(BadInput, match=fragment):
            validate_int("priority", value)
    with pytest.raises(BadInput, match=r"'max_retries' must be >= 0, not -1"):
        validate_int("max_retries", -1, 0)


def test_validate_timeout() -> None:
    assert validate_timeout(30) == 30.0
    assert isinstance(validate_timeout(30), float)
    assert validate_timeout(0.5) == 0.5
    assert validate_timeout(10 * 365 * 86400) == 10 * 365 * 86400
    for value in [0, -1, 0.0, math.inf, -math.inf, math.nan, 10 * 365 * 86400 + 1, 1e300]:
        with pytest.raises(BadInput, match="timeout"):
            validate_timeout(value)
    for value in [True, None, [30], {}]:
        with pytest.raises(BadInput, match="must be a number of seconds or a duration"):
            validate_timeout(value)


def test_timeout_takes_a_duration_as_on_the_command_line() -> None:
    """`"timeout": "5m"` in JSON means what `--timeout 5m` means."""
    assert validate_timeout("5m") == 300.0
    assert validate_timeout("1h30m") == 5400.0
    assert validate_timeout("30") == 30.0
    assert parse_job_json('{"command": "x", "timeout": "250ms"}', CWD).timeout == 0.25
    for text, message in [
        ("soon", "'timeout': invalid duration 'soon'"),
        ("0s", "'timeout' must be a positive number of seconds"),
        ("3651d", "'timeout': duration '3651d' is too long; use at most 3650d"),
    ]:
        with pytest.raises(BadInput, match=message):
            validate_timeout(text)
    with pytest.raises(BadInput) as info:
        validate_timeout(10 * 365 * 86400 + 1)
    assert str(info.value) == "'timeout' is too long; use at most 3650d"


def test_validate_timeout_huge_integer() -> None:
    """An integer too big for a float is out of range, not an OverflowError."""
    with pytest.raises(BadInput, match="timeout"):
        validate_timeout(10**400)


def test_validate_env() -> None:
    assert validate_env({}) == {}
    assert validate_env({"A": "1", "B_2": ""}) == {"A": "1", "B_2": ""}
    for value in [
        {"": "x"},
        {"A=B": "x"},
        {"A\x00": "x"},
        {"A": 1},
        {"A": None},
        {"A": "x\x00"},
        ["A=1"],
        "A=1",
        5,
    ]:
        with pytest.raises(BadInput, match="env"):
            validate_env(value)


@pytest.mark.parametrize("value", ["nightly", "batch 7 / photos", "é" * 200, "x"])
def test_validate_label_accepts(value: str) -> None:
    assert validate_label(value) == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a\nb", "control character"),
        ("a\tb", "control character"),
        ("\x1b[31m", "control character"),
        ("x" * 201, "longer than 200"),
        ("\ud800", "UTF-8"),
        (5, "must be a string"),
        (["a"], "must be a string"),
    ],
)
def test_validate_label_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        validate_label(value)


def test_validate_cwd() -> None:
    assert validate_cwd("/tmp") == "/tmp"
    for value in ["", "relative/dir", ".", 5, None, "/a\x00b"]:
        with pytest.raises(BadInput, match="cwd"):
            validate_cwd(value)


# --- whole specs ------------------------------------------------------------------------------


def test_minimal_spec_takes_defaults() -> None:
    spec = parse_job_json('{"command": "echo hi"}', CWD)
    assert spec == JobSpec(command="echo hi", cwd=CWD)
    assert spec.id is None
    assert spec.max_retries is None  # the queue's config decides
    assert spec.timeout is None
    assert spec.run_at is None
    assert spec.priority == 0
    assert spec.env == {}


def test_full_spec() -> None:
    text = json.dumps(
        {
            "id": "job1",
            "command": "sleep 2",
            "max_retries": 5,
            "priority": -3,
            "timeout": 2.5,
            "run_at": "2026-01-31T09:00:00Z",
            "cwd": "/srv",
            "env": {"A": "b"},
            "label": "nightly",
        }
    )
    assert parse_job_json(text, CWD) == JobSpec(
        command="sleep 2",
        cwd="/srv",
        id="job1",
        max_retries=5,
        priority=-3,
        timeout=2.5,
        run_at=datetime(2026, 1, 31, 9, tzinfo=UTC).timestamp(),
        env={"A": "b"},
        label="nightly",
    )


def test_null_priority_means_the_default() -> None:
    """Like every other optional field, an explicit null takes the default."""
    assert parse_job_json('{"command": "x", "priority": null}', CWD).priority == 0


def test_nulls_mean_defaults() -> None:
    text = json.dumps(
        {
            "command": "x",
            "id": None,
            "max_retries": None,
            "timeout": None,
            "run_at": None,
            "cwd": None,
            "env": None,
            "label": None,
        }
    )
    assert parse_job_json(text, CWD) == JobSpec(command="x", cwd=CWD)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "invalid JSON"),
        ("{", "invalid JSON"),
        ("{'command': 'x'}", "invalid JSON"),
        ('{"command": "x"} extra', "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, ""),
        ("[]", "must be a JSON object, not an array"),
        ('"echo hi"', "must be a JSON object, not a string"),
        ("null", "not null"),
        ("42", "not an integer"),
        ("{}", "'command' is missing"),
        ('{"id": "a"}', "'command' is missing"),
        ('{"command": ""}', "empty"),
        ('{"command": "   "}', "empty"),
        ('{"command": 5}', "'command' must be a string"),
        ('{"command": "x", "colour": "red"}', "unknown field 'colour'"),
        ('{"command": "x", "Command": "y"}', "unknown field 'Command'"),
        ('{"command": "x", "priority": "high"}', "'priority' must be an integer, not a string"),
        ('{"command": "x", "priority": 1.5}', "'priority' must be an integer"),
        ('{"command": "x", "priority": true}', "'priority' must be an integer, not a boolean"),
        ('{"command": "x", "max_retries": -1}', "'max_retries' must be >= 0"),
        ('{"command": "x", "max_retries": "3"}', "'max_retries' must be an integer"),
        ('{"command": "x", "timeout": 0}', "timeout"),
        ('{"command": "x", "timeout": "soon"}', "'timeout': invalid duration"),
        ('{"command": "x", "timeout": "-5s"}', "'timeout': invalid duration"),
        ('{"command": "x", "label": ""}', "'label' is empty"),
        ('{"command": "x", "label": 7}', "'label' must be a string"),
        ('{"command": "x", "timeout": 1e999}', "timeout"),
        ('{"command": "x", "run_at": "2026-01-31T09:00:00"}', "no timezone"),
        ('{"command": "x", "run_at": 1700000000}', "'run_at' must be an ISO 8601 string"),
        ('{"command": "x", "run_at": "soon"}', "invalid time"),
        ('{"command": "x", "id": "has space"}', "invalid id"),
        ('{"command": "x", "id": 7}', "invalid id"),
        ('{"command": "x", "cwd": "rel"}', "absolute"),
        ('{"command": "x", "env": {"A": 1}}', "env"),
        ('{"command": "x", "env": "A=1"}', "env"),
    ],
)
def test_parse_job_json_rejects(text: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_job_json(text, CWD)
    assert fragment in str(info.value)


@pytest.mark.parametrize("env", [[], 0, False, ""])
def test_env_of_the_wrong_type_is_rejected_even_when_empty(env: Any) -> None:
    """`"env": []` is as wrong as `"env": ["A=1"]`; only an object or null is an env."""
    with pytest.raises(BadInput, match="env"):
        spec_from_dict({"command": "x", "env": env}, CWD)


def test_spec_from_dict_rejects_non_objects() -> None:
    for value in [None, [], "x", 1, 1.5, True]:
        with pytest.raises(BadInput, match="must be a JSON object"):
            spec_from_dict(value, CWD)


def test_spec_from_dict_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(BadInput) as info:
        spec_from_dict({"command": "x", "zzz": 1, "aaa": 2}, CWD)
    message = str(info.value)
    assert message.startswith("unknown field 'aaa'")
    assert all(name in message for name in FIELDS)


# --- ids ----------------------------------------------------------------------------------


def test_new_job_id_format() -> None:
    for _ in range(1000):
        job_id = new_job_id()
        assert len(job_id) == 12
        assert set(job_id) <= set("0123456789abcdefghjkmnpqrstvwxyz")
        assert ID_PATTERN.match(job_id)
        assert validate_id(job_id) == job_id


def test_new_job_ids_are_unique() -> None:
    ids = [new_job_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    # random, not a counter: the first characters vary too
    assert len({job_id[0] for job_id in ids}) == 32


# --- properties -------------------------------------------------------------------------------

# strings include lone surrogates (JSON can escape them) and integers go beyond any float
any_text = st.text() | st.builds(
    lambda before, lone, after: before + lone + after,
    st.text(max_size=5),
    st.characters(categories=["Cs"]),
    st.text(max_size=5),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**300, 10**400)
    | st.floats()
    | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | any_text, children, max_size=4)
    ),
    max_leaves=20,
)

iso_times = st.builds(
    lambda moment, offset: moment.replace(tzinfo=timezone(offset)).isoformat(),
    st.datetimes(),
    st.timedeltas(-timedelta(hours=23, minutes=59), timedelta(hours=23, minutes=59)),
)

# each known field holds either a plausible value or any JSON value
plausible = {
    "id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z"),
    "command": any_text,
    "max_retries": st.integers(0, 10),
    "priority": st.integers(),
    "timeout": st.floats(0.001, 1e6) | st.integers(1, 10**400),
    "run_at": iso_times | st.text(max_size=30),
    "cwd": st.just("/") | any_text,
    "env": st.dictionaries(any_text, any_text, max_size=3),
    "label": any_text,
}
job_like = st.fixed_dictionaries(
    {"command": plausible["command"] | json_values},
    optional={
        **{name: values | json_values for name, values in plausible.items() if name != "command"},
    },
)

json_texts = st.one_of(
    any_text,
    json_values.map(json.dumps),
    job_like.map(json.dumps),
)


def _only_bad_input(text: str) -> JobSpec | None:
    try:
        spec = parse_job_json(text, CWD)
    except BadInput as exc:
        message = str(exc)
        assert message and "\n" not in message.strip()
        return None
    assert isinstance(spec, JobSpec)
    return spec


def _check_accepted(spec: JobSpec | None) -> None:
    """Whatever is accepted can be stored as UTF-8 text and shown as a UTC time."""
    if spec is None:
        return
    for value in (spec.command, spec.cwd, spec.id or "", *spec.env, *spec.env.values()):
        value.encode("utf-8")
    if spec.run_at is not None:
        datetime.fromtimestamp(spec.run_at, UTC)


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(json_texts)
@example('{"command": "x", "timeout": 1' + "0" * 400 + "}")
@example('{"command": "echo \\ud800"}')
@example('{"command": "x", "env": {"A\\udc80": "1"}}')
@example('{"command": "x", "run_at": "9999-12-31T23:59:59-23:59"}')
def test_parse_job_json_raises_only_bad_input(text: str) -> None:
    _check_accepted(_only_bad_input(text))


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(job_like)
def test_known_fields_with_arbitrary_values(data: dict[str, Any]) -> None:
    _check_accepted(_only_bad_input(json.dumps(data)))


printable = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40
)

valid_specs = st.builds(
    JobSpec,
    command=printable.filter(str.strip),
    cwd=st.just("/") | st.from_regex(r"\A/[a-z0-9/_.-]{1,30}\Z"),
    id=st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,30}\Z"),
    max_retries=st.none() | st.integers(0, 2**62),
    priority=st.integers(-(2**62), 2**62),
    timeout=st.none() | st.floats(0.001, 10 * 365 * 86400.0),
    run_at=st.none() | st.integers(0, 4_000_000_000).map(float),
    env=st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00="), min_size=1, max_size=10),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10),
        max_size=3,
    ),
    label=st.none()
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=20).filter(
        str.strip
    ),
)


def _to_json(spec: JobSpec) -> str:
    data: dict[str, Any] = {
        "command": spec.command,
        "cwd": spec.cwd,
        "priority": spec.priority,
        "env": spec.env,
    }
    if spec.id is not None:
        data["id"] = spec.id
    if spec.max_retries is not None:
        data["max_retries"] = spec.max_retries
    if spec.timeout is not None:
        data["timeout"] = spec.timeout
    if spec.run_at is not None:
        data["run_at"] = datetime.fromtimestamp(spec.run_at, UTC).isoformat()
    if spec.label is not None:
        data["label"] = spec.label
    return json.dumps(data)


@given(valid_specs)
def test_valid_spec_round_trips(spec: JobSpec) -> None:
    assert parse_job_json(_to_json(spec), "/elsewhere") == spec


# --- the command line: a JSON job with options, and its refusals ------------------------------

JSON_JOB = '{"command": "echo hi", "id": "jp", "priority": 1, "env": {"A": "json", "B": "json"}}'


def test_options_override_the_json_fields() -> None:
    options = Shorthand(
        priority=5,
        max_retries=0,
        timeout="5m",
        cwd="/srv",
        env={"B": "option", "C": "option"},
        label="from the flag",
    )
    spec = job_from_args([JSON_JOB], CWD, options)
    assert spec == JobSpec(
        command="echo hi",
        cwd="/srv",
        id="jp",
        max_retries=0,
        priority=5,
        timeout=300.0,
        env={"A": "json", "B": "option", "C": "option"},
        label="from the flag",
    )


def test_json_fields_stay_when_no_option_names_them() -> None:
    spec = job_from_args([JSON_JOB], CWD, Shorthand(label="l"))
    assert (spec.id, spec.priority, spec.env, spec.cwd, spec.label) == (
        "jp",
        1,
        {"A": "json", "B": "json"},
        CWD,
        "l",
    )


def test_delay_or_run_at_replaces_the_json_run_at() -> None:
    job = '{"command": "x", "run_at": "2030-01-31T09:00:00Z"}'
    later = job_from_args([job], CWD, Shorthand(run_at="2031-01-31T09:00:00Z"))
    assert later.run_at == datetime(2031, 1, 31, 9, tzinfo=UTC).timestamp()
    before = time.time()
    soon = job_from_args([job], CWD, Shorthand(delay="1m"))
    assert soon.run_at is not None and before + 60 <= soon.run_at <= time.time() + 60
    with pytest.raises(BadInput, match="not both"):
        job_from_args([job], CWD, Shorthand(run_at="2031-01-31T09:00:00Z", delay="1m"))


def test_an_option_is_checked_like_the_json_field() -> None:
    with pytest.raises(BadInput, match="'timeout': invalid duration 'soon'"):
        job_from_args([JSON_JOB], CWD, Shorthand(timeout="soon"))
    with pytest.raises(BadInput, match="'max_retries' must be >= 0"):
        job_from_args([JSON_JOB], CWD, Shorthand(max_retries=-1))
    with pytest.raises(BadInput, match="'env' must be an object"):
        job_from_args(['{"command": "x", "env": []}'], CWD, Shorthand(env={"A": "1"}))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "nothing to enqueue"),
        (['{"command": "a"}', '{"command": "b"}'], "one JSON job per argument list; use --file"),
        (['{"command": "a"}', "echo", '{"command": "b"}'], "one JSON job per argument list"),
        (['{"command": "a"}', "extra"], "a JSON job takes no command words after it"),
        (['{"command": "a"'], "invalid JSON"),
        (["[1]"], ""),  # not a JSON object: the shell command `[1]`
    ],
)
def test_job_from_args_refusals(args: list[str], fragment: str) -> None:
    if not fragment:
        assert job_from_args(args, CWD, Shorthand()).command == "[1]"
        return
    with pytest.raises(BadInput, match=re.escape(fragment)):
        job_from_args(args, CWD, Shorthand(priority=5))


def test_words_are_one_shell_command() -> None:
    """A brace group or a JSON argument after the command's first word stays shell text."""
    assert job_from_args(["{", "echo", "a;", "}"], CWD, Shorthand()).command == "{ echo a; }"
    spec = job_from_args(["echo", '{"a": 1}'], CWD, Shorthand(label="x"))
    assert (spec.command, spec.label) == ('echo {"a": 1}', "x")


def test_env_options() -> None:
    assert env_options([], {}) is None
    assert env_options(["A=1", "B=x=y", "C=", "A=2"], {}) == {"A": "2", "B": "x=y", "C": ""}
    assert env_options(["HOME"], {"HOME": "/root"}) == {"HOME": "/root"}
    with pytest.raises(BadInput, match="NOPE is not set here; give NOPE=VALUE"):
        env_options(["NOPE"], {})
    with pytest.raises(BadInput, match="invalid variable name"):
        env_options(["=1"], {})


# --- --each: one job per line -----------------------------------------------------------------

TEMPLATE = JobSpec(command="convert {} {.}.png", cwd="/srv", priority=3, label="thumbs")


def test_each_replaces_placeholders_with_the_quoted_line() -> None:
    batch = each_batch(TEMPLATE, b"a.jpg\n\n  \nmy photo.jpg\r\n", "list.txt")
    assert [spec.command for spec in batch.specs] == [
        "convert a.jpg a.png",
        "convert 'my photo.jpg' 'my photo'.png",
    ]
    assert all(
        (spec.cwd, spec.priority, spec.label, spec.id) == ("/srv", 3, "thumbs", None)
        for spec in batch.specs
    )


@pytest.mark.parametrize(
    ("command", "line", "expected"),
    [
        ("echo {}", "dir/sub/file.tar.gz", "echo dir/sub/file.tar.gz"),
        ("echo {/}", "dir/sub/file.tar.gz", "echo file.tar.gz"),
        ("echo {//}", "dir/sub/file.tar.gz", "echo dir/sub"),
        ("echo {//}", "file", "echo ."),
        ("echo {.}", "dir/sub/file.tar.gz", "echo dir/sub/file.tar"),
        ("echo {.}", "dir.d/file", "echo dir.d/file"),
        ("echo {/.}", "dir/sub/file.tar.gz", "echo file.tar"),
        ("echo {/}", "photos/", "echo photos"),
        ("gzip", "a b", "gzip 'a b'"),  # no placeholder: the line is appended
        ("echo {} {}", "x", "echo x x"),
        ("echo {#}:{}", "x", "echo 1:x"),
        ("echo {}", "it's; rm -rf /", "echo 'it'\"'\"'s; rm -rf /'"),
        ("echo {}", "$(reboot)", "echo '$(reboot)'"),
        ("echo {x} {}", "a", "echo {x} a"),  # not a placeholder
    ],
)
def test_each_placeholders(command: str, line: str, expected: str) -> None:
    [spec] = each_batch(JobSpec(command=command, cwd="/"), line.encode(), "-").specs
    assert spec.command == expected


def test_each_numbers_jobs_without_the_blank_lines() -> None:
    batch = each_batch(JobSpec(command="echo {#}", cwd="/"), b"a\n\nb\nc", "-")
    assert [spec.command for spec in batch.specs] == ["echo 1", "echo 2", "echo 3"]


@pytest.mark.parametrize(
    ("data", "template", "fragment"),
    [
        (b"", TEMPLATE, "list.txt holds no lines"),
        (b"\n \n\r\n", TEMPLATE, "list.txt holds no lines"),
        (b"ok\n\xff\n", TEMPLATE, "list.txt line 2 is not UTF-8 text"),
        (b"ok\na\x00b\n", TEMPLATE, "list.txt line 2: 'command' contains a NUL byte"),
        (b"x" * MAX_COMMAND_BYTES, TEMPLATE, "list.txt line 1: 'command' is longer"),
        (b"a\n", JobSpec(command="x {}", cwd="/", id="one"), "--id names one job"),
    ],
)
def test_each_refusals(data: bytes, template: JobSpec, fragment: str) -> None:
    with pytest.raises(BadInput, match=re.escape(fragment)):
        each_batch(template, data, "list.txt")
