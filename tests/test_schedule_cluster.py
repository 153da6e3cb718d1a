"""Three engines on one PostgreSQL database, each on its own "host" (a home of its own, as in
test_cluster.py), over two real minutes of a `* * * * *` schedule: each minute's tick is
enqueued exactly once, on time, whichever engine takes it, and runs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from engine_process import timestamp
from helpers import wait_for
from sites import Site, start

#: a tick's job must be enqueued this soon after its minute begins (the engines sleep to it)
ON_TIME = 3.0


def jobs_of(site: Site) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = site.json("list", "--limit", "1000")
    return listed


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_three_engines_enqueue_each_minute_once(sites: Callable[[], Site]) -> None:
    a, b, c, here = sites(), sites(), sites(), sites()
    here.cli("enqueue", "--id", "warm-up", "--", "true", check=True)  # creates the schema
    engines = [start(site, "-c", "2") for site in (a, b, c)]
    # add the schedule ~12 s before a minute: the engines see it within their longest sleep
    # (10 s) and sleep to the minute; ticks before it was added are not due
    wait = (48 - time.time() % 60) % 60
    time.sleep(wait)
    here.cli("schedule", "add", "tick", "--cron", "* * * * *", "--", "echo", "tock", check=True)
    [made] = here.json("schedule", "list")
    first = (timestamp(made["created_at"]) // 60 + 1) * 60  # the minute after the add
    minutes = [first, first + 60]
    # past the second tick by more than an engine's longest sleep: a second enqueue of it by
    # another engine would have come by then
    time.sleep(max(0.0, minutes[-1] + 12 - time.time()))

    def all_ran() -> list[dict[str, Any]] | None:
        jobs = [job for job in jobs_of(here) if job["label"] == "schedule:tick"]
        return jobs if all(job["state"] == "completed" for job in jobs) else None

    jobs = wait_for(all_ran, 20)
    per_minute = Counter(timestamp(job["created_at"]) // 60 * 60 for job in jobs)
    assert per_minute == Counter({minute: 1 for minute in minutes}), (per_minute, minutes)
    for job in jobs:
        late = timestamp(job["created_at"]) % 60
        assert late < ON_TIME, f"enqueued {late:.1f}s after its minute"
    [schedule] = here.json("schedule", "list")
    assert timestamp(schedule["last_fire_at"]) == minutes[-1]
    assert schedule["last_job_state"] == "completed"
    assert all(engine.alive() for engine in engines)
    logs = "\n".join(site.engines.logs() for site in (a, b, c))
    assert logs.count("schedule tick: enqueued") == 2, logs
