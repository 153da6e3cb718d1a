"""The command line: parse, call the service layer, render.

`main` is the one place where errors become exit codes: a QueuectlError or a usage error is one
line on stderr (exit 2 for bad input, 1 for an operational failure), never a traceback.

Each topic's commands live in a module of their own, listed in MODULES; a command's module is
imported when the command line names it (or when --help or a completion lists them all), so
`queuectl enqueue` imports neither the other commands nor what they need (rich, the control
channel, the engine, the web dashboard).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import NoReturn

import asyncclick as click

from queuectl import __version__
from queuectl.cli.options import queue_options
from queuectl.errors import QueuectlError

#: each command's module in this package, which names it in its COMMANDS
MODULES = {
    "enqueue": "enqueue",
    **dict.fromkeys(("status", "show", "logs"), "inspect"),
    "list": "listing",
    **dict.fromkeys(("cancel", "kill", "restart", "edit", "delete", "purge", "wait"), "manage"),
    **dict.fromkeys(("worker", "pause", "resume"), "engine"),
    "completion": "completion",
    "web": "web",
    "dlq": "dlq",
    "config": "config",
    "db": "db",
    "schedule": "schedule",
    "queue": "queues",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported from its module when first looked up: click
    lists the names (help, "did you mean", completion) without importing any, and looks up
    only the command that the command line names."""

    def __init__(self, modules: dict[str, str]) -> None:
        #: a command, or the name of its module while that is not imported yet
        self.entries: dict[str, click.Command | str] = dict(modules)

    def __getitem__(self, name: str) -> click.Command:
        entry = self.entries[name]
        if isinstance(entry, str):
            # as an import statement does: importlib.import_module would hide the module
            # from `python -X importtime` (tests/test_startup*.py read its report)
            module = __import__(f"{__name__}.{entry}", fromlist=["COMMANDS"])
            for command in module.COMMANDS:
                self.entries[command.name] = command
            entry = self.entries[name]
            assert not isinstance(entry, str), f"{module.__name__} has no command {name!r}"
        return entry

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self.entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="queuectl")
@queue_options
async def cli() -> None:
    """queuectl: a durable background job queue for shell commands."""


cli.commands = LazyCommands(MODULES)


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
