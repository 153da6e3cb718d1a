"""`make demo`: a tour of queuectl on a throw-away queue, ending by itself in under a minute.

Runs the real CLI and a real engine process: success, failure with retries into the DLQ, a
timeout, a scheduled job and priorities; then status, list, dlq, logs, a DLQ retry and a
clean stop.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HOME = tempfile.mkdtemp(prefix="queuectl-demo-")
BASE = [sys.executable, "-m", "queuectl", "--home", HOME]


def say(text: str) -> None:
    print(f"\n\033[1m## {text}\033[0m" if sys.stdout.isatty() else f"\n## {text}", flush=True)


def q(*args: str) -> str:
    print(f"$ queuectl {shlex.join(args)}", flush=True)
    result = subprocess.run([*BASE, *args], capture_output=True, text=True, check=False)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    sys.stdout.flush()
    if result.returncode != 0:
        raise SystemExit(f"demo: `queuectl {shlex.join(args)}` exited {result.returncode}")
    return result.stdout


def counts() -> dict[str, int]:
    result = subprocess.run([*BASE, "status", "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["counts"]


def settle(deadline: float) -> None:
    """Wait until nothing is pending, running or waiting for a retry."""
    while time.monotonic() < deadline:
        now = counts()
        if now["pending"] == now["processing"] == now["failed"] == 0:
            return
        time.sleep(0.3)
    raise SystemExit("demo: jobs did not settle in time")


def main() -> None:
    start = time.monotonic()
    say(f"a throw-away queue in {HOME}")
    q("config", "set", "backoff-base", "1.5")
    q("config", "set", "kill-grace", "1s")

    say("enqueue: a success, a failure with retries, a timeout, a scheduled job, priorities")
    q("enqueue", '{"id": "hello", "command": "echo hello from queuectl"}')
    q(
        "enqueue",
        "--id",
        "flaky",
        "--max-retries",
        "2",
        "--",
        "echo starting; echo something broke >&2; exit 3",
    )
    q("enqueue", "--id", "slow", "--timeout", "1s", "--max-retries", "0", "--", "sleep 30")
    q("enqueue", "--id", "later", "--delay", "3s", "--", "echo scheduled job ran at $(date +%T)")
    for priority in (0, 5, 10):
        q(
            "enqueue",
            "--id",
            f"prio-{priority}",
            "--priority",
            str(priority),
            "--",
            f"echo priority {priority}",
        )
    q("list")

    say("start the engine (4 workers) and let the jobs settle")
    engine = subprocess.Popen([*BASE, "worker", "start", "--concurrency", "4"])
    try:
        time.sleep(0.5)
        q("status")
        settle(start + 45)
        q("status")
        q("list")
        q("dlq", "list")
        q("logs", "flaky")
        q("logs", "later")
        q("show", "flaky")

        say("retry the dead jobs from the DLQ: they run again")
        q("dlq", "retry", "--all")
        settle(start + 55)
        q("status")
    finally:
        say("stop the engine (SIGTERM: running jobs finish first)")
        engine.send_signal(signal.SIGTERM)
        code = engine.wait(timeout=30)
    print(f"engine exited with code {code}; demo took {time.monotonic() - start:.1f}s")
    print(f"(the demo queue stays in {HOME}; `rm -r {HOME}` to remove it)")
    if code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    os.environ.pop("QUEUECTL_HOME", None)
    main()
