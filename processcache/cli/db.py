"""``processcache db``: create, check, recreate or upgrade processcache's tables."""

import sys

import click

from ..storage import connect, describe
from .format import database_option, echo_json, json_option, one_line_errors


@click.group()
def db():
    """Create, check, recreate or upgrade processcache's tables."""


@db.command()
@database_option
@click.option("--mode", type=click.Choice(["create", "check", "new"]), default="create", show_default=True,
              help="create: add what is missing, keep all data. check: report differences, change "
                   "nothing (exit 1 if any). new: drop every processcache table and its data, then recreate.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --mode new destroys data.")
@json_option
@one_line_errors
def sync(database, mode, yes, as_json):
    """Bring the database's schema in line with this version of processcache.

    Tables are also created on first use, so this is never needed before a
    first run; use it to prepare a shared database, or to check one.

    \b
    Examples:
        processcache db sync --database postgresql://cron@db.internal/cron
        processcache db sync --mode check
        processcache db sync --mode new --yes      # destroys all cached data
    """
    with connect(database, create=False, read_only=mode == "check") as opened:
        if mode == "new" and not yes:
            click.confirm(f"Drop every processcache table in {opened.url} with all its data?", abort=True)
        differences = opened.sync(mode)
        if as_json:
            echo_json({"database": opened.url, "mode": mode, "differences": differences})
        elif not differences:
            click.echo(f"{opened.url}: the schema is up to date")
        elif mode == "check":
            click.echo("\n".join(f"{opened.url}: {line}" for line in differences))
        else:
            click.echo(f"{opened.url}: created {len(differences)} missing table(s) and column(s)")
        sys.exit(1 if differences and mode == "check" else 0)


@db.command()
@database_option
@json_option
@one_line_errors
def upgrade(database, as_json):
    """Upgrade a database written by an older processcache, keeping every row.

    Runs by itself on first use too; this is for doing it at a time of your
    choosing (before a deploy, say). A database written by a newer
    processcache is refused, not changed.

    \b
    Example:
        processcache db upgrade --database postgresql://cron@db.internal/cron
    """
    with connect(database, upgrade=False, create=False) as opened:
        before, after = opened.upgrade()
    if as_json:
        echo_json({"database": opened.url, "before": describe(before), "after": describe(after)})
        return
    click.echo(f"{opened.url}: " + (f"upgraded the schema from version {describe(before)} to {describe(after)}"
                                    if before != after else f"the schema is at version {describe(after)} already"))
