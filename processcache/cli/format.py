"""What the CLI commands share: options defined once, one-line errors, tables and JSON.

Every stored text a table or an error shows (names, keys, messages, errors)
goes through `processcache.storage.texts.shown`, its control and bidirectional
characters escaped; JSON keeps the exact values, those characters written
as ``\\uXXXX``.
"""

import contextlib
import dataclasses
import enum
import functools
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import click

from ..durations import format_duration
from ..errors import ProcessCacheError
from ..names import split_job_name
from ..options import DEFAULT_GRACE
from ..run.spool import flush_waiting
from ..storage import behind, connect, one_line_when_lost, shown, shown_json
from .style import coloured, local_option, show_time, zone_label

if TYPE_CHECKING:
    from ..records import RunRecord
    from ..storage import Database


def database_option(func):
    return click.option(
        "--database", "-d", metavar="URL", envvar="PROCESSCACHE_DATABASE_URL", show_envvar=True,
        help="sqlite:///file.db, postgresql://user@host/db or mysql://user@host/db "
             "[default: processcache.db in your user data folder]")(func)


#: Where `read_url_option` keeps --read-url for `opened` (Click's ``meta``, shared by a command and its group).
_READ_URL = "processcache.read_url"
#: A standby this many seconds behind its primary is said on stderr by the commands that read it.
LAG_SHOWN = 1.0


def read_url_option(func):
    """``--read-url`` (``PROCESSCACHE_READ_URL``) of the commands that only read: where they read instead of
    --database (a standby), kept for `opened`; a command's writes and alerts always go to --database."""
    return click.option(
        "--read-url", metavar="URL", envvar="PROCESSCACHE_READ_URL", show_envvar=True, expose_value=False,
        callback=_keep_read_url,
        help="Read from this database instead of --database: a standby (postgresql://cron@db2/cron, or a host"
             " list with target_session_attrs=prefer-standby). Its data is as of the last transaction it replayed:"
             " a lag of a second or more is said on stderr. Whatever writes or sends alerts uses --database.")(func)


def _keep_read_url(ctx: click.Context, _param, url: str | None) -> str | None:
    if url:
        ctx.meta[_READ_URL] = url
    return url


def reading(database: str | None, read_only: bool = True) -> str | None:
    """The URL a command reads: its --read-url when it only reads (*read_only*) and was given one, else
    *database*."""
    ctx = click.get_current_context(silent=True)
    read_url = ctx.meta.get(_READ_URL) if ctx is not None and read_only else None
    return read_url or database


def json_option(func):
    """``--json`` for machines, and ``--local`` for the times people read in the table otherwise."""
    func = local_option(func)
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON for machines instead of a table (times in UTC, with their offset).")(func)


#: ``--yes`` for the commands that ask before they destroy something: a script says it once, up front.
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask first.")


def grace_option(help: str):
    """--grace, as check's, with the one default (`options.DEFAULT_GRACE`)."""
    return click.option("--grace", default=format_duration(DEFAULT_GRACE), show_default=True, metavar="DURATION",
                        help=help)


def job_argument(func):
    """The GROUP/JOB argument: a malformed one is a usage error before any database is opened; the shell
    completes it from the jobs of the database the line names."""
    return click.argument("job", metavar="GROUP/JOB", callback=_check_job_name, shell_complete=complete_jobs)(func)


def _check_job_name(_ctx, _param, text: str) -> str:
    try:
        split_job_name(text)
    except ProcessCacheError as exc:
        raise click.UsageError(str(exc)) from None
    return text


def complete_jobs(ctx: click.Context, _param, incomplete: str) -> list[str]:
    """Names of jobs starting with *incomplete*; none at all when the database cannot be read (never an error)."""
    try:
        with opened(ctx.params.get("database")) as db:
            names = [summary.name for summary in db.history.jobs()]
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


@contextlib.contextmanager
def opened(database: str | None, read_only: bool = True) -> Iterator["Database"]:
    """The command's database, read-only unless the command changes it, with its errors in one line."""
    url = reading(database, read_only)
    with connect(url, read_only=read_only) as db, one_line_when_lost(db):
        if url == database:
            flush_waiting(db, database)  # runs kept while the database was down, stored first: the command sees them
        else:  # a standby: nothing is stored there, and the spool waits for the next command that writes
            say_lag(db)
        yield db


def say_lag(db: "Database") -> None:
    """On stderr, how far behind its primary the standby *db* is, from `LAG_SHOWN` up."""
    lag = db.replay_lag()
    if lag is not None and lag >= LAG_SHOWN:
        click.echo(f"processcache: read from a standby, {db.url}, {behind(lag)} behind its primary", err=True)


def progress_bar(label: str, total: int):
    """A progress bar on stderr, shown only on a terminal: stdout stays clean for pipes, and cron's mail too."""
    return click.progressbar(length=total, label=label, file=sys.stderr, hidden=not sys.stderr.isatty())


def one_line_errors(func):
    """Show a ProcessCacheError as one line and exit 1, without a traceback (what it quotes escaped)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ProcessCacheError as exc:
            raise click.ClickException(shown(str(exc), lines=True)) from None

    return wrapper


def echo_json(value) -> None:
    click.echo(shown_json(json.dumps(_records(value), default=_plain, indent=2, ensure_ascii=False)))


def json_line(value) -> str:
    """One JSON object on one line, for streams such as ``logs --follow --json``."""
    return shown_json(json.dumps(_records(value), default=_plain, ensure_ascii=False))


def _records(value):
    """NamedTuple records as objects: json would write them as arrays."""
    if isinstance(value, list):
        return [_records(item) for item in value]
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    return value


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {field.name: _records(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def echo_table(headers: list[str], rows: list[list], empty: str = "nothing to show",
               optional: tuple[str, ...] = ()) -> None:
    """Aligned columns (`table_lines`), or *empty* when there are no rows."""
    if not rows:
        click.echo(empty)
        return
    for line in table_lines(headers, rows, optional):
        click.echo(line)


def table_lines(headers: list[str], rows: list[list], optional: tuple[str, ...] = ()) -> list[str]:
    """Aligned columns, the last one left unpadded (it holds messages and errors).

    A cell shows the first line of its value, escaped (`texts.shown`).

    A column of times says their zone in its header; a STATUS or PROBLEM
    column is coloured on a terminal, by the cell's first word (the status:
    ``failed (3 attempts)`` is red). The columns named in *optional* are
    left out when no row has a value there, so a table of Python jobs'
    runs is not widened by an EXIT column of dashes.
    """
    kept = [i for i, header in enumerate(headers) if header not in optional or any(row[i] is not None for row in rows)]
    headers, rows = [headers[i] for i in kept], [[row[i] for i in kept] for row in rows]
    timed = {i for row in rows for i, value in enumerate(row) if isinstance(value, datetime)}
    headers = [f"{header} ({zone_label()})" if i in timed else header for i, header in enumerate(headers)]
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers) - 1)]
    statuses = [i for i, header in enumerate(headers) if header in ("STATUS", "PROBLEM")]
    lines = ["  ".join([header.ljust(width) for header, width in zip(headers, widths)] + [headers[-1]]).rstrip()]
    for row in cells:
        padded = [value.ljust(width) for value, width in zip(row, widths)] + [row[-1]]
        for i in statuses:
            padded[i] = coloured(padded[i], row[i].split(" ")[0])
        lines.append("  ".join(padded).rstrip())
    return lines


def run_status(run: "RunRecord | None") -> str | None:
    """A run's status as the tables show it, with its number of attempts when it retried: ``failed (3 attempts)``,
    and ``recorded late`` for a run kept in its machine's spool while the database was down."""
    if run is None:
        return None
    notes = [f"{run.attempts} attempts"] if run.attempts and run.attempts > 1 else []
    if getattr(run, "late", False):
        notes.append("recorded late")
    return f"{run.status} ({', '.join(notes)})" if notes else run.status


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return show_time(value)
    if isinstance(value, float):
        return format_duration(value)
    return shown(str(value).split("\n", 1)[0].removesuffix("\r"))
