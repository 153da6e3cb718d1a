"""`queuectl enqueue` and `status` on SQLite load no module that they do not need.

Start-up is most of what one `enqueue` or `status` costs (`make bench`'s case 8 times it
against `python -c "import asyncio"`); what decides it is which modules load, which a test can
check exactly where a timing test on a shared machine could not. Each command runs in a real
subprocess as the console script runs it, and writes sys.modules at exit: every module loaded,
however it was imported (tests/test_startup.py reads `-X importtime` for a wider set of
commands).

A module that `import asyncio` itself loads (ssl, logging, concurrent.futures) is the floor
that every asyncio command pays: those are left out, so `ssl` here means an ssl that something
else (asyncpg) would load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import queuectl.cli

#: what the console script does, then sys.modules to the file named by $MODULES_OUT at exit
ENTRY = """import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(list(sys.modules))))
{body}
"""
CLI = "from queuectl.cli import main; sys.argv[0] = 'queuectl'; sys.exit(main())"

#: libraries and parts of queuectl that none of the commands below needs
NEVER = (
    "asyncpg",  # PostgreSQL only
    "ssl",  # asyncpg's, beyond the one asyncio loads itself
    "rich",  # tables: `show`, `list`, `config list`; not status, --json or a job id
    "aiohttp",  # `web`
    "jinja2",
    "prometheus_client",
    "uvloop",  # `worker start --loop uvloop`
    "cronsim",  # schedules
    "queuectl.web",
    "queuectl.schedules",
    "queuectl.store.postgres",  # and every postgres_* module (prefix match below)
    "queuectl.service.output",  # `logs`
    "queuectl.service.dashboard",
    "queuectl.service.manage",
    "shutil",  # with zlib, bz2 and lzma: only a table on a terminal needs its width
)

#: per command: the modules of queuectl.cli it may load (its own, and what it takes from)
COMMANDS = {
    ("enqueue", "--", "true"): {"queuectl.cli.enqueue"},
    ("enqueue", '{"id": "j2", "command": "true"}'): {"queuectl.cli.enqueue"},
    ("status",): {"queuectl.cli.inspect", "queuectl.cli.completion"},
    ("status", "--json"): {"queuectl.cli.inspect", "queuectl.cli.completion"},
}
ALWAYS = {"queuectl.cli", "queuectl.cli.options"}


def loaded(tmp_path: Path, body: str, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["MODULES_OUT"] = str(out)
    result = subprocess.run(
        [sys.executable, "-c", ENTRY.format(body=body), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """What `import asyncio` loads by itself (ssl among them)."""
    return loaded(tmp_path_factory.mktemp("floor"), "import asyncio")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A queue with one job, j1."""
    home = tmp_path / "q"
    loaded(tmp_path, CLI, "--home", str(home), "enqueue", "--id", "j1", "--", "true")
    return home


def unwanted(modules: set[str]) -> list[str]:
    """The modules of NEVER among `modules`, with their submodules (and postgres_*)."""
    return sorted(
        m for m in modules if any(m == n or m.startswith((f"{n}.", f"{n}_")) for n in NEVER)
    )


@pytest.mark.parametrize("args", list(COMMANDS))
def test_enqueue_and_status_load_only_what_they_need(
    tmp_path: Path, home: Path, floor: set[str], args: tuple[str, ...]
) -> None:
    modules = loaded(tmp_path, CLI, "--home", str(home), *args) - floor
    assert unwanted(modules) == []
    commands = {m for m in modules if m.startswith("queuectl.cli.")}
    assert commands <= COMMANDS[args] | ALWAYS


def test_the_check_sees_what_it_forbids(tmp_path: Path, floor: set[str]) -> None:
    """The check above can fail: the PostgreSQL store loads asyncpg."""
    postgres = loaded(tmp_path, "import queuectl.store.postgres") - floor
    assert {"asyncpg", "queuectl.store.postgres"} <= set(unwanted(postgres))


def test_the_floor_holds_ssl() -> None:
    """Why `ssl` is measured above asyncio's floor: asyncio imports it (asyncio.sslproto)."""
    result = subprocess.run(
        [sys.executable, "-c", "import asyncio, sys; print('ssl' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "True"


def test_every_command_is_listed_with_its_module() -> None:
    """The group imports a command's module only when the command line names it, by
    queuectl.cli.MODULES: every command that a module of queuectl/cli/ defines (its
    COMMANDS) must be listed there under that module, or it could not be found."""
    defined: dict[str, str] = {}
    for path in sorted(Path(queuectl.cli.__file__).parent.glob("[!_]*.py")):
        module = __import__(f"queuectl.cli.{path.stem}", fromlist=["COMMANDS"])
        for command in getattr(module, "COMMANDS", ()):
            defined[command.name] = path.stem
    assert defined == queuectl.cli.MODULES
