"""Security of the queue home and the control socket, whatever the user's umask.

Engines are started for real (`worker start --detach`, or in the foreground) under a umask set
with `sh -c 'umask NNN; exec ...'`, so the engine and the files it creates inherit it as they
would from a user's shell. Tests that act as another user need root and setpriv(1) and skip
with the reason otherwise.

The files in the home are the subject here, the SQLite database among them (its permission
bits, never its content), so these tests use the default SQLite queue in the home rather than
the `backend` fixture; jobs are looked at through the Store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    CLI_TIMEOUT,
    NOBODY_CONNECT,
    Backend,
    as_nobody,
    assert_one_line_error,
    detached_pid,
    job_state,
    nobody_python,
    queuectl_argv,
    run_cli,
    wait_for,
)

from queuectl.lock import holder
from queuectl.paths import DB_NAME, LOCK_NAME, LOG_NAME, SOCKET_NAME
from queuectl.procfs import alive

NOBODY_CLIENT = (
    NOBODY_CONNECT
    + r"""
try:
    s.sendall(b'{"op":"hello","version":1}\n{"op":"status"}\n')
except OSError:
    pass  # the engine may answer and close before reading anything
data = b""
try:
    while chunk := s.recv(65536):
        data += chunk
except OSError as exc:
    if not data:
        print(json.dumps({"recv_error": type(exc).__name__}))
        raise SystemExit(0)
print(json.dumps({"replies": [json.loads(line) for line in data.splitlines()]}))
"""
)

NOBODY_READ = r"""
import json, sys
try:
    with open(sys.argv[1], "rb") as handle:
        handle.read(16)
except OSError as exc:
    print(json.dumps({"read_error": type(exc).__name__}))
else:
    print(json.dumps({"read": True}))
"""


def umask_argv(umask: int, home: Path, *args: str) -> list[str]:
    """`queuectl --home HOME ARGS...` run under `umask`."""
    return ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *queuectl_argv(home, *args)]


def run_with_umask(umask: int, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        umask_argv(umask, home, *args), capture_output=True, text=True, timeout=CLI_TIMEOUT
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class DetachedEngine:
    """An engine started with `worker start --detach` under a umask; stopped at teardown."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pid: int | None = None

    def start(self, umask: int) -> int:
        result = run_with_umask(umask, self.home, "worker", "start", "--detach", "-c", "1")
        self.pid = detached_pid(result)
        return self.pid

    def close(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_cli(self.home, "worker", "stop", "--now")
        if alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        wait_for(lambda: not alive(self.pid or 0), timeout=10, message="the engine survived")


@pytest.fixture
def detached(home: Path) -> Iterator[DetachedEngine]:
    """A detached engine on HOME/q, a queue home that does not exist yet."""
    engine = DetachedEngine(home / "q")
    try:
        yield engine
    finally:
        engine.close()


# --- 1. permissions under any umask -----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["umask000", "umask077"])
def test_home_socket_and_files_are_private_under_any_umask(
    detached: DetachedEngine, umask: int
) -> None:
    home = detached.home
    detached.start(umask)  # the engine creates the home and the database
    enqueued = run_with_umask(umask, home, "enqueue", "--", "echo secret-output")
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    wait_for(lambda: job_state(Backend("sqlite", home), job_id) == "completed", timeout=20)

    assert mode(home) == 0o700
    sock = home / SOCKET_NAME
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert mode(sock) == 0o600
    assert mode(home / LOCK_NAME) & 0o077 == 0, oct(mode(home / LOCK_NAME))
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        path = home / name
        if path.exists():
            assert mode(path) & 0o022 == 0, f"{name} is writable by others: {oct(mode(path))}"
    # Group/world *readable* database files are mitigated by the 0700 home (see the report).


def test_detached_engine_log_is_not_writable_by_others_under_umask_000(
    detached: DetachedEngine,
) -> None:
    """The detached engine's log (job ids, commands, errors) is created by `worker start
    --detach`; like every other file in the home it must not be writable by other users."""
    detached.start(0o000)
    log = detached.home / LOG_NAME
    assert mode(log) & 0o022 == 0, f"{LOG_NAME} is writable by others: {oct(mode(log))}"


# --- 2. another user ---------------------------------------------------------------------------


def test_another_uid_is_refused_even_with_open_permissions(detached: DetachedEngine) -> None:
    python = nobody_python()
    home = detached.home
    pid = detached.start(0o000)
    sock = home / SOCKET_NAME

    # The 0700 home alone keeps nobody from the socket and from the database.
    denied = as_nobody([python, "-I", "-c", NOBODY_CLIENT, str(sock)])
    assert json.loads(denied.stdout) == {"connect_error": "PermissionError"}, denied
    unread = as_nobody([python, "-I", "-c", NOBODY_READ, str(home / DB_NAME)])
    assert json.loads(unread.stdout) == {"read_error": "PermissionError"}, unread

    # With the file permissions opened (and the test's own parent directory), the engine's own
    # SO_PEERCRED check must refuse.
    parent_mode = mode(home.parent)
    try:
        os.chmod(home.parent, 0o711)
        os.chmod(home, 0o711)
        os.chmod(sock, 0o666)
        refused = as_nobody([python, "-I", "-c", NOBODY_CLIENT, str(sock)])
    finally:
        os.chmod(sock, 0o600)
        os.chmod(home, 0o700)
        os.chmod(home.parent, parent_mode)
    assert refused.returncode == 0, refused.stderr
    replies = json.loads(refused.stdout)["replies"]
    assert len(replies) == 1, replies
    assert replies[0]["ok"] is False and "permission denied" in replies[0]["error"], replies
    assert "pid" not in replies[0] and "running_jobs" not in replies[0], replies

    assert alive(pid)
    status = run_cli(home, "status", "--json", check=True)
    assert json.loads(status.stdout)["engine"]["pid"] == pid
    log = (home / LOG_NAME).read_text()
    assert "refused a control connection from uid" in log, log


def test_home_owned_by_another_user_and_open_to_all_is_refused(home: Path) -> None:
    """The queue home holds the database, the lock and the socket: one that another user owns
    and anybody may write to (they can plant a symlink at queue.db) must not be used."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    shared = home / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    os.chown(shared, 65534, 65534)  # nobody
    result = run_cli(shared, "enqueue", "--", "echo hi")
    assert result.returncode in (1, 2), (result.returncode, result.stdout, result.stderr)
    message = assert_one_line_error(result, code=result.returncode)
    assert str(shared) in message, message
    assert not (shared / DB_NAME).exists(), "the queue was created in another user's directory"


# --- 3. something planted at the socket path --------------------------------------------------


def start_foreground(home: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """`worker start` in the foreground; it must refuse at once, so a run that lasts is killed
    and reported."""
    process = subprocess.Popen(
        umask_argv(umask, home, "worker", "start", "-c", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=10)
        process.kill()
        process.communicate()
        pytest.fail("`worker start` ran an engine despite what is at the socket path")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize(
    "planted",
    ["symlink-to-file", "dangling-symlink", "symlink-to-dir", "regular-file", "directory"],
)
def test_anything_but_a_socket_at_the_socket_path_refuses_start(home: Path, planted: str) -> None:
    queue = home / "q"
    queue.mkdir(mode=0o700)
    sock = queue / SOCKET_NAME
    outside = home / "outside"  # the symlink target, outside the queue home
    precious = b"do not touch\n"
    if planted == "symlink-to-file":
        outside.write_bytes(precious)
        os.chmod(outside, 0o644)
        sock.symlink_to(outside)
    elif planted == "dangling-symlink":
        sock.symlink_to(outside)
    elif planted == "symlink-to-dir":
        outside.mkdir(mode=0o755)
        sock.symlink_to(outside)
    elif planted == "regular-file":
        sock.write_bytes(precious)
    else:
        sock.mkdir()
    before = {
        path: (path.lstat().st_mode, path.lstat().st_mtime_ns, path.lstat().st_ino)
        for path in (sock, outside)
        if os.path.lexists(path)
    }

    for umask in (0o022, 0o000):
        result = start_foreground(queue, umask)
        assert result.returncode != 0
        message = assert_one_line_error(result, code=result.returncode)
        assert str(sock) in message, message
        assert ("symlink" if "symlink" in planted else "not a socket") in message, message
        assert holder(queue / LOCK_NAME) is None, "the refused engine still holds the lock"

    after = {
        path: (path.lstat().st_mode, path.lstat().st_mtime_ns, path.lstat().st_ino)
        for path in (sock, outside)
        if os.path.lexists(path)
    }
    assert after == before, "what was planted at the socket path (or its target) was touched"
    if planted == "symlink-to-file":
        assert outside.read_bytes() == precious and mode(outside) == 0o644
    if planted == "regular-file":
        assert sock.read_bytes() == precious
    if planted == "dangling-symlink":
        assert not outside.exists()
    if planted == "symlink-to-dir":
        assert list(outside.iterdir()) == []
    assert "engine: not running" in run_cli(queue, "status", check=True).stdout


# --- 4. a home that exists with loose permissions ---------------------------------------------


@pytest.mark.parametrize("loose", [0o755, 0o777, 0o750, 0o701])
def test_an_existing_loose_home_of_ours_is_tightened_on_first_use(home: Path, loose: int) -> None:
    queue = home / "q"
    queue.mkdir()
    os.chmod(queue, loose)
    assert mode(queue) == loose
    run_cli(queue, "config", "set", "max-retries", "3", check=True)  # reads never create it
    assert mode(queue) == 0o700
    assert mode(queue / DB_NAME) & 0o022 == 0
