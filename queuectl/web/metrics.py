"""GET /metrics: the queue in Prometheus' text format, built with prometheus_client.

Which process exports what (so that nothing is counted twice):
- Gauges are read from the queue's database at each scrape (jobs per state, oldest pending
  age, paused) and from this host's engine over its control socket (engine up, busy and total
  slots). They describe the queue, not the process: every web process of one queue exports the
  same values.
- Engines export nothing over HTTP; `queuectl_engine_attempts_total` is the engine's own count
  of attempts since it started (its `status` reply), labelled by engine id, so each engine's
  attempts are counted once whichever web process reads them.
- `queuectl_jobs_finished_total` and the duration and wait histograms are kept by this web
  process: at each scrape it reads the jobs that ended since the last (Store.finished_since)
  and adds them once each. They start at zero when the process starts (a counter reset, which
  rate() handles). Two web processes on one queue count the same jobs: scrape one of them for
  these, or aggregate with max(), never sum().
No label carries a job id, a command or an attempt.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from queuectl.models import Job
from queuectl.service import QueueStatus
from queuectl.states import JobState

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0)
#: how far before the last scrape's newest end the next scrape looks again (a commit may land
#: a little after the time it recorded), its jobs told apart by (id, run, end)
OVERLAP = 30.0
READ_LIMIT = 100_000
OUTCOMES = ("completed", "failed", "dead", "canceled")


@dataclass(slots=True)
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        running, found = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            found.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return found


@dataclass(slots=True)
class FinishTracker:
    """The jobs that ended since this process started, each counted once."""

    since: float = field(default_factory=time.time)
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    durations: dict[str, Histogram] = field(default_factory=dict)
    wait: Histogram = field(default_factory=lambda: Histogram(WAIT_BUCKETS))
    _seen: dict[tuple[str, int, float], float] = field(default_factory=dict)

    def add(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            end = job.finished_at
            if end is None or end < self.since or job.state.value not in self.finished:
                continue
            key = (job.id, job.runs, end)
            if key in self._seen:
                continue
            self._seen[key] = end
            outcome = job.state.value
            self.finished[outcome] += 1
            if job.started_at is not None:
                spent = max(0.0, end - job.started_at)
                self.durations.setdefault(outcome, Histogram(DURATION_BUCKETS)).observe(spent)
                if job.runs == 1:  # the first run's wait: start - max(created, run at)
                    self.wait.observe(max(0.0, job.started_at - max(job.created_at, job.run_at)))
        newest = max(self._seen.values(), default=self.since)
        horizon = newest - OVERLAP
        self._seen = {key: end for key, end in self._seen.items() if end >= horizon}
        self.since = max(self.since, horizon)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape read, before prometheus_client lays it out."""

    status: QueueStatus
    oldest_pending_age: float | None
    tracker: FinishTracker


class QueueCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        status = self.snapshot.status
        jobs = GaugeMetricFamily("queuectl_jobs", "Jobs in the queue, per state.", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], status.counts.get(state, 0))
        yield jobs
        yield GaugeMetricFamily(
            "queuectl_oldest_pending_age_seconds",
            "How long the pending job due first has been due (0: none is due).",
            value=self.snapshot.oldest_pending_age or 0.0,
        )
        yield GaugeMetricFamily(
            "queuectl_paused", "1 while the queue is paused.", value=1.0 if status.paused else 0.0
        )
        yield from self._engine(status)
        yield from self._finished(self.snapshot.tracker)

    def _engine(self, status: QueueStatus) -> Iterator[Metric]:
        engine = status.engine
        name = engine.id or (f"pid:{engine.pid}" if engine.pid else "")
        up = GaugeMetricFamily(
            "queuectl_engine_up", "1 when this host's engine answers.", labels=["engine"]
        )
        slots = GaugeMetricFamily(
            "queuectl_engine_slots", "The engine's worker slots.", labels=["engine", "kind"]
        )
        attempts = CounterMetricFamily(
            "queuectl_engine_attempts",
            "Attempts the engine ended since it started, by outcome.",
            labels=["engine", "outcome"],
        )
        if engine.running:
            up.add_metric([name], 1.0 if engine.answered else 0.0)
        if engine.answered:
            slots.add_metric([name, "total"], float(engine.concurrency or 0))
            slots.add_metric([name, "busy"], float(len(engine.running_jobs)))
            attempts.add_metric([name, "completed"], float(engine.completed or 0))
            attempts.add_metric([name, "failed"], float(engine.failed or 0))
        yield from (up, slots, attempts)

    def _finished(self, tracker: FinishTracker) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            "queuectl_jobs_finished",
            "Jobs whose attempt ended, by how (counted by this web process since it started).",
            labels=["outcome"],
        )
        for outcome, count in tracker.finished.items():
            finished.add_metric([outcome], float(count))
        yield finished
        duration = HistogramMetricFamily(
            "queuectl_job_duration_seconds",
            "How long jobs' attempts ran, by outcome.",
            labels=["outcome"],
        )
        for outcome, histogram in sorted(tracker.durations.items()):
            duration.add_metric([outcome], histogram.buckets(), histogram.total)
        yield duration
        wait = HistogramMetricFamily(
            "queuectl_job_wait_seconds",
            "How long jobs waited to start: start - max(created, run at), first attempts.",
        )
        wait.add_metric([], tracker.wait.buckets(), tracker.wait.total)
        yield wait


def exposition(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(snapshot))
    return generate_latest(registry)
