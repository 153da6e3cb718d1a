"""Installing queuectl as a user would: `pip install .` into a new venv and `pipx install .`.

Each installs a copy of the working tree (the files git tracks or would track, so uncommitted
work is tested too, and nothing left over from a development install comes along), then runs
the installed `queuectl` command itself, not `python -m` from the source tree: --version, and
a job enqueued, run by an engine and listed. Slow: each builds a wheel and installs its
dependencies from the package index (pip's cache makes a second run quicker).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import queuectl

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 600.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def tree_files(root: Path) -> list[str]:
    """The files of the tree as a commit of it now would hold them: tracked or new, not
    ignored, not deleted."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree, as a fresh clone would have it."""
    copy = tmp_path_factory.mktemp("tree") / "queuectl"
    for name in tree_files(ROOT):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert (copy / "pyproject.toml").is_file() and (copy / "queuectl" / "cli").is_dir()
    assert not list(copy.rglob("__pycache__")), "the copy must hold no bytecode of the tree"
    return copy


@pytest.fixture
def clean_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment without anything that points into the source tree or its venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "QUEUECTL_HOME", "QUEUECTL_DB")
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    yield env


def run(argv: list[str], env: Mapping[str, str], cwd: Path) -> str:
    result = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def round_trip(command: Path, home: Path, env: Mapping[str, str]) -> None:
    """The installed command works on its own: its version, and one job from enqueue to
    completed, run by an engine it starts."""
    cwd = home.parent
    version = run([str(command), "--version"], env, cwd)
    assert version.strip() == f"queuectl, version {queuectl.__version__}"
    job = json.dumps({"id": "installed", "command": "echo round trip"})
    assert run([str(command), "--home", str(home), "enqueue", job], env, cwd).strip() == "installed"
    run([str(command), "--home", str(home), "worker", "start", "--until-empty", "-q"], env, cwd)
    listed = json.loads(run([str(command), "--home", str(home), "list", "--json"], env, cwd))
    assert [(job["id"], job["state"]) for job in listed] == [("installed", "completed")]
    logs = run([str(command), "--home", str(home), "logs", "installed"], env, cwd)
    assert "round trip" in logs


def site_package(python: Path, env: Mapping[str, str], cwd: Path) -> Path:
    """Where `python` imports queuectl from."""
    code = "import queuectl, pathlib; print(pathlib.Path(queuectl.__file__).parent)"
    return Path(run([str(python), "-c", code], env, cwd).strip())


def test_pip_install_into_a_new_venv(
    source: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], clean_env, tmp_path)
    run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        clean_env,
        tmp_path,
    )

    package = site_package(venv / "bin" / "python", clean_env, tmp_path)
    assert package.is_relative_to(venv), f"queuectl imported from {package}, not the new venv"
    assert (package / "store" / "sqlite.sql").is_file(), "the SQL files must be installed"
    # pip compiles what it installs: the CLI's first start-up does not compile the package
    assert list((package / "cli" / "__pycache__").glob("__init__.cpython-*.pyc"))
    round_trip(venv / "bin" / "queuectl", tmp_path / "queue", clean_env)
    # `python -m queuectl` works with the venv's own interpreter
    out = run([str(venv / "bin" / "python"), "-m", "queuectl", "--version"], clean_env, tmp_path)
    assert queuectl.__version__ in out


def test_pipx_install_puts_the_command_on_path(
    source: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    bin_dir = tmp_path / "bin"
    env = {
        **clean_env,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(bin_dir),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    run([sys.executable, "-m", "pipx", "install", str(source)], env, tmp_path)

    command = bin_dir / "queuectl"
    assert command.exists(), f"pipx put no queuectl in {bin_dir}: {list(bin_dir.iterdir())}"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    found = shutil.which("queuectl", path=env["PATH"])
    assert found is not None and Path(found) == command, f"PATH finds {found}"
    round_trip(command, tmp_path / "queue", env)
