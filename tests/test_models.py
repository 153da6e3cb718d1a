"""The data a queue holds: job states by name, and the records' derived properties.

(The parsing and validation of job specs, which used to live in models.py, is tested in
test_specs.py.)
"""

from __future__ import annotations

import dataclasses

import pytest

from queuectl.errors import BadInput
from queuectl.models import Attempt, JobSpec, Outcome
from queuectl.states import ErrorKind, JobState, OutcomeKind

# --- states by name ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(JobState))
def test_job_state_parse(state: JobState) -> None:
    assert JobState.parse(state.value) is state
    assert JobState.parse(state.value.upper()) is state


@pytest.mark.parametrize("text", ["", "bogus", "done", " pending"])
def test_job_state_parse_rejects(text: str) -> None:
    with pytest.raises(BadInput) as info:
        JobState.parse(text)
    message = str(info.value)
    assert message.startswith(f"unknown state {text!r}")
    assert all(state.value in message for state in JobState)


def test_job_state_values_are_stable() -> None:
    assert [s.value for s in JobState] == [
        "blocked",
        "pending",
        "processing",
        "completed",
        "failed",
        "dead",
        "canceled",
    ]


# --- records ----------------------------------------------------------------------------------


def test_an_outcome_without_an_error_kind_is_a_success() -> None:
    assert Outcome().error_kind is None
    assert Outcome().kind is OutcomeKind.SUCCESS
    assert Outcome(None, exit_code=0).kind is OutcomeKind.SUCCESS
    assert (Outcome().stdout, Outcome().stderr) == (b"", b"")
    assert not (Outcome().stdout_truncated or Outcome().stderr_truncated)


@pytest.mark.parametrize(
    ("error_kind", "kind"),
    [
        (ErrorKind.EXIT, OutcomeKind.FAILURE),
        (ErrorKind.TIMEOUT, OutcomeKind.FAILURE),
        (ErrorKind.SPAWN, OutcomeKind.FAILURE),
        (ErrorKind.ENGINE_DIED, OutcomeKind.FAILURE),
        (ErrorKind.INTERRUPTED, OutcomeKind.INTERRUPTED),
        (ErrorKind.CANCELED, OutcomeKind.CANCELED),
    ],
)
def test_an_outcome_kind_follows_from_its_error_kind(
    error_kind: ErrorKind, kind: OutcomeKind
) -> None:
    assert Outcome(error_kind, error="x").kind is kind


def test_every_error_kind_has_an_outcome_kind() -> None:
    assert {Outcome(kind).kind for kind in ErrorKind} == set(OutcomeKind) - {OutcomeKind.SUCCESS}


def _attempt(started_at: float, finished_at: float | None) -> Attempt:
    return Attempt(
        job_id="a",
        run=1,
        engine="e1",
        started_at=started_at,
        finished_at=finished_at,
        exit_code=None,
        error=None,
        stdout=b"",
        stderr=b"",
        stdout_truncated=False,
        stderr_truncated=False,
    )


def test_attempt_duration() -> None:
    assert _attempt(100.0, 102.5).duration == 2.5
    assert _attempt(100.0, None).duration is None
    assert _attempt(100.0, None).error_kind is None


def test_records_are_frozen() -> None:
    spec = JobSpec(command="true", cwd="/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.command = "false"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Outcome().error = "x"  # type: ignore[misc]
    # each spec gets its own env
    assert JobSpec(command="true", cwd="/").env is not spec.env
