"""The Jinja2 environment of the dashboard (autoescape on for everything) and the helpers the
templates use: times, durations, and the throughput chart laid out as inline SVG.

The chart is drawn on the server: an SVG of rectangles needs no script, so it works without
JavaScript and under a Content-Security-Policy that forbids inline script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jinja2

from queuectl.render import duration, iso, local_time, relative
from queuectl.service.stats import ExecStats
from queuectl.states import JobState

CHART_WIDTH = 600
CHART_HEIGHT = 120
_BAR = CHART_WIDTH / 60


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # completed or failed
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int  # the largest minute's total, the top of the scale


def chart(stats: ExecStats) -> Chart:
    """Completed (bottom) and failed (on top) per minute, the current minute on the right."""
    peak = max((m.completed + m.failed for m in stats.minutes), default=0)
    scale = (CHART_HEIGHT - 4) / peak if peak else 0.0
    bars = []
    for index, minute in enumerate(stats.minutes):
        x = index * _BAR
        label = time.strftime("%H:%M", time.localtime(minute.start))
        done = minute.completed * scale
        bars.append(
            Bar(x, CHART_HEIGHT - done, _BAR - 1, done, "completed",
                f"{label}: {minute.completed} completed")
        )  # fmt: skip
        fail = minute.failed * scale
        bars.append(
            Bar(x, CHART_HEIGHT - done - fail, _BAR - 1, fail, "failed",
                f"{label}: {minute.failed} failed")
        )  # fmt: skip
    return Chart(CHART_WIDTH, CHART_HEIGHT, tuple(b for b in bars if b.height > 0), peak)


def _ago(ts: float | None) -> str:
    return relative(ts) if ts is not None else "-"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("queuectl.web", "templates"),
        autoescape=True,  # every template, whatever its name: commands and output are data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Any] = {
        "duration": duration,
        "iso": iso,
        "clock": local_time,
        "ago": _ago,
    }
    env.filters.update(filters)
    env.globals.update({"states": list(JobState), "chart": chart})
    return env
