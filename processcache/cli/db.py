"""``processcache db``: create, check, recreate or upgrade processcache's tables."""

import sys

import click

from ..errors import ProcessCacheError
from ..storage import connect, describe, import_original, original_rows, parse_url, rename_original, resolve_url
from .format import database_option, echo_json, json_option, one_line_errors, progress_bar


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


@db.command("import-original")
@click.argument("source", metavar="SOURCE_URL")
@database_option
@click.option("--rename-original", "rename", is_flag=True,
              help="First move the original's tables aside (original_processes, ...) so that processcache can use"
                   " their database; it is then the default --database.")
@json_option
@one_line_errors
def import_original_command(source, database, rename, as_json):
    """Import what the original process-cache wrote at SOURCE_URL: its processes, jobs, cache and logs.

    Job by job, each in one transaction: run it again after an interruption
    and it adds what is missing; a complete import adds nothing. Values stay
    the strings the original stored, times its unix seconds in UTC, machines
    and log types as they were. Names processcache refuses are imported under
    the nearest name it takes, each one listed. The original's tables are
    only read, unless --rename-original moves them aside.

    \b
    Examples:
        processcache db import-original mysql://cron@db/jobs --database mysql://cron@db/processcache
        processcache db import-original mysql://cron@db/jobs --rename-original
    """
    target = database or (source if rename else None)
    if not rename and parse_url(resolve_url(target)).safe_url == parse_url(source).safe_url:
        raise ProcessCacheError(f"{parse_url(source).safe_url} holds the original's tables under processcache's"
                                " names: import into another database (--database URL), or add --rename-original"
                                " to move them aside first")
    tables = None
    if rename:
        with connect(source, create=False) as opened:
            tables = rename_original(opened)
    with connect(source, create=False, read_only=not rename) as original, connect(target) as into:
        with progress_bar("importing", original_rows(original, tables)) as bar:
            counts = import_original(original, into, bar.update, tables)
    if as_json:
        echo_json({"source": original.url, "database": into.url, **vars(counts)})
        return
    click.echo(f"imported {original.url} into {into.url}: {counts.groups} groups, {counts.jobs} jobs,"
               f" {counts.entries} entries, {counts.logs} logs")
    if counts.entries_there or counts.logs_there:
        click.echo(f"already there, not imported again: {counts.entries_there} entries, {counts.logs_there} logs")
    if counts.orphans:
        click.echo(f"left out: {counts.orphans} entries and logs of jobs the original no longer holds")
    for change in counts.renamed:
        click.echo(f"renamed: {change} (processcache refuses the original name)")
