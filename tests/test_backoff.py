"""The retry schedule: exponential, capped, with bounded jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl.backoff import retry_delay


@pytest.mark.parametrize(
    ("attempts", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 1024.0)]
)
def test_exponential_in_attempts(attempts: int, expected: float) -> None:
    assert retry_delay(attempts, 2.0, 1e9) == expected


def test_other_base() -> None:
    assert retry_delay(3, 3.0, 1e9) == 27.0
    assert retry_delay(5, 1.0, 1e9) == 1.0


def test_capped() -> None:
    assert retry_delay(11, 2.0, 1000.0) == 1000.0
    assert retry_delay(9, 2.0, 1000.0) == 512.0
    assert retry_delay(3, 2.0, 0.0) == 0.0


def test_monotonic_until_the_cap() -> None:
    delays = [retry_delay(n, 2.0, 3600.0) for n in range(30)]
    assert delays == sorted(delays)
    assert delays[-1] == 3600.0
    assert max(delays) == 3600.0


@pytest.mark.parametrize("attempts", [1024, 10_000, 10**6, 10**9])
@pytest.mark.parametrize("base", [2.0, 1.5, 1000.0])
def test_huge_attempts_give_the_cap(attempts: int, base: float) -> None:
    assert retry_delay(attempts, base, 3600.0) == 3600.0


@pytest.mark.parametrize("attempts", [-1, -100])
def test_negative_attempts_raise(attempts: int) -> None:
    with pytest.raises(ValueError, match="attempts"):
        retry_delay(attempts, 2.0, 3600.0)


def test_jitter_bounds_with_seeded_rng() -> None:
    rng = random.Random(1234)
    delays = [retry_delay(4, 2.0, 3600.0, jitter=0.5, rng=rng) for _ in range(2000)]
    assert all(16.0 <= d <= 24.0 for d in delays)
    # the jitter really is spread over the range, not a constant
    assert min(delays) < 17.0
    assert max(delays) > 23.0


def test_jitter_is_reproducible_with_the_same_seed() -> None:
    first = [retry_delay(3, 2.0, 60.0, 0.1, random.Random(7)) for _ in range(3)]
    again = [retry_delay(3, 2.0, 60.0, 0.1, random.Random(7)) for _ in range(3)]
    assert first == again
    one_rng = random.Random(7)
    sequence = [retry_delay(3, 2.0, 60.0, 0.1, one_rng) for _ in range(5)]
    assert len(set(sequence)) == 5


def test_no_jitter_ignores_the_rng() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert retry_delay(5, 2.0, 3600.0, jitter=0.0, rng=rng) == 32.0
    assert rng.getstate() == state


def test_jitter_applies_to_the_capped_delay() -> None:
    rng = random.Random(99)
    delays = [retry_delay(50, 2.0, 100.0, jitter=0.1, rng=rng) for _ in range(500)]
    assert all(100.0 <= d <= 110.0 for d in delays)
    assert len(set(delays)) > 1


@given(
    attempts=st.integers(0, 10**6),
    base=st.floats(1.0, 1000.0),
    cap=st.floats(0.0, 365 * 86400.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(),
)
def test_delay_is_always_within_bounds(
    attempts: int, base: float, cap: float, jitter: float, seed: int
) -> None:
    delay = retry_delay(attempts, base, cap, jitter, random.Random(seed))
    plain = retry_delay(attempts, base, cap)
    assert 0.0 <= plain <= cap
    assert plain <= delay <= plain * (1 + jitter)
