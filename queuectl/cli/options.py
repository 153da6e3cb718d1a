"""Options every command shares, and the queue they name.

--home and --db are accepted on the group and on every command (`queuectl list --home X` as
well as `queuectl --home X list`): each is an eager option that only records its value in the
context's meta, which the whole command chain shares, so the last one given wins wherever it
stands. Their environment variables are read by Queue.locate, not by click: click would
apply them again for each command's copy of the option, undoing a value given to the group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncclick as click

if TYPE_CHECKING:  # the service layer is imported by the commands that open a queue
    from queuectl.service import Queue

F = TypeVar("F", bound=Callable[..., Any])

_HOME = "queuectl.home"
_DB = "queuectl.db"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:  # a command without the option must not undo the group's
            ctx.meta[key] = value

    return remember


def queue_options(func: F) -> F:
    """--home and --db, for the group and for every command."""
    func = click.option(
        "--db",
        metavar="URL",
        expose_value=False,
        callback=_remember(_DB),
        is_eager=True,
        help="Database (sqlite:///PATH; default: $QUEUECTL_DB, else queue.db in the home).",
    )(func)
    return click.option(
        "--home",
        metavar="DIR",
        expose_value=False,
        callback=_remember(_HOME),
        is_eager=True,
        help="Queue directory (default: $QUEUECTL_HOME, else $XDG_DATA_HOME/queuectl).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only.")(func)


def current_queue() -> Queue:
    return queue_of(click.get_current_context())


def queue_of(ctx: click.Context) -> Queue:
    """The queue that `ctx`'s command line names; also while completing it (shell completion
    has no current context, but the options have recorded their values)."""
    from queuectl.service import Queue

    return Queue.locate(ctx.meta.get(_HOME), ctx.meta.get(_DB))
