"""A real `queuectl web` in a subprocess, and plain HTTP requests to it (http.client, so that
a test sets exactly the Host, Origin and cookies it means to)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from helpers import Backend, queuectl_argv

T = TypeVar("T")

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    def csrf(self) -> str:
        match = CSRF.search(self.body)
        assert match, f"no CSRF token in the page:\n{self.body[:2000]}"
        return match.group(1)


class WebServer:
    """`queuectl [--home H] [--db URL] web --bind HOST:0 ARGS...`; its URL read from its first
    line of output."""

    def __init__(
        self,
        backend: Backend,
        *args: str,
        bind: str = "127.0.0.1:0",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(backend.home)
        self.out_path = self.home / f"web-{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                queuectl_argv(self.home, *backend.cli_args(), "web", "--bind", bind, *args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + 20
        while not (match := re.search(r"serving (http://\S+?):(\d+)/", self.output())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"queuectl web did not start:\n{self.output()}\n{self.log()}")
            time.sleep(0.02)
        self.port = int(match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def token(self) -> str:
        match = re.search(r"^token: (\S+)", self.output(), re.M)
        assert match, self.output()
        return match.group(1)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str | list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = None if form is None else urlencode(form, doseq=True)
            sent = {"Host": self.host, **(headers or {})}
            if body is not None:
                sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read().decode())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def serving(backend: Backend, *args: str, **kwargs: Any) -> Iterator[WebServer]:
    server = WebServer(backend, *args, **kwargs)
    try:
        yield server
    finally:
        server.close()
        print(f"--- queuectl web output\n{server.output()}\n--- its stderr\n{server.log()}")


def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `function` (one that runs its own asyncio loop, as helpers.seed does) in a thread
    of its own: Playwright's sync API keeps a loop running in the test's thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()
