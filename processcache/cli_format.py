"""What the CLI commands share: options defined once, one-line errors, tables and JSON."""

import contextlib
import dataclasses
import enum
import functools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import click

from .durations import format_duration
from .errors import ProcessCacheError

if TYPE_CHECKING:
    from .database import Database


def database_option(func):
    return click.option(
        "--database", "-d", metavar="URL", envvar="PROCESSCACHE_DATABASE_URL", show_envvar=True,
        help="sqlite:///file.db, postgresql://user@host/db or mysql://user@host/db "
             "[default: processcache.db in your user data folder]")(func)


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")(func)


@contextlib.contextmanager
def opened(database: str | None, read_only: bool = True) -> Iterator["Database"]:
    """The command's database, read-only unless the command changes it, with its errors in one line."""
    from .database import connect
    from .retry import one_line_when_lost

    with connect(database, read_only=read_only) as db, one_line_when_lost(db):
        yield db


def one_line_errors(func):
    """Show a ProcessCacheError as one line and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ProcessCacheError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def echo_json(value) -> None:
    click.echo(json.dumps(_records(value), default=_plain, indent=2, ensure_ascii=False))


def json_line(value) -> str:
    """One JSON object on one line, for streams such as ``logs --follow --json``."""
    return json.dumps(_records(value), default=_plain, ensure_ascii=False)


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


def echo_table(headers: list[str], rows: list[list], empty: str = "nothing to show") -> None:
    """Aligned columns, the last one left unpadded (it holds messages and errors)."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers) - 1)]
    for row in [headers, *cells]:
        padded = [value.ljust(width) for value, width in zip(row, widths)]
        click.echo("  ".join(padded + [row[-1]]).rstrip())


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return format_duration(value)
    return str(value).splitlines()[0] if str(value) else ""
