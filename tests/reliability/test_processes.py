"""Reliability of the engine's process handling, with real engines running real commands.

4. Stopping: SIGTERM or SIGINT lets running jobs finish (exit 0); a job that ignores SIGTERM is
   SIGKILLed one kill-grace after a second signal, `worker stop --timeout` or its own timeout,
   and nothing of its process group survives. Interrupted jobs go back to pending without
   using an attempt.
5. Stragglers: a background grandchild that keeps the job's stdout open does not keep the job
   running; it is killed with the job's process group.
6. Floods: 200 MB on stdout and 200 MB on stderr, without a newline, neither deadlock nor grow
   the engine's memory; the stored output is the tail of output-limit bytes, with the marker.

Nothing is mocked. Waiting is by polling (`wait_for`) the queue through the Store; timing
bounds are loose because the suite shares two cores with other work.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_process import StartEngine, show
from helpers import Backend, all_jobs, configure, get_job, job_attempts, wait_for

from queuectl.procfs import alive as running
from queuectl.procfs import group_members
from queuectl.procfs import status as proc_status
from queuectl.states import ErrorKind

MB = 1000 * 1000
STOP_REASON = "interrupted: the engine was stopped"
TRUNCATED = "queuectl: [... earlier {} truncated (config output-limit) ...]\n"
GRACE = 1.0  # config kill-grace in these tests
SLACK = 5.0  # seconds allowed on top of a deadline on a busy, shared machine
FLOOD_BYTES = 200_000_000  # per stream
FLOOD_RSS_LIMIT = 100 * 1024 * 1024
OUTPUT_LIMIT = 256 * 1024  # config output-limit in the flood test


# --- helpers ----------------------------------------------------------------------------------


def enqueue(cli: Any, **spec: Any) -> None:
    cli("enqueue", json.dumps(spec), check=True)


def processing_groups(backend: Backend, ids: Sequence[str]) -> dict[str, int] | None:
    """{job id: its process group} once every job runs and has its pid recorded."""
    jobs = all_jobs(backend)
    groups = {job_id: jobs[job_id].pid for job_id in ids if job_id in jobs}
    if all(groups.get(job_id) and jobs[job_id].state == "processing" for job_id in ids):
        return {job_id: pid for job_id, pid in groups.items() if pid}
    return None


def term_ignored(pid: int) -> bool:
    """SIGTERM is in the process's ignored set (SigIgn in /proc/PID/status)."""
    try:
        ignored = proc_status(pid).get("SigIgn")
    except OSError:
        return False
    return ignored is not None and bool(int(ignored, 16) & (1 << (signal.SIGTERM - 1)))


def stubborn_members(pgid: int) -> list[int]:
    """The group's processes once its `sleep` runs and every one of them ignores SIGTERM."""
    members = group_members(pgid)
    names = []
    for pid in members:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            return []
    if "sleep" in names and all(term_ignored(pid) for pid in members):
        return members
    return []


def assert_back_to_pending(cli: Any, job_id: str) -> None:
    """Interrupted by the engine's stop: pending again, the attempt not counted."""
    result = show(cli, job_id)
    assert (result["state"], result["attempts"], result["runs"]) == ("pending", 0, 1), result
    assert result["lease_owner"] is None and result["pid"] is None
    [attempt] = result["history"]
    assert attempt["error"] == STOP_REASON
    assert attempt["error_kind"] == ErrorKind.INTERRUPTED
    assert attempt["exit_code"] is None  # killed by a signal
    assert attempt["finished_at"] is not None


class RssSampler:
    """Polls VmRSS of a process every `interval` seconds in a thread; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = proc_status(self.pid).get("VmRSS")
            except OSError:
                return
            if rss is not None:
                self.max_kib = max(self.max_kib, int(rss.split()[0]))
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --- 4. stopping ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_stop_signal_lets_running_jobs_finish(
    home: Path, backend: Backend, cli: Any, engines: StartEngine, sig: signal.Signals
) -> None:
    out = home / "out"
    ids = ["g1", "g2", "g3"]
    for job_id in ids:
        enqueue(cli, id=job_id, command=f"sleep 2.5; echo $QUEUECTL_JOB_ID >> {out}", priority=1)
    enqueue(cli, id="waiting", command=f"echo waiting >> {out}")  # no free slot: never claimed
    engine = engines("-c", "3")
    groups = wait_for(lambda: processing_groups(backend, ids), timeout=20)

    engine.send(sig)
    wait_for(lambda: f"{sig.name}: stopping; 3 running jobs will finish" in engine.log())
    assert engine.alive()  # waiting for its jobs, not killing them
    assert engine.wait(timeout=30) == 0

    assert sorted(out.read_text().split()) == ids
    jobs = all_jobs(backend)
    assert [jobs[job_id].state for job_id in ids] == ["completed"] * 3
    assert [job_attempts(backend, job_id)[0].exit_code for job_id in ids] == [0] * 3
    assert (jobs["waiting"].state, jobs["waiting"].runs) == ("pending", 0)
    assert [pgid for pgid in groups.values() if group_members(pgid)] == []
    assert "engine stopped: 3 completed, 0 failed" in engine.log()


STUBBORN = "trap '' TERM; sleep 300"  # the shell and its sleep ignore SIGTERM


@pytest.mark.parametrize("how", ["sigint-twice", "stop-timeout"])
def test_a_job_ignoring_sigterm_is_killed_after_the_grace_and_goes_back_to_pending(
    backend: Backend, cli: Any, engines: StartEngine, how: str
) -> None:
    configure(cli, kill_grace=str(GRACE))
    enqueue(cli, id="stubborn", command=STUBBORN)
    enqueue(cli, id="plain", command="sleep 300")
    engine = engines("-c", "2")
    groups = wait_for(lambda: processing_groups(backend, ["stubborn", "plain"]), timeout=20)
    # the group's processes are up (the shell may have exec'd sleep) and ignore SIGTERM
    members = wait_for(lambda: stubborn_members(groups["stubborn"]), timeout=10)
    everyone = [*members, *group_members(groups["plain"])]

    if how == "sigint-twice":
        engine.send(signal.SIGINT)
        wait_for(lambda: "SIGINT: stopping; 2 running jobs will finish" in engine.log())
        time.sleep(0.3)
        assert engine.alive() and all(running(pid) for pid in everyone)  # the first one waits
        sent = time.monotonic()
        engine.send(signal.SIGINT)
        assert engine.wait(timeout=GRACE + 20) == 0
        took = time.monotonic() - sent
        assert "SIGINT: killing 2 running jobs; they go back to pending" in engine.log()
    else:
        sent = time.monotonic()
        result = cli("worker", "stop", "--timeout", "1s", check=True)
        took = time.monotonic() - sent - 1.0  # from the kill, 1 s after the request
        assert "waiting for 2 running jobs to finish; killing them after 1" in result.stdout
        assert f"engine (pid {engine.pid}) stopped" in result.stdout
        assert engine.wait(timeout=10) == 0

    # SIGTERM did nothing to the stubborn job: only the SIGKILL one grace later ended it
    assert GRACE - 0.1 <= took < GRACE + SLACK, f"the engine exited {took:.2f}s after the kill"
    assert [pid for pid in everyone if running(pid)] == []
    assert [pgid for pgid in groups.values() if group_members(pgid)] == []
    assert engine.job_groups() == set()
    for job_id in ("stubborn", "plain"):
        assert_back_to_pending(cli, job_id)


def test_a_timed_out_job_ignoring_sigterm_is_killed_after_the_grace(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    configure(cli, kill_grace=str(GRACE))
    enqueue(cli, id="stubborn", command=STUBBORN, timeout=1, max_retries=0)
    engine = engines("--until-empty")
    groups = wait_for(lambda: processing_groups(backend, ["stubborn"]), timeout=20)
    members = wait_for(lambda: stubborn_members(groups["stubborn"]), timeout=10)
    assert engine.wait(timeout=30) == 0

    assert [pid for pid in members if running(pid)] == []
    assert group_members(groups["stubborn"]) == []
    result = show(cli, "stubborn")
    assert (result["state"], result["attempts"]) == ("dead", 1)  # a timeout uses the attempt
    [attempt] = result["history"]
    assert attempt["error"].startswith("timed out after 1s")
    assert attempt["error_kind"] == ErrorKind.TIMEOUT
    assert attempt["exit_code"] is None  # SIGKILLed
    # 1 s to the timeout, then SIGTERM (ignored), then SIGKILL after the 1 s grace
    assert 1 + GRACE - 0.1 <= attempt["duration"] < 1 + GRACE + SLACK


# --- 5. stragglers holding the job's pipes ------------------------------------------------------

STRAGGLERS = {
    # a subshell starts the straggler and exits at once: its parent is gone
    "subshell": "(sleep 300 & echo $! > {pids}) ; echo done",
    # the job's own shell starts it and exits without waiting
    "background": "sleep 300 & echo $! > {pids}; echo done",
    # the form, `sh -c '(sleep 300 &) ; echo done'`, recording the straggler's pid
    "nested-sh": "sh -c '(sleep 300 & echo $! > {pids}) ; echo done'",
}


@pytest.mark.parametrize("variant", list(STRAGGLERS))
def test_a_grandchild_holding_stdout_does_not_keep_the_job_running(
    home: Path, backend: Backend, cli: Any, engines: StartEngine, variant: str
) -> None:
    pids = home / "straggler.pid"
    leader = home / "leader.pid"
    command = f"echo $$ > {leader}; " + STRAGGLERS[variant].format(pids=pids)
    engine = engines("-c", "2")
    wait_for(engine.started)
    enqueued = time.monotonic()
    enqueue(cli, id="straggler", command=command)
    wait_for(
        lambda: get_job(backend, "straggler").state not in ("pending", "processing"),
        timeout=15,
        message="the job did not end within 15 s",
    )
    waited = time.monotonic() - enqueued

    job = get_job(backend, "straggler")
    [attempt] = job_attempts(backend, "straggler")
    assert (job.state, attempt.exit_code, attempt.error) == ("completed", 0, None)
    assert attempt.stdout == b"done\n"
    assert attempt.finished_at is not None
    took = attempt.finished_at - attempt.started_at
    assert took < 5, f"the job took {took:.2f}s: the straggler held it"
    assert waited < 5 + 1, f"enqueue to completed took {waited:.2f}s"
    straggler = int(pids.read_text())
    pgid = int(leader.read_text())
    assert not running(straggler), f"straggler {straggler} outlived its job"
    assert group_members(pgid) == []
    assert engine.job_groups() == set()
    assert engine.stop() == 0


def test_a_grandchild_in_a_new_session_does_not_keep_the_job_running(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    """A straggler that leaves the job's session (setsid) cannot be killed with the group; the
    job still completes promptly (the engine stops waiting for the pipes' EOF)."""
    pids = home / "straggler.pid"
    engine = engines("-c", "2")
    wait_for(engine.started)
    enqueue(cli, id="escaped", command=f"setsid sleep 300 & echo $! > {pids}; echo done")
    wait_for(lambda: get_job(backend, "escaped").state == "completed", timeout=15)
    [attempt] = job_attempts(backend, "escaped")
    assert attempt.finished_at is not None
    assert attempt.finished_at - attempt.started_at < 5
    assert attempt.stdout == b"done\n"
    assert engine.stop() == 0  # close() kills the escaped sleep (it carries the test token)


# --- 6. floods of output ------------------------------------------------------------------------


def test_200_mb_on_stdout_and_on_stderr_neither_deadlock_nor_grow_the_engine(
    backend: Backend, cli: Any, engines: StartEngine
) -> None:
    configure(cli, output_limit=str(OUTPUT_LIMIT))
    flood = f"head -c {FLOOD_BYTES} /dev/zero"
    engine = engines("-c", "3")
    wait_for(engine.started)
    with RssSampler(engine.pid) as rss:
        started = time.monotonic()
        # both streams at once from one job, and from two jobs side by side
        enqueue(cli, id="both", command=f"{flood} & {flood} >&2; wait")
        enqueue(cli, id="out", command=flood)
        enqueue(cli, id="err", command=f"{flood} >&2")
        wait_for(
            lambda: all(
                get_job(backend, job_id).state == "completed" for job_id in ("both", "out", "err")
            ),
            timeout=90,
            interval=0.2,
            message="the floods did not complete: deadlock?",
        )
        took = time.monotonic() - started
        peak_kib = engine.peak_kib()
    assert engine.stop() == 0

    print(
        f"floods done in {took:.1f}s; engine VmRSS max {rss.max_kib} KiB over {rss.samples} "
        f"samples, VmHWM {peak_kib} KiB"
    )
    assert took < 60, f"the floods took {took:.1f}s"
    assert rss.samples > 5
    assert rss.max_kib * 1024 < FLOOD_RSS_LIMIT, f"engine VmRSS reached {rss.max_kib} KiB"
    assert peak_kib * 1024 < FLOOD_RSS_LIMIT, f"engine VmHWM reached {peak_kib} KiB"

    expected = {"both": (True, True), "out": (True, False), "err": (False, True)}
    for job_id, (out_cut, err_cut) in expected.items():
        [attempt] = job_attempts(backend, job_id)
        assert (attempt.stdout_truncated, attempt.stderr_truncated) == (out_cut, err_cut)
        for data, cut in ((attempt.stdout, out_cut), (attempt.stderr, err_cut)):
            assert data == (b"\0" * OUTPUT_LIMIT if cut else b"")
        for stream, cut in (("stdout", out_cut), ("stderr", err_cut)):
            result = cli("logs", job_id, f"--{stream}", check=True)  # one stream: its bytes
            assert result.stdout == ("\0" * OUTPUT_LIMIT if cut else "")
            assert result.stderr == (TRUNCATED.format(stream) if cut else "")  # told, not stored
