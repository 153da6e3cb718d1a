"""Reliability of the SQLite queue file under faults, with the real CLI and real engines.

This is the SQLite store's own fault suite: it tests that store's file (its permissions, its
corruption, its write-ahead log), so unlike the backend-neutral tests it opens the file itself.

10. Disk and file faults: a read-only database or home (enqueue fails with one clear line naming
    the file and changes nothing), the home deleted under a running engine (no spin, no
    traceback loop, a clear error), and a corrupt database (every command fails with one clear
    line naming the file, and the file is left as it was so its data can be recovered).
11. WAL growth: while ten readers poll the queue and thousands of jobs flow, the -wal file stays
    bounded and is checkpointed.

Root ignores file modes, so a read-only file is made with `chattr +i` when running as root
(skipped where the file system or capabilities do not allow it) and with chmod otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_process import StartEngine
from helpers import (
    Backend,
    all_jobs,
    assert_one_line_error,
    configure,
    seed,
    wait_for,
    write_jobs_file,
)

from queuectl.paths import DB_NAME
from queuectl.procfs import stat_fields

MB = 1024 * 1024


@pytest.fixture
def backend(home: Path) -> Backend:
    """These are faults of the SQLite file: the `cli` and `engines` of every test here use the
    SQLite queue in the home, whatever backends the rest of the suite runs on."""
    return Backend("sqlite", home)


def db_path(home: Path) -> Path:
    return home / DB_NAME


def db_snapshot(home: Path) -> dict[str, Any] | None:
    """Every row of every table (sorted) and the schema version, read with the stdlib sqlite3
    module; None if there is no database. Compare snapshots taken before and after a command
    to show it changed nothing."""
    path = db_path(home)
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(path)) as conn:
        snapshot: dict[str, Any] = {
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0]
        }
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        for (table,) in tables.fetchall():
            snapshot[table] = sorted(conn.execute(f'SELECT * FROM "{table}"'), key=repr)
        return snapshot


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- 10a. a read-only database or home ----------------------------------------------------------


@contextlib.contextmanager
def read_only(paths: Sequence[Path]) -> Iterator[None]:
    """Make files and directories unwritable, even for root: `chattr +i` as root (root ignores
    modes), chmod a-w otherwise. Skips the test where neither can be done."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip(
                "running as root and chattr is not installed: cannot make a file read-only for root"
            )
        done: list[Path] = []
        try:
            for path in paths:
                result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
                if result.returncode != 0:
                    pytest.skip(
                        f"chattr +i {path} failed (file system or capability): "
                        f"{result.stderr.strip()}"
                    )
                done.append(path)
            yield
        finally:
            for path in reversed(done):
                subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        try:
            for path in paths:
                path.chmod(0o500 if path.is_dir() else 0o444)
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


READ_ONLY_CASES = {
    "file": lambda home: [db_path(home)],
    "home": lambda home: [home],
    "file-and-home": lambda home: [db_path(home), home],
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_queue_refuses_enqueue_with_one_clear_line(
    home: Path, backend: Backend, cli: Any, case: str
) -> None:
    seed(backend, dead=["dead1"], pending=["p1", "p2"], config={"max-retries": 7})
    db = db_path(home)
    assert not Path(f"{db}-wal").exists()  # closed cleanly: all data is in the main file
    before, before_digest = db_snapshot(home), digest(db)

    with read_only(READ_ONLY_CASES[case](home)):
        result = cli("enqueue", "--id", "new", "--", "true")
        message = assert_one_line_error(result, 1)
        assert repr(str(db)) in message, message
        assert result.stdout == ""
        # an engine cannot run on it either, and says so in one line
        engine = cli("worker", "start", "--until-empty", "-q")
        message = assert_one_line_error(engine, 1)
        assert str(home) in message, message

    assert db_snapshot(home) == before
    assert digest(db) == before_digest
    assert "new" not in all_jobs(backend)
    cli("enqueue", "--id", "new", "--", "true", check=True)  # writable again: works again


# --- 10b. the home deleted under a running engine -----------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_deleting_the_home_under_a_running_engine_is_reported(
    home: Path, backend: Backend, cli: Any, engines: StartEngine
) -> None:
    """What the engine does when `rm -rf HOME` runs under it.

    It keeps its open (now unlinked) database, so SQLite goes on working in WAL mode without
    complaint; what is required is that it neither spins nor loops on tracebacks, and that it
    says so: a log line naming the queue, or a non-zero exit, within a few seconds.
    """
    configure(cli, lease_time="3")  # renew leases (and look) every 1 s
    cli("enqueue", "--id", "running", "--", "sleep 1.5; echo hi", check=True)
    engine = engines("-c", "2")
    wait_for(lambda: (job := all_jobs(backend).get("running")) and job.pid, timeout=20)
    with open(engine.log_path, "rb") as log:  # stays readable once its name is gone
        log.seek(0, os.SEEK_END)
        mark = log.tell()

        def since() -> str:
            log.seek(mark)
            return log.read().decode(errors="replace")

        shutil.rmtree(home)
        deleted = time.monotonic()
        cpu_before = cpu_seconds(engine.pid)
        sizes = []
        while time.monotonic() - deleted < 3.0 and engine.alive():
            sizes.append(len(since()))
            time.sleep(0.1)
        cpu = cpu_seconds(engine.pid) - cpu_before if engine.alive() else 0.0
        text = since()
        print(
            f"engine log in the 3 s after the home was deleted ({len(text)} bytes, "
            f"{cpu:.2f}s CPU, alive={engine.alive()}):\n{text}"
        )

        assert "Traceback" not in text
        assert len(text) < 4096, f"the engine logged {len(text)} bytes in 3 s"
        assert cpu < 1.5, f"the engine used {cpu:.2f}s of CPU in 3 s: it spins"

        def reported() -> bool:
            return not engine.alive() or str(home) in since() or "queue.db" in since()

        try:
            wait_for(reported, timeout=7.0, interval=0.1)
        except AssertionError:
            pytest.fail(
                f"the engine (pid {engine.pid}) went on silently for 10 s after its "
                f"home {home} was deleted: no error logged, still running; its log "
                f"since then:\n{since()}"
            )
        text = since()
        assert "Traceback" not in text
        if not engine.alive():
            assert engine.proc.returncode != 0, (
                f"the engine exited 0 after its home was deleted:\n{text}"
            )
        assert str(home) in text or "queue.db" in text, text


# --- 10c. a corrupt database --------------------------------------------------------------------


def garbage(home: Path) -> None:
    db_path(home).write_bytes(b"this is not a database, just some garbage\n" * 200)


def truncated(home: Path, keep: Callable[[int], int]) -> None:
    """A real queue with jobs and attempts, cut to `keep(size)` bytes."""
    seed(
        Backend("sqlite", home),
        dead=[f"dead{n}" for n in range(50)],
        pending=[f"pending{n:04d}" for n in range(2000)],
    )
    db = db_path(home)
    assert not Path(f"{db}-wal").exists()  # closed cleanly: all data is in the main file
    size = db.stat().st_size
    with open(db, "r+b") as file:
        file.truncate(keep(size))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "garbage": garbage,
    "truncated-half": lambda home: truncated(home, lambda size: size // 2),
    "truncated-to-first-page": lambda home: truncated(home, lambda size: 4096),
    "truncated-header": lambda home: truncated(home, lambda size: 60),
}
COMMANDS = [
    ("status",),
    ("list",),
    ("list", "--json"),
    ("enqueue", "--id", "new", "--", "true"),
    ("worker", "start", "--until-empty", "-q"),
    ("show", "dead1"),
]


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_database_fails_every_command_clearly_and_is_left_as_is(
    home: Path, cli: Any, corruption: str
) -> None:
    CORRUPTIONS[corruption](home)
    db = db_path(home)
    original = db.read_bytes()

    for args in COMMANDS:
        result = cli(*args)
        message = assert_one_line_error(result, 1)
        assert repr(str(db)) in message, (args, message)
        assert "corrupt" in message or "malformed" in message, (args, message)
        assert result.stdout == "", (args, result.stdout)
        assert db.read_bytes() == original, f"`{' '.join(args)}` changed the corrupt file"
    leftovers = {path.name for path in home.iterdir()} - {"queue.db", "engine.lock"}
    assert not leftovers, f"files left beside the corrupt database: {leftovers}"


# --- 11. WAL growth under readers -----------------------------------------------------------------

# Scaled down from the 100,000 jobs so that `make test` stays fast; set
# QUEUECTL_WAL_JOBS=100000 for the full run.
WAL_JOBS = int(os.environ.get("QUEUECTL_WAL_JOBS", "5000"))
WAL_CONCURRENCY = 20
# Four times SQLite's auto-checkpoint size (1000 pages of 4 KiB). The issue suggests 64 MB, but
# with checkpoints starved by the readers the scaled-down run would write only ~35 MB of log.
WAL_LIMIT = 16 * MB
CLI_POLLERS = 2
SQLITE_READERS = 8
READ_INTERVAL = 0.05

# A reader process: short read transactions every READ_INTERVAL until the stop file appears.
READER = r"""
import os, sqlite3, sys, time
path, stop, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
reads = 0
while not os.path.exists(stop):
    conn.execute("BEGIN")
    conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    conn.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT 20").fetchall()
    conn.execute("COMMIT")
    reads += 1
    time.sleep(interval)
conn.close()
print(reads)
"""


def wal_header(wal: Path) -> tuple[int, int] | None:
    """(file size, checkpoint sequence) of a -wal file: the sequence grows each time the log
    is restarted from its beginning after a complete checkpoint."""
    try:
        with open(wal, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            header = file.read(32)
    except FileNotFoundError:
        return None
    if len(header) < 32:
        return size, -1
    return size, struct.unpack(">I", header[12:16])[0]


def shm_frames(shm: Path) -> tuple[int, int] | None:
    """(mxFrame, nBackfill) from the -shm wal-index: frames in the log, frames checkpointed."""
    try:
        data = shm.read_bytes()[:136]
    except FileNotFoundError:
        return None
    if len(data) < 136:
        return None
    return struct.unpack("=I", data[16:20])[0], struct.unpack("=I", data[96:100])[0]


@pytest.mark.slow
def test_wal_stays_bounded_while_readers_poll_and_jobs_flow(
    home: Path, cli: Any, engines: StartEngine
) -> None:
    db = db_path(home)
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    specs = write_jobs_file(
        home / "jobs.jsonl", ({"id": f"j{n:06d}", "command": "true"} for n in range(WAL_JOBS))
    )
    cli("enqueue", "--file", str(specs), check=True)

    stop = home / "stop-readers"
    done = threading.Event()
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(db), str(stop), str(READ_INTERVAL)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(SQLITE_READERS)
    ]
    polls: list[subprocess.CompletedProcess[str]] = []

    def poll_status() -> None:
        while not done.is_set():
            polls.append(cli("status", "--json"))
            done.wait(0.1)

    samples: list[tuple[float, int, int]] = []

    def sample_wal() -> None:
        while not done.is_set():
            header = wal_header(wal)
            if header is not None:
                samples.append((time.monotonic(), *header))
            done.wait(0.02)

    threads = [threading.Thread(target=poll_status) for _ in range(CLI_POLLERS)]
    threads.append(threading.Thread(target=sample_wal))
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # readers at work before the first job runs
        started = time.monotonic()
        engine = engines("--until-empty", "-q", "-c", str(WAL_CONCURRENCY))
        assert engine.wait(timeout=100) == 0
        took = time.monotonic() - started
        frames_at_end = shm_frames(shm)  # readers still hold the database open
    finally:
        stop.touch()
        done.set()
        for thread in threads:
            thread.join(60)
        reads = []
        for reader in readers:
            out, _ = reader.communicate(timeout=30)
            reads.append(int(out or 0))
            assert reader.returncode == 0

    counts = json.loads(cli("status", "--json", check=True).stdout)["counts"]
    assert counts["completed"] == WAL_JOBS, counts
    assert polls and all(poll.returncode == 0 for poll in polls), [
        poll.stderr for poll in polls if poll.returncode
    ]
    assert all(count > 10 for count in reads), f"reads per reader: {reads}"

    sizes = [size for _at, size, _seq in samples]
    restarts = len({seq for _at, _size, seq in samples if seq >= 0}) - 1
    print(
        f"{WAL_JOBS} jobs in {took:.1f}s with {SQLITE_READERS} readers ({sum(reads)} reads) "
        f"and {CLI_POLLERS} status pollers ({len(polls)} polls): WAL max "
        f"{max(sizes, default=0) / MB:.1f} MiB over {len(samples)} samples, "
        f"{restarts} restarts; wal-index at the end (mxFrame, nBackfill) = {frames_at_end}"
    )
    assert samples, "the -wal file was never seen"
    assert max(sizes) < WAL_LIMIT, f"the WAL grew to {max(sizes) / MB:.1f} MiB"
    # checkpoints completed during the run in spite of the readers: the log was restarted
    assert restarts >= 1, "the WAL was never restarted: checkpoints starved by the readers"
    if frames_at_end is not None:
        frames, backfilled = frames_at_end
        assert frames - backfilled <= 2000, f"{frames - backfilled} frames not checkpointed"
    # the last connection gone, the log is checkpointed into the database and removed
    assert not wal.exists() or wal.stat().st_size == 0
