"""A group's options and its subcommand's: `locks -d URL break`, `jobs --json retire`, `runs show` without filters.

`jobs` and `locks` list something when called alone and take subcommands
too, so an option such as --database may come before or after the
subcommand's name. These read it from wherever the command line put it,
refuse it given twice with two values, and refuse a listing's filters
given to a subcommand that lists nothing: an option is never silently
ignored.
"""

from typing import Any

import click
from click.core import ParameterSource

from .format import echo_json


def of_group(click_ctx: click.Context, name: str, value: Any) -> Any:
    """A subcommand's option, or its group's (`locks -d URL break ...`): never silently the default."""
    parent = click_ctx.parent
    assert parent is not None, "a subcommand's context has its group's as parent"
    given = _given(parent, name)
    if given and _given(click_ctx, name) and value != parent.params[name]:
        raise click.UsageError(f"two different {given[0]} values: give it once")
    return parent.params[name] if given else value


def refuse_listing_options(click_ctx: click.Context, command: str, *names: str) -> None:
    """Refuse options that shape a listing when *command* (`jobs retire`, `runs show`) runs instead of it."""
    for option in _given(click_ctx, *names):
        raise click.UsageError(f"{option} shapes the listing: `{command}` takes no {option}")


def report(click_ctx: click.Context, as_json: bool, data: dict, text: str) -> None:
    """What a subcommand did: *data* with --json (given before or after it), *text* otherwise."""
    if of_group(click_ctx, "as_json", as_json):
        echo_json(data)
    else:
        click.echo(text)


def _given(click_ctx: click.Context, *names: str) -> list[str]:
    """Which of the parameters *names* the command line gave (an environment variable does not count), as written."""
    return [param.opts[0] for param in click_ctx.command.params if param.name in names
            and click_ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE]
