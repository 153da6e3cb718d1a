"""`queuectl db status`: the queue database's schema version and the migrations pending.

Migrations run by themselves on first use (one locked transaction per step, see
store/postgres_schema.py); this command only looks, so that an operator upgrading queuectl on
many hosts can see what the first engine to start will apply, or that a newer queuectl has
already migrated the database past what this one understands.
"""

from __future__ import annotations

from typing import Any

import asyncclick as click

from queuectl.cli.options import current_queue, json_option, queue_options


@click.group()
@queue_options
async def db() -> None:
    """The queue's database: its schema and migrations."""


@db.command(name="status")
@json_option
@queue_options
async def db_status(as_json: bool) -> None:
    """Print the schema version, and the migrations the next use will apply."""
    from queuectl import render
    from queuectl.service.schema import schema_status

    status = await schema_status(current_queue())
    if as_json:
        render.print_json(
            {
                "backend": status.backend,
                "database": status.location,
                "version": status.version,
                "latest": status.latest,
                "newer": status.newer,
                "applied": [_applied(entry) for entry in status.applied],
                "pending": status.pending,
            }
        )
        return
    click.echo(f"database: {status.location} ({status.backend})")
    click.echo(f"schema:   {status.version} (this queuectl knows up to {status.latest})")
    if status.newer:
        click.echo("          newer than this queuectl understands; upgrade queuectl")
    elif status.pending:
        steps = ", ".join(f"{step['version']} {step['name']}" for step in status.pending)
        click.echo(f"pending:  {steps} (applied on the next use)")
    else:
        click.echo("pending:  none")


def _applied(entry: dict[str, Any]) -> dict[str, Any]:
    from queuectl import render

    return {**entry, "applied_at": render.iso(entry["applied_at"])}


COMMANDS = (db,)
