"""The command line: parse, call the service layer, render.

`main` is the one place where errors become exit codes: a QueuectlError or a usage error is one
line on stderr (exit 2 for bad input, 1 for an operational failure), never a traceback.

Each topic's commands live in a module of their own; this one holds the group and registers
them. Modules that are slow to import (rich, the store, the control channel, the engine) are
imported only by the commands that use them, so that `queuectl enqueue` starts fast.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

import asyncclick as click

from queuectl import __version__
from queuectl.cli import (
    completion,
    config,
    db,
    dlq,
    engine,
    enqueue,
    inspect,
    listing,
    manage,
    queues,
    schedule,
    web,
)
from queuectl.cli.options import queue_options
from queuectl.errors import QueuectlError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="queuectl")
@queue_options
async def cli() -> None:
    """queuectl: a durable background job queue for shell commands."""


for module in (enqueue, inspect, listing, manage, engine, completion, web):
    for command in module.COMMANDS:
        cli.add_command(command)
for command in (dlq.dlq, config.config, db.db, schedule.schedule, queues.queue):
    cli.add_command(command)


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"queuectl: error: {message}\n")
    sys.exit(code)


def usage_message(exc: click.UsageError) -> str:
    """Click's message as one sentence or two, with a pointer to the help: `No such command
    'paus'; did you mean 'pause' or 'status'? See `queuectl --help`.`"""
    where = f"`{exc.ctx.command_path if exc.ctx else 'queuectl'} --help`"
    possibilities = getattr(exc, "possibilities", None)
    if not possibilities:  # click adds its own suggestion to format_message(): not to .message
        return f"{' '.join(exc.format_message().split()).rstrip('.')}; see {where}"
    names = [repr(name) for name in sorted(possibilities)]
    either = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{' '.join(exc.message.split()).rstrip('.')}; did you mean {either}? See {where}"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = asyncio.run(cli.main(args, prog_name="queuectl", standalone_mode=False))
        if callable(code):  # a command that must run outside the CLI's event loop
            code = code()
    except QueuectlError as exc:
        fail(str(exc), exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "see `queuectl --help`")
        sys.exit(2)
    except click.UsageError as exc:
        fail(usage_message(exc), 2)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
