"""`queuectl schedule`: cron schedules whose ticks the running engines enqueue, each once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import asyncclick as click

from queuectl import specs
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.errors import BadInput

if TYPE_CHECKING:
    from queuectl.schedules import Schedule


@click.group()
@queue_options
async def schedule() -> None:
    """Cron schedules: jobs enqueued at the times of a cron expression."""


@schedule.command(name="add", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--cron", "cron", metavar="EXPR", required=True, help="5-field cron expression.")
@click.option(
    "--tz",
    metavar="ZONE",
    default="UTC",  # schedules.DEFAULT_TZ, not imported: every command's start-up would pay
    show_default=True,
    help="IANA time zone the expression is read in (Europe/Berlin).",
)
@click.option(
    "--no-overlap", is_flag=True, help="Skip a tick while the previous job is unfinished."
)
@click.option("--max-retries", type=int, help="Retries after the first attempt.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--timeout", metavar="DURATION", help="Kill the job after this long (30s, 1h30m).")
@click.option("--cwd", metavar="DIR", help="Run the job in DIR (default: this directory).")
@click.option(
    "--env",
    "env",
    metavar="KEY=VALUE",
    multiple=True,
    help="Add a variable to the job's environment (repeatable); KEY alone passes this "
    "shell's value.",
)
@click.option("--label", metavar="TEXT", help="The jobs' label (default: schedule:NAME).")
@click.option("--queue", "queue_name", metavar="NAME", help="The named queue (default: default).")
@json_option
@queue_options
async def schedule_add(
    name: str,
    args: tuple[str, ...],
    cron: str,
    tz: str,
    no_overlap: bool,
    max_retries: int | None,
    priority: int | None,
    timeout: str | None,
    cwd: str | None,
    env: tuple[str, ...],
    label: str | None,
    queue_name: str | None,
    as_json: bool,
) -> None:
    """Add schedule NAME: enqueue `-- COMMAND...` at every time of --cron.

    Running engines enqueue each tick once, however many share the database. Ticks missed
    while no engine ran give one catch-up run; --no-overlap skips a tick while the previous
    job is still pending or running.

    \b
      queuectl schedule add report --cron '0 9 * * 1-5' --tz Europe/Berlin -- make report
      queuectl schedule add sync --cron '*/5 * * * *' --no-overlap --timeout 4m -- ./sync.sh
    """
    from queuectl.cli.enqueue import _cwd
    from queuectl.service import schedules as service

    if not args:
        raise BadInput(f"schedule {name!r} needs a command: `schedule add NAME --cron EXPR -- CMD`")
    if len(args) == 1 and specs.is_json_object(args[0]):
        raise BadInput("schedule add takes `-- COMMAND...`, not a JSON job; give job options")
    resolved = _cwd(cwd)
    options = specs.Shorthand(
        max_retries=max_retries,
        priority=priority,
        timeout=timeout,
        cwd=resolved,
        env=specs.env_options(env, os.environ),
        label=label,
        queue=queue_name,
    )
    spec = specs.job_from_args(args, resolved, options)
    added, now = await service.add(current_queue(), name, cron, tz, spec, no_overlap)
    if as_json:
        _print_json(added, now)
        return
    from queuectl.render_schedules import fire_time

    click.echo(f"added schedule {added.name}; next fire {fire_time(added, now)}")


@schedule.command(name="list")
@json_option
@queue_options
async def schedule_list(as_json: bool) -> None:
    """Every schedule: its next fire time, and its last job and that job's state."""
    from queuectl import render_schedules
    from queuectl.service import schedules as service

    schedules = await service.list_schedules(current_queue())
    if as_json:
        from queuectl.render import print_json

        print_json(render_schedules.schedules_json(schedules))
    else:
        render_schedules.schedules_table(schedules)


@schedule.command(name="remove")
@click.argument("name")
@queue_options
async def schedule_remove(name: str) -> None:
    """Remove schedule NAME (the jobs it enqueued stay)."""
    from queuectl.service import schedules as service

    await service.remove(current_queue(), name)
    click.echo(f"removed schedule {name}")


@schedule.command(name="pause")
@click.argument("name")
@queue_options
async def schedule_pause(name: str) -> None:
    """Take no tick of NAME until it is resumed (ticks meanwhile are skipped)."""
    from queuectl.service import schedules as service

    await service.set_paused(current_queue(), name, True)
    click.echo(f"paused schedule {name}")


@schedule.command(name="resume")
@click.argument("name")
@queue_options
async def schedule_resume(name: str) -> None:
    """Take the ticks of NAME again, from the next one on (no catch-up for the pause)."""
    from queuectl.render_schedules import fire_time
    from queuectl.service import schedules as service

    resumed, now = await service.set_paused(current_queue(), name, False)
    click.echo(f"resumed schedule {name}; next fire {fire_time(resumed, now)}")


def _print_json(added: Schedule, now: float) -> None:
    from queuectl.render import print_json
    from queuectl.render_schedules import schedule_dict

    print_json(schedule_dict(added, now))


COMMANDS = (schedule,)
