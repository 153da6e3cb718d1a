"""Where a queue lives: its home directory, from --home, the environment or the default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from queuectl.errors import QueuectlError
from queuectl.paths import DB_NAME, LOCK_NAME, LOG_NAME, SOCKET_NAME, ensure_home, resolve_home


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No queue variables set, and $HOME in a temporary directory."""
    monkeypatch.delenv("QUEUECTL_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def test_home_default(clean_env: Path) -> None:
    assert resolve_home(None) == clean_env / "user" / ".local" / "share" / "queuectl"


def test_home_from_xdg_data_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    assert resolve_home(None) == clean_env / "xdg" / "queuectl"


def test_empty_variables_are_ignored(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "")
    monkeypatch.setenv("QUEUECTL_HOME", "")
    assert resolve_home(None) == clean_env / "user" / ".local" / "share" / "queuectl"
    assert resolve_home("") == clean_env / "user" / ".local" / "share" / "queuectl"


def test_queuectl_home_beats_xdg(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    monkeypatch.setenv("QUEUECTL_HOME", str(clean_env / "env-home"))
    assert resolve_home(None) == clean_env / "env-home"


def test_option_beats_everything(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(clean_env / "xdg"))
    monkeypatch.setenv("QUEUECTL_HOME", str(clean_env / "env-home"))
    assert resolve_home(str(clean_env / "opt")) == clean_env / "opt"


def test_home_is_absolute_and_expands_tilde(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_home("~/q") == clean_env / "user" / "q"
    monkeypatch.setenv("QUEUECTL_HOME", "~/envq")
    assert resolve_home(None) == clean_env / "user" / "envq"
    monkeypatch.chdir(clean_env)
    relative = resolve_home("rel/q")
    assert relative.is_absolute()
    assert relative == clean_env / "rel" / "q"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_home_creates_0700(home: Path) -> None:
    target = home / "a" / "b"
    assert ensure_home(target) == target
    assert target.is_dir()
    assert _mode(target) == 0o700


def test_ensure_home_tightens_an_open_home(home: Path) -> None:
    target = home / "open"
    target.mkdir()
    os.chmod(target, 0o755)
    ensure_home(target)
    assert _mode(target) == 0o700


def test_ensure_home_is_idempotent(home: Path) -> None:
    (home / "keep").write_text("x")
    ensure_home(home)
    ensure_home(home)
    assert (home / "keep").read_text() == "x"
    assert _mode(home) == 0o700


def test_ensure_home_refuses_a_file(home: Path) -> None:
    target = home / "file"
    target.write_text("not a directory")
    with pytest.raises(QueuectlError) as info:
        ensure_home(target)
    assert str(target) in str(info.value)
    assert target.read_text() == "not a directory"


def test_ensure_home_under_a_file_fails_cleanly(home: Path) -> None:
    (home / "file").write_text("")
    with pytest.raises(QueuectlError, match="cannot create queue home"):
        ensure_home(home / "file" / "sub")


def test_the_file_names_in_a_home_are_stable() -> None:
    """Engines and clients of different versions find each other's files by these names."""
    names = (DB_NAME, SOCKET_NAME, LOCK_NAME, LOG_NAME)
    assert names == ("queue.db", "engine.sock", "engine.lock", "engine.log")
