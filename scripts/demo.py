"""`make demo`: a tour of queuectl on a throw-away queue, ending by itself in under a minute.

Runs the real CLI and a real engine process: a success, a job that fails into the DLQ, a
timeout, a scheduled job and priorities; `wait` for them, then status, list, the DLQ, logs
and a job's history. Then what a user does about the failures: the DLQ job failed because a
file it reads is missing, so the demo creates the file and retries it (it completes); the
timed-out job gets a longer timeout and is restarted. Last, a job's output followed live, and a
clean stop. `scripts/record_demo.py` records this tour as docs/demo.cast.
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
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="queuectl-demo-")
WORK = Path(HOME) / "project"  # the jobs' directory
BASE = [sys.executable, "-m", "queuectl", "--home", HOME]
#: the jobs started before the engine, each of which `wait` sees to its end
FIRST_JOBS = ("hello", "flaky", "slow", "later", "prio-0", "prio-5", "prio-10")


def say(text: str) -> None:
    print(f"\n\033[1m## {text}\033[0m" if sys.stdout.isatty() else f"\n## {text}", flush=True)


def q(*args: str, code: int = 0) -> None:
    """Run `queuectl ARGS` on the terminal (its output shows as it comes, as `logs -f` must);
    stop the demo unless it exits `code`."""
    print(f"$ queuectl {shlex.join(args)}", flush=True)
    returned = subprocess.run([*BASE, *args], check=False).returncode
    if returned != code:
        raise SystemExit(f"demo: `queuectl {shlex.join(args)}` exited {returned}, expected {code}")


def running(job_id: str, timeout: float = 10.0) -> None:
    """Wait until the engine runs the job (its output can then be followed live)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(
            [*BASE, "status", "--json"], capture_output=True, text=True, check=True
        )
        if any(job["id"] == job_id for job in json.loads(result.stdout)["engine"]["running_jobs"]):
            return
        time.sleep(0.05)
    raise SystemExit(f"demo: job {job_id} did not start within {timeout:g}s")


def main() -> None:
    start = time.monotonic()
    WORK.mkdir()
    say(f"a throw-away queue in {HOME}")
    q("config", "set", "backoff-base", "1.5")
    q("config", "set", "kill-grace", "1s")

    say("enqueue: a success, a job that fails, a timeout, a scheduled job, priorities")
    q("enqueue", '{"id": "hello", "command": "echo hello from queuectl"}')
    # fails while settings.ini is missing from its directory: a cause the demo fixes later
    q(
        "enqueue",
        "--id",
        "flaky",
        "--max-retries",
        "2",
        "--cwd",
        str(WORK),
        "--",
        "cat settings.ini",
    )
    q("enqueue", "--id", "slow", "--timeout", "1s", "--max-retries", "0", "--", "sleep 2")
    q("enqueue", "--id", "later", "--delay", "3s", "--", "echo scheduled job ran at $(date +%T)")
    for priority in (0, 5, 10):
        q("enqueue", "--id", f"prio-{priority}", "--priority", str(priority), "--", "true")
    q("list")

    say("start the engine (4 workers); `wait` blocks until each job is finished")
    engine = subprocess.Popen([*BASE, "worker", "start", "--concurrency", "4"])
    try:
        q("wait", *FIRST_JOBS, code=1)  # exit 1: not all of them completed
        q("status")
        q("list")
        q("dlq", "list")
        q("logs", "flaky")
        q("logs", "later")
        q("show", "flaky")

        say("retrying flaky as it is would fail the same way: fix its cause first, then retry")
        (WORK / "settings.ini").write_text("[demo]\nready = yes\n")
        print(f"(created {WORK / 'settings.ini'})", flush=True)
        q("dlq", "retry", "flaky")
        q("wait", "flaky")
        q("logs", "flaky")

        say("slow timed out after 1s: give it a longer timeout and restart it")
        q("edit", "slow", "--timeout", "10s")
        q("restart", "slow")
        q("wait", "slow")

        say("follow a running job's output live; `logs -f` ends when the job does")
        q(
            "enqueue",
            "--id",
            "render",
            "--",
            'for i in 1 2 3; do echo "frame $i"; sleep 0.5; done; echo "oops" >&2',
        )
        running("render")
        q("logs", "-f", "render")
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
