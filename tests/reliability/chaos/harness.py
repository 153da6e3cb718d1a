"""What every scenario does around its engines: start them (on the tests' EngineGroup, with no
fault unless asked for), enqueue, and judge the engines' logs and leftovers at the end."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from engine_process import EngineGroup, EngineProcess
from helpers import Backend, run_cli, wait_for

from .result import BAD_ENGINE_LOG, Result

KILLED = -signal.SIGKILL
FAST_CONFIG = {"backoff-max": 0.0, "backoff-jitter": 0.0}  # retries are due at once


def fault(point: str) -> dict[str, str]:
    """The environment of an engine that crashes at `point` (queuectl.faults)."""
    return {"QUEUECTL_FAULT": point}


@contextmanager
def engines(backend: Backend, result: Result) -> Iterator[EngineGroup]:
    """An EngineGroup on the scenario's queue. QUEUECTL_FAULT is always set (start an engine
    with `env=fault(POINT)` to make it crash), so that a fault in the caller's environment never
    leaks into an engine meant to run without one. At the end every engine is stopped, their
    logs are scanned for what must never be there, and kept in the result if it failed."""
    group = EngineGroup(backend, env=fault(""))
    try:
        yield group
    finally:
        group.close()
        for engine in group.started:
            result.scan(f"engine {engine.pid} log", engine.log(), BAD_ENGINE_LOG)
        if not result.ok:
            result.logs += f"engine logs of {backend.home}:\n{group.logs(tail=40)}\n"


def dead_engines_left_nothing(result: Result, dead: Sequence[EngineProcess]) -> None:
    """No process of a job started by a killed engine may outlive the next engine's recovery."""
    for engine in dead:
        try:
            wait_for(lambda engine=engine: not engine.job_groups(), timeout=3)
        except AssertionError:
            groups = sorted(engine.job_groups())
            result.problem(
                f"processes of jobs of the killed engine {engine.pid} still run "
                f"in process groups {groups}"
            )


def engine_id(engine: EngineProcess) -> str | None:
    """The engine id from its log line `engine ID started: ...` (None if it never got there)."""
    for line in engine.log().splitlines():
        if " engine " in line and " started: " in line:
            return line.split(" engine ", 1)[1].split(" started: ", 1)[0]
    return None


def enqueue_file(backend: Backend, specs: Sequence[dict[str, Any]]) -> None:
    """`queuectl enqueue --file` of the specs, which must all be accepted."""
    path = backend.home / f"jobs-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
    result = run_cli(backend.home, *backend.cli_args(), "enqueue", "--file", str(path), check=True)
    assert result.stdout.strip() == f"enqueued {len(specs)} jobs", result.stdout
