"""`queuectl completion bash|zsh|fish`, and job ids completed from the queue.

click does the completing: the script printed is click's own for that shell (what
`_QUEUECTL_COMPLETE=bash_source queuectl` prints), which on each Tab runs queuectl again with
`_QUEUECTL_COMPLETE=bash_complete` and the words typed so far; click resolves them to a
command and asks the parameter under the cursor. This module gives users a command to print
the script, so they need not know click's variable, and the callback that completes job ids.

A completion runs inside the shell's prompt, so the callback must be quick and quiet: it reads
at most ID_LIMIT ids, waits at most ID_TIMEOUT for the queue, and offers nothing rather than
print an error (no queue yet, a locked or corrupt database).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import asyncclick as click

from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.service import Queue

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "queuectl"
COMPLETE_VAR = "_QUEUECTL_COMPLETE"
#: ids read per completion, newest first: the jobs a user most likely means
ID_LIMIT = 500
#: seconds a completion waits for the queue before it offers nothing
ID_TIMEOUT = 1.0

#: what click's `shell_complete=` takes (plain strings are completions of type "plain")
Completer = Callable[[click.Context, click.Parameter, str], list[str]]


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
async def completion(shell: str) -> None:
    """Print the completion script for SHELL (commands, options and job ids).

    \b
      bash: eval "$(queuectl completion bash)"       (in ~/.bashrc; bash 4.4+)
      zsh:  eval "$(queuectl completion zsh)"        (in ~/.zshrc)
      fish: queuectl completion fish > ~/.config/fish/completions/queuectl.fish
    """
    from asyncclick.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    if complete is None:  # click.Choice has checked the name; click knows each of SHELLS
        raise click.UsageError(f"no completion for {shell!r}")
    root = click.get_current_context().find_root().command
    click.echo(complete(root, {}, PROG_NAME, COMPLETE_VAR).source(), nl=False)


def complete_ids(*states: JobState) -> Completer:
    """A `shell_complete` callback offering the ids of the queue's jobs (in `states`, or any)
    that start with what was typed. The queue is the one the command line names so far
    (--home and --db are read even while completing)."""

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        from queuectl.cli.options import queue_of

        try:
            queue = queue_of(ctx)
        except Exception:  # a bad --home: nothing to offer
            return []
        return _read_ids(queue, incomplete, states)

    return complete


def _read_ids(queue: Queue, prefix: str, states: Sequence[JobState]) -> list[str]:
    """Read in a thread with its own event loop: click calls completers synchronously, from
    inside the CLI's running loop. A read that does not finish in time (a database locked by a
    migration, a stalled disk) is abandoned and the process leaves at once, since its
    connection's thread would otherwise hold the exit until the read ends."""
    found: list[str] = []

    def work() -> None:
        try:
            found.extend(asyncio.run(_ids(queue, prefix, states)))
        except Exception:  # completion must stay silent: offer nothing
            found.clear()

    reader = threading.Thread(target=work, name="complete-ids", daemon=True)
    reader.start()
    reader.join(ID_TIMEOUT)
    if reader.is_alive():
        sys.stdout.flush()
        os._exit(0)
    return found


async def _ids(queue: Queue, prefix: str, states: Sequence[JobState]) -> list[str]:
    """The ids starting with `prefix`, sorted as a shell lists them: the store narrows to the
    newest ID_LIMIT jobs containing it (in their id, command or label); of those, the ids that
    start with it."""
    from queuectl.store import JobFilter

    wanted = JobFilter(states=frozenset(states), grep=prefix or None, limit=ID_LIMIT)
    async with queue.store(create=False) as store:
        ids = [job.id async for job in store.iter_jobs(wanted) if job.id.startswith(prefix)]
    return sorted(ids)


def config_keys(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """A `shell_complete` callback offering the config keys that start with what was typed."""
    from queuectl.config import CONFIG_KEYS

    return [name for name in CONFIG_KEYS if name.startswith(incomplete)]


COMMANDS = (completion,)
