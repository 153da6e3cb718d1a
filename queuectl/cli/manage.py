"""Changing jobs in the queue: cancel (next: restart, edit, delete, purge, wait, kill)."""

from __future__ import annotations

import asyncclick as click

from queuectl import service
from queuectl.cli.options import current_queue, queue_options


@click.command()
@click.argument("job_id")
@queue_options
async def cancel(job_id: str) -> None:
    """Cancel a job: a waiting one at once, a running one by killing its process group."""
    await service.cancel(current_queue(), job_id)
    click.echo(f"canceled {job_id}")


COMMANDS = (cancel,)
