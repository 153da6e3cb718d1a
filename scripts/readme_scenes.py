"""The README's examples, scene by scene, for scripts/readme.py (which runs them, in this order,
on one throw-away queue, and writes what they print into README.md).

A scene is the commands of one README block. Hidden steps set the stage (files, waiting for a
job to be running) without being shown. Each step's exit code is checked (`code`), so a scene
that stops working fails `make readme` and tests/test_readme.py instead of printing an error
into the README. Keep the output deterministic: give jobs ids, and let no two jobs run at once
where the order of their lines would matter.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    line: str  # run by /bin/sh in ~/project, `queuectl` on PATH
    shown: bool = True
    code: int | None = 0  # the exit code required (None: any)
    input: str | None = None


def hidden(line: str, code: int | None = 0, input: str | None = None) -> Step:
    return Step(line, shown=False, code=code, input=input)


PYTHON = shlex.quote(sys.executable)


def until(python_condition: str, on: str = "queuectl status --json") -> Step:
    """Wait (hidden) until `python_condition` holds of `data`, the JSON that `on` prints."""
    check = (
        f"import json, sys; data = json.load(sys.stdin); sys.exit(0 if {python_condition} else 1)"
    )
    return hidden(f"until {on} | {PYTHON} -c {shlex.quote(check)}; do sleep 0.05; done")


def running(job_id: str) -> Step:
    return until(f"any(job['id'] == {job_id!r} for job in data['engine']['running_jobs'])")


JOBS_FILE = (
    '{"id": "resize-1", "command": "echo resized photo 1", "priority": 1}\n'
    '{"id": "resize-2", "command": "echo resized photo 2", "priority": 1, "timeout": "30s"}\n'
)

SCENES: dict[str, list[Step]] = {
    "enqueue": [
        Step("""queuectl enqueue '{"id": "hello", "command": "echo hello from queuectl"}'"""),
        Step(
            "queuectl enqueue --id flaky --max-retries 2 -- "
            "'echo working; echo something broke >&2; exit 3'"
        ),
        hidden("cat > jobs.jsonl", input=JOBS_FILE),
        Step("cat jobs.jsonl"),
        Step("queuectl enqueue --file jobs.jsonl"),
        Step("queuectl list"),
    ],
    "worker": [
        # one worker: the jobs run one after the other, so their lines come in one order
        Step("queuectl worker start --concurrency 1 --until-empty"),
    ],
    "look": [
        Step("queuectl status"),
        Step("queuectl list"),
        Step("queuectl show flaky"),
        Step("queuectl logs flaky"),
    ],
    "dlq": [
        Step("queuectl dlq list"),
        Step("queuectl edit flaky --command 'echo working; echo fixed'"),
        Step("queuectl dlq retry flaky"),
        Step("queuectl worker start --detach --concurrency 2"),
        Step('queuectl wait flaky; echo "exit $?"'),
        Step("queuectl logs flaky"),
    ],
    "schedule": [
        Step(
            "queuectl enqueue --id nightly --priority 5 --delay 2h --label reports -- make report"
        ),
        Step("queuectl list --state pending --sort next-run"),
        Step("queuectl edit nightly --delay 1h"),
        Step("queuectl enqueue --id new-year --run-at 2030-01-01T00:00:00+01:00 -- echo 2030"),
        Step("queuectl cancel new-year"),
    ],
    "running": [
        Step(
            "queuectl enqueue --id render --timeout 1m -- "
            """'for i in 1 2 3; do echo "frame $i"; sleep 1; done'"""
        ),
        running("render"),
        Step("queuectl status"),
        Step("queuectl logs -f render"),
        Step("queuectl enqueue --id stuck --max-retries 0 -- sleep 600"),
        running("stuck"),
        Step("queuectl kill stuck"),
        # render ended first (logs -f waited for it), so the lines come in this order
        Step('queuectl wait render stuck; echo "exit $?"'),
    ],
    "restart": [
        Step("queuectl restart hello"),
        Step("queuectl wait hello"),
        Step("queuectl show hello"),
    ],
    "each": [
        hidden("touch beach.jpg city.jpg forest.jpg && mkdir backup"),
        Step("ls *.jpg | queuectl enqueue --each - --label backup -- cp {} backup/{/.}-1.jpg"),
        until(
            "len(data) == 3 and all(job['state'] == 'completed' for job in data)",
            on="queuectl list --grep backup --json",
        ),
        Step("ls backup"),
        Step("queuectl purge --state completed --dry-run"),
        Step("queuectl purge --state completed"),
    ],
    "errors": [
        Step("""queuectl enqueue '{"command": "echo hi", "retries": 3}'""", code=2),
        Step("queuectl enqueue --timeout 1y -- true", code=2),
        Step("queuectl show no-such-job", code=2),
        Step("queuectl --home ~/typo status", code=1),
    ],
    "json": [
        Step("queuectl list --json --limit 1"),
        Step("queuectl status --json"),
    ],
    "config": [
        Step("queuectl config set backoff-base 3"),
        Step("queuectl config get backoff-base"),
        Step("queuectl config list"),
    ],
    "stop": [
        Step("queuectl pause"),
        Step("queuectl status"),
        Step("queuectl resume"),
        Step("queuectl worker stop"),
    ],
}
