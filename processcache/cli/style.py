"""How the CLI shows times and statuses to a person: the time zone said, colour only on a terminal.

Times are stored and printed in UTC, and the column says so; ``--local``
(this machine's zone) or ``PROCESSCACHE_TZ`` (``local`` or a zone name such
as ``Europe/Berlin``) shows them in another. JSON always carries UTC with
its offset, for machines. Statuses are coloured on a terminal (failed and
lost red, skipped grey), and so are the log lines ``run`` echoes, plain when
piped or when ``NO_COLOR`` is set (https://no-color.org).
"""

import os
import sys
from datetime import datetime, timezone, tzinfo

import click

COLOURS = {"WARNING": "yellow", "ERROR": "red", "failed": "red", "lost": "red", "terminated": "red",
           "timed-out": "red", "overdue": "yellow", "too-long": "yellow", "no-jobs": "red",
           "skipped": "bright_black", "running": "cyan", "succeeded": "green"}
#: The zone times are shown in, as --local or PROCESSCACHE_TZ chose it when the command line was read; None: UTC.
_zone_shown: tzinfo | None = None


def local_option(func):
    """``--local``: the command's times in this machine's zone; read before the command runs."""
    return click.option("--local", is_flag=True, expose_value=False, callback=_choose_zone,
                        help="Show times in this machine's time zone (or PROCESSCACHE_TZ's) instead of UTC.")(func)


def _choose_zone(_ctx, _param, local: bool) -> None:
    global _zone_shown
    _zone_shown = _zone(os.environ.get("PROCESSCACHE_TZ") or ("local" if local else "UTC"))


def _zone(name: str) -> tzinfo | None:
    """PROCESSCACHE_TZ's zone when it is set (with --local too), else this machine's with --local, else UTC."""
    if name.lower() == "local":
        return datetime.now().astimezone().tzinfo
    if name.upper() in ("UTC", ""):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.UsageError(f"PROCESSCACHE_TZ={name!r} is not a time zone: use local, UTC or a name such as"
                               " Europe/Berlin") from None


def show_time(moment: datetime) -> str:
    """A stored (UTC) time in the zone chosen, to the second."""
    return (moment if _zone_shown is None else moment.astimezone(_zone_shown)).strftime("%Y-%m-%d %H:%M:%S")


def local_time(moment: datetime) -> datetime:
    """*moment* in the zone chosen (--local, PROCESSCACHE_TZ), else this machine's: the "local" beside UTC."""
    return moment.astimezone(_zone_shown)


def zone_label() -> str:
    """What a time column's header says its times are in: ``UTC``, or the zone's name now (``CET``)."""
    return "UTC" if _zone_shown is None else datetime.now(timezone.utc).astimezone(_zone_shown).strftime("%Z")


def coloured(text: str, word: str, stream=None) -> str:
    """*text* in the colour of the status or log type *word*, when *stream* (stdout) is a terminal that wants
    colour; as it is otherwise, without even a reset code."""
    colour = COLOURS.get(word)
    if colour is None or os.environ.get("NO_COLOR") or not (stream or sys.stdout).isatty():
        return text
    return click.style(text, fg=colour)
