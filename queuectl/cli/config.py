"""`config set/get/list`: the settings stored in the queue."""

from __future__ import annotations

import asyncclick as click

from queuectl import render, service
from queuectl.cli.completion import config_keys
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.config import CONFIG_KEYS


@click.group()
@queue_options
async def config() -> None:
    """Settings stored in the queue, seen by every process that uses it."""


# ignore_unknown_options: a negative VALUE (max-retries -1) must reach the key's own check,
# which explains the range, rather than be refused as an unknown option.
@config.command(name="set", context_settings={"ignore_unknown_options": True})
@click.argument("key", shell_complete=config_keys)
@click.argument("value")
@queue_options
async def config_set(key: str, value: str) -> None:
    """Set KEY to VALUE (checked by type and range)."""
    stored = await service.set_config(current_queue(), key, value)
    click.echo(f"{key} = {render.format_value(stored)}")


@config.command(name="get")
@click.argument("key", shell_complete=config_keys)
@json_option
@queue_options
async def config_get(key: str, as_json: bool) -> None:
    """Print the value of KEY."""
    value = await service.get_config(current_queue(), key)
    if as_json:
        render.print_json({key: value})
    else:
        click.echo(render.format_value(value))


@config.command(name="list")
@json_option
@queue_options
async def config_list(as_json: bool) -> None:
    """Every key with its value and meaning."""
    values = (await service.config(current_queue())).as_dict()
    if as_json:
        render.print_json(values)
    else:
        render.config_table(values, {name: key.help for name, key in CONFIG_KEYS.items()})


COMMANDS = (config,)
