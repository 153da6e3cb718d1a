"""Several "hosts" on one PostgreSQL database, for the tests of engines on many machines: each
site is a home of its own (its own engine lock, socket and log), as on its own host, sharing
the database; the `sites` fixture (conftest.py) makes them and cleans them up."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine_process import EngineGroup, EngineProcess
from helpers import Backend, run_cli, wait_for


class Site:
    """A home of its own on the shared database: where a CLI runs or an engine starts."""

    def __init__(self, db: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
        self.backend = Backend("postgres", self.home, db)
        self.engines = EngineGroup(self.backend)

    def cli(self, *args: str, check: bool | int | None = None) -> Any:
        return run_cli(self.home, *self.backend.cli_args(), *args, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def close(self) -> None:
        self.engines.close()
        print(self.engines.logs())
        shutil.rmtree(self.home, ignore_errors=True)


def start(site: Site, *args: str) -> EngineProcess:
    """An engine of `site`, once it says it has started."""
    return started(site.engines.start(*args))


def started(engine: EngineProcess) -> EngineProcess:
    wait_for(engine.started, 20)
    return engine
