"""The retry schedule: pure functions so the policy is unit-tested apart from any clock or store."""

from __future__ import annotations

import random


def retry_delay(
    attempts: int, base: float, cap: float, jitter: float = 0.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the next attempt, after `attempts` failed attempts.

    min(base ** attempts, cap), then up to `jitter` (a fraction) added at random so that jobs
    that failed together do not all retry in the same instant.
    """
    if attempts < 0:
        raise ValueError("attempts must be >= 0")
    try:
        delay = min(base**attempts, cap)
    except OverflowError:
        delay = cap
    if jitter > 0:
        delay += delay * jitter * (rng or random).random()
    return delay
