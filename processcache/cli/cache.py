"""``processcache cache ...``: look at and fix a job's cache from a shell. Parse, call, format."""

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from ..cache.codec import encode_value
from ..errors import ProcessCacheError
from ..names import split_job_name
from .format import (
    database_option,
    echo_json,
    echo_table,
    job_argument,
    json_line,
    json_option,
    one_line_errors,
    opened,
    progress_bar,
    yes_option,
)

if TYPE_CHECKING:
    from ..cache.context import CacheContext


_SCOPE_HELP = "[default: the job's scope: every machine's, or this host's for a job of scope=machine]"


def _machine_options(func):
    func = click.option("--all-machines", "-a", is_flag=True, help="Every machine's entries.")(func)
    return click.option("--machine", "-m", metavar="NAME", help=f"Only this machine's entries {_SCOPE_HELP}.")(func)


@contextlib.contextmanager
def _context(database, job, machine, create=False, read_only=False, all_machines=False) -> Iterator["CacheContext"]:
    """A context on *job* that records no run, scoped as the command line says, else as the job's runs do.

    Only `set` and `import` (*create*) make a job that does not exist yet:
    every other command refuses a mistyped name, and creates nothing. The
    reading commands open the database *read_only*.
    """
    from ..cache.context import CacheContext
    from ..options import JobOptions

    group, name = split_job_name(job)  # checked by job_argument already
    with opened(database, read_only) as db:
        if not create:
            db.history.job_id(job)
        ctx = CacheContext(db, group, name, machine)
        scope = "job" if all_machines else "machine" if machine else db.runs.scope_of(ctx.job_id)
        ctx.options = JobOptions(scope=scope or "job")
        yield ctx


def _where(ctx) -> str:
    """Whose entries a command acted on, for its messages."""
    return "every machine" if ctx.scope_machine is None else ctx.scope_machine


@click.group()
def cache():
    """Look at and change a job's cache: list, get, set, delete, clear, export, import.

    Entries record the machine that wrote them. Commands act on the entries
    of the job's scope, as its runs see them: every machine's (scope=job,
    the default) or this host's (scope=machine); --machine names one
    machine, --all-machines reads every machine's.

    \b
    Examples:
        processcache cache list example/hello-world --all-machines
        processcache cache set example/hello-world token '"abc"' --ttl 6h
        processcache cache export example/hello-world > hello.jsonl
    """


@cache.command("list")
@job_argument
@_machine_options
@database_option
@json_option
@one_line_errors
def list_keys(job, machine, all_machines, database, as_json):
    """Keys with their number of entries, size in bytes and newest time."""
    with _context(database, job, machine, read_only=True, all_machines=all_machines) as ctx:
        stats = ctx.database.cache.key_stats(ctx.job_id, ctx.scope_machine)
        if as_json:
            echo_json(stats)
            return
        echo_table(["KEY", "ENTRIES", "BYTES", "NEWEST"], [[s.key, s.entries, s.size, s.newest] for s in stats],
                   empty="the cache is empty")


@cache.command()
@job_argument
@click.argument("key")
@_machine_options
@database_option
@json_option
@one_line_errors
def get(job, key, machine, all_machines, database, as_json):
    """The values under KEY, oldest first, one JSON value a line (exit 1 if none)."""
    with _context(database, job, machine, read_only=True, all_machines=all_machines) as ctx:
        entries = ctx.get_cache(key)
        if not entries:
            raise click.ClickException(f"no entries under {key!r} in {ctx.group}/{ctx.job} on {_where(ctx)}")
        if as_json:
            echo_json(entries)
            return
        for entry in entries:
            click.echo(encode_value(entry.value))


@cache.command("set")
@job_argument
@click.argument("key")
@click.argument("value", default="-")
@click.option("--string", "-s", "as_string", is_flag=True, help="Store VALUE as a string, not JSON.")
@click.option("--append", is_flag=True, help="Add VALUE under KEY instead of replacing what is there.")
@click.option("--ttl", metavar="DURATION", help="Expire the entry after this long (e.g. 6h).")
@click.option("--machine", "-m", metavar="NAME",
              help=f"Store it as this machine's, replacing only its entries {_SCOPE_HELP}.")
@database_option
@json_option
@one_line_errors
def set_value(job, key, value, as_string, append, ttl, machine, database, as_json):
    """Make VALUE (JSON, or text with --string) the one value under KEY.

    Without VALUE, or with -, the value is read from standard input (one
    final newline dropped): a secret on the command line is visible to
    every user of the machine in `ps`, one piped in is not.

    \b
    Examples:
        processcache cache set billing/sync cursor '{"page": 12}'
        printf '%s' "$TOKEN" | processcache cache set billing/sync token --string --ttl 6h
    """
    if value == "-":
        value = _stdin_value()
    if not as_string:
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:  # the value itself is not shown: it may be a secret
            raise click.ClickException(f"VALUE is not JSON ({exc.msg} at column {exc.colno}): quote a string"
                                       " as '\"text\"', or add --string") from None
    with _context(database, job, machine, create=True) as ctx:
        entry = (ctx.create_cache if append else ctx.set_cache)(key, value, ttl=ttl)
        if as_json:
            echo_json(entry)
            return
        click.echo(f"stored entry {entry.id} under {key!r} in {ctx.group}/{ctx.job} for {_where(ctx)}")


def _stdin_value() -> str:
    if sys.stdin.isatty():
        raise click.UsageError("give VALUE, or pipe it in: printf '%s' \"$TOKEN\" | processcache cache set JOB KEY")
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


@cache.command()
@job_argument
@click.argument("key")
@click.option("--machine", "-m", metavar="NAME", help=f"Delete only this machine's entries {_SCOPE_HELP}.")
@database_option
@json_option
@one_line_errors
def delete(job, key, machine, database, as_json):
    """Delete every entry under KEY."""
    with _context(database, job, machine) as ctx:
        _deleted(ctx, ctx.delete_cache(key), key, as_json)


@cache.command()
@job_argument
@click.option("--machine", "-m", metavar="NAME", help=f"Clear only this machine's entries {_SCOPE_HELP}.")
@yes_option
@database_option
@json_option
@one_line_errors
def clear(job, machine, yes, database, as_json):
    """Delete every entry of a job in its scope, or on one machine (asks first)."""
    with _context(database, job, machine) as ctx:
        if not yes:
            click.confirm(f"Delete every entry of {ctx.group}/{ctx.job} on {_where(ctx)}?", abort=True)
        _deleted(ctx, ctx.clear_cache(), None, as_json)


def _deleted(ctx, count: int, key: str | None, as_json: bool) -> None:
    if as_json:
        echo_json({"job": f"{ctx.group}/{ctx.job}", "key": key, "machine": ctx.scope_machine, "deleted": count})
        return
    under = f" under {key!r} in" if key is not None else " of"
    click.echo(f"deleted {count} entries{under} {ctx.group}/{ctx.job} on {_where(ctx)}")


@cache.command()
@job_argument
@click.option("--machine", "-m", metavar="NAME", help="Only this machine's entries [default: every machine's].")
@database_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of one JSON object a line.")
@one_line_errors
def export(job, machine, database, as_json):
    """Write every live entry as JSON lines, oldest first, to stdout.

    Each line keeps the key, value, machine, creation time and expiry, so
    `cache import` rebuilds the same cache. By default every machine's.
    """
    from ..storage import ExportedEntry

    with opened(database) as db:
        lines = [ExportedEntry(*row).line() for row in db.cache.export_rows(db.history.job_id(job), machine)]
    if as_json:
        echo_json(lines)
        return
    for line in lines:
        click.echo(json_line(line))


@cache.command("import")
@job_argument
@click.option("--machine", "-m", metavar="NAME", help="Store every entry as this machine's instead of its own.")
@click.option("--append", is_flag=True,
              help="Store every line, even an entry already there [default: skip those, so a second import of "
                   "the same file changes nothing].")
@database_option
@json_option
@one_line_errors
def import_entries(job, machine, append, database, as_json):
    """Add the entries of a `cache export` (JSON lines on stdin), all in one transaction.

    Every line is checked before anything is stored: one bad line (invalid
    UTF-8 too) imports nothing. An entry already in the cache (same machine, key, value and
    creation time) is skipped unless --append.

    \b
    Example:
        processcache cache import example/hello-world -d sqlite:///copy.db < hello.jsonl
    """
    from ..storage import parse_lines

    try:
        rows = parse_lines(click.get_binary_stream("stdin"), machine)
    except ProcessCacheError as exc:
        raise click.ClickException(f"{exc}: nothing was imported") from None
    with _context(database, job, machine, create=True) as ctx:
        with progress_bar("importing", len(rows)) as bar:
            count = ctx.database.cache.restore(ctx.job_id, rows, append=append, progress=bar.update)
        if as_json:
            echo_json({"job": f"{ctx.group}/{ctx.job}", "imported": count, "skipped": len(rows) - count})
            return
        skipped = f" ({len(rows) - count} already there)" if len(rows) > count else ""
        click.echo(f"imported {count} entries into {ctx.group}/{ctx.job}{skipped}")
