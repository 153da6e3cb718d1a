"""`queuectl web`: serve the dashboard of the queue that --home/--db select (queuectl/web)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys

import asyncclick as click

from queuectl.cli.options import current_queue, queue_options
from queuectl.errors import BadInput

DEFAULT_BIND = "127.0.0.1:8421"
TOKEN_ENV = "QUEUECTL_WEB_TOKEN"


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT, or :PORT (every address); one clear line when wrong."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if sep and rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BadInput(f"--bind {text!r}: give HOST:PORT with a port from 0 to 65535")
    if host and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise BadInput(f"--bind {text!r}: {host!r} is not an IP address or localhost") from None
    return host, int(port_text)


@click.command()
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen; any address other than loopback requires a token.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help=f"Required of every client (default: ${TOKEN_ENV}; off loopback, generated if unset).",
)
@queue_options
async def web(bind: str, token: str | None) -> None:
    """Serve the live web dashboard, its JSON API and /metrics (Ctrl-C stops it)."""
    from queuectl.web.app import start
    from queuectl.web.security import is_loopback

    host, port = parse_bind(bind)
    token = token or os.environ.get(TOKEN_ENV) or None
    generated = False
    if token is None and not is_loopback(host):
        import secrets  # not at import: every command's start-up would pay for it

        token, generated = secrets.token_urlsafe(24), True
    if token is not None and len(token) < 16:
        raise BadInput("the token is too short; give one of at least 16 characters")
    queue = current_queue()
    served = await start(queue, host, port, token)
    try:
        click.echo(f"queuectl web: serving {served.url} (Ctrl-C stops)")
        if generated:
            click.echo(f"token: {token}  (give it with --token or ${TOKEN_ENV} to keep it)")
        sys.stdout.flush()
        await _until_stopped()
    finally:
        await served.runner.cleanup()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


COMMANDS = (web,)
