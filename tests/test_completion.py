"""Shell completion: `queuectl completion SHELL` prints click's script, and job ids complete
from the queue.

Driven as the shells drive it: a real bash sources the printed script and calls its completion
function with COMP_WORDS/COMP_CWORD set, which runs `queuectl` with
_QUEUECTL_COMPLETE=bash_complete; zsh and fish (not installed here) are driven through the
same protocol directly, as their scripts call it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Backend, Cli

from queuectl.paths import DB_NAME

BASH = shutil.which("bash")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A directory with a `queuectl` command running this interpreter's queuectl: the scripts
    call `queuectl` by name, as a user's shell would find it on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    command = folder / "queuectl"
    command.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m queuectl "$@"\n')
    command.chmod(0o755)
    return folder


@pytest.fixture
def jobs(cli: Cli) -> list[str]:
    """Three jobs, two of them sharing a prefix."""
    for job_id in ("alpha-1", "alpha-2", "beta"):
        cli("enqueue", "--id", job_id, "--", "true", check=True)
    return ["alpha-1", "alpha-2", "beta"]


def queue_words(backend: Backend) -> list[str]:
    return ["--home", str(backend.home), *backend.cli_args()]


def protocol(
    bin_dir: Path, shell: str, words: list[str], cword: int, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """One completion request as `shell`'s script makes it (click's protocol): bash and zsh
    pass the words and the index of the one under the cursor, fish the line and that word."""
    where = words[cword] if shell == "fish" else str(cword)
    env = {
        **os.environ,
        "_QUEUECTL_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": shlex.join(words),
        "COMP_CWORD": where,
    }
    return subprocess.run(
        [str(bin_dir / "queuectl")], env=env, capture_output=True, text=True, timeout=timeout
    )


def bash_complete(bin_dir: Path, words: list[str]) -> list[str]:
    """What a real bash offers for Tab after `words` (the last is the word under the cursor):
    the printed script sourced, its function called as readline would call it."""
    assert BASH is not None
    array = " ".join(shlex.quote(word) for word in words)
    script = (
        'eval "$(queuectl completion bash)"\n'
        f"COMP_WORDS=({array})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_queuectl_completion queuectl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", script],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_a_command_name(bin_dir: Path) -> None:
    assert bash_complete(bin_dir, ["queuectl", "sta"]) == ["status"]
    assert set(bash_complete(bin_dir, ["queuectl", "worker", "st"])) == {"start", "stop"}


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_job_ids_from_the_queue(
    bin_dir: Path, backend: Backend, jobs: list[str]
) -> None:
    words = ["queuectl", *queue_words(backend)]
    assert bash_complete(bin_dir, [*words, "show", "al"]) == ["alpha-1", "alpha-2"]
    assert sorted(bash_complete(bin_dir, [*words, "logs", ""])) == sorted(jobs)
    # the options before the id do not stop the id from completing
    assert bash_complete(bin_dir, [*words, "logs", "--attempt", "1", "b"]) == ["beta"]


def test_completion_offers_only_jobs_the_command_takes(
    bin_dir: Path, backend: Backend, cli: Cli, jobs: list[str]
) -> None:
    """`dlq retry` completes dead jobs only."""
    cli("enqueue", "--id", "alpha-dead", "--max-retries", "0", "--", "exit 1", check=True)
    cli("cancel", "alpha-1", check=True)  # alpha-1 and alpha-2 are not runnable or not dead
    cli("worker", "start", "--until-empty", "-q", check=True)
    shown = json.loads(cli("show", "alpha-dead", "--json", check=True).stdout)
    assert shown["state"] == "dead"
    words = ["queuectl", *queue_words(backend), "dlq", "retry", "alpha"]
    result = protocol(bin_dir, "bash", words, len(words) - 1)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain,alpha-dead"]


def test_zsh_and_fish_scripts_and_protocol(
    bin_dir: Path, backend: Backend, jobs: list[str]
) -> None:
    """The scripts are click's for each shell, and the protocol they speak answers."""
    zsh = subprocess.run(
        [str(bin_dir / "queuectl"), "completion", "zsh"], capture_output=True, text=True, check=True
    ).stdout
    assert zsh.startswith("#compdef queuectl") and "_QUEUECTL_COMPLETE=zsh_complete" in zsh
    fish = subprocess.run(
        [str(bin_dir / "queuectl"), "completion", "fish"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "complete --no-files --command queuectl" in fish and "fish_complete" in fish

    words = ["queuectl", *queue_words(backend), "show", "alpha"]
    answer = protocol(bin_dir, "zsh", words, len(words) - 1)
    assert answer.returncode == 0, answer.stderr
    # zsh: type, value, help (`_` for none), one per line
    assert answer.stdout.splitlines() == ["plain", "alpha-1", "_", "plain", "alpha-2", "_"]
    answer = protocol(bin_dir, "fish", words, len(words) - 1)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines() == ["plain,alpha-1", "plain,alpha-2"]


def test_unknown_shell_is_refused(bin_dir: Path) -> None:
    result = subprocess.run(
        [str(bin_dir / "queuectl"), "completion", "tcsh"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "tcsh" in result.stderr and "bash" in result.stderr


def test_job_ids_on_a_missing_queue_complete_to_nothing_silently(
    bin_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "no-such-queue"
    words = ["queuectl", "--home", str(home), "show", ""]
    result = protocol(bin_dir, "bash", words, len(words) - 1)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")
    assert not home.exists(), "completing must not create a queue"
    # a home that is not a directory at all
    words = ["queuectl", "--home", "/etc/passwd", "show", ""]
    result = protocol(bin_dir, "bash", words, len(words) - 1)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")


def test_completion_is_not_held_up_by_a_writer(
    bin_dir: Path, backend: Backend, jobs: list[str]
) -> None:
    """Another process holding the queue's write lock (a long `enqueue --file`, say) neither
    blocks the completion nor makes it print anything: it answers, or gives up within its
    time limit and offers nothing."""
    if backend.db is not None:
        pytest.skip("holds the SQLite file's lock")
    writer = sqlite3.connect(backend.home / DB_NAME, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        words = ["queuectl", *queue_words(backend), "show", "alpha"]
        start = time.monotonic()
        result = protocol(bin_dir, "bash", words, len(words) - 1)
        took = time.monotonic() - start
    finally:
        writer.close()
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.split() in (["plain,alpha-1", "plain,alpha-2"], [])
    assert took < 10, f"completion took {took:.1f}s under a writer"


def test_a_queue_that_does_not_answer_is_given_up_on_quickly(
    bin_dir: Path, backend: Backend, jobs: list[str]
) -> None:
    """A database that cannot be read now (here: out of WAL mode and locked, so a reader waits
    for the lock) makes the completion give up after its time limit, offering nothing."""
    if backend.db is not None:
        pytest.skip("locks the SQLite file")
    from queuectl.cli.completion import ID_TIMEOUT

    locker = sqlite3.connect(backend.home / DB_NAME, isolation_level=None)
    try:
        assert locker.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
        locker.execute("BEGIN EXCLUSIVE")
        words = ["queuectl", *queue_words(backend), "show", "alpha"]
        start = time.monotonic()
        result = protocol(bin_dir, "bash", words, len(words) - 1)
        took = time.monotonic() - start
    finally:
        locker.close()
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")
    assert ID_TIMEOUT <= took < ID_TIMEOUT + 5, f"took {took:.1f}s"
