"""Durations as people write them in a crontab's neighbourhood: ``30s``, ``15m``, ``2h``, ``1d``.

A number (int or float, or its text) is seconds. Units may be combined
(``1h30m``); white space around them is ignored. `parse_since` reads a
duration ago or a time, as ``--since`` takes it.
"""

import re
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(value: "str | int | float", what: str = "duration") -> float:
    """Seconds in *value*; ConfigError naming *what* and the accepted forms otherwise.

    >>> parse_duration("1h30m"), parse_duration(90), parse_duration("2.5")
    (5400.0, 90.0, 2.5)
    """
    if isinstance(value, bool):
        raise ConfigError(f"the {what} must be a duration such as 30s, 15m, 2h or 1d, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.fullmatch(text):
                raise ConfigError(
                    f"the {what} {value!r} is not a duration: write 30s, 15m, 2h, 1d or a number of seconds"
                ) from None
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    else:
        raise ConfigError(f"the {what} must be a duration such as 30s, 15m, 2h or 1d, not {type(value).__name__}")
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(f"the {what} {value!r} must be a finite, non-negative number of seconds")
    return seconds


def format_duration(seconds: float | None) -> str:
    """A short human form: ``420ms``, ``4.2s``, ``3m05s``, ``2h10m``, ``3d4h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def parse_since(text: str) -> datetime | timedelta:
    """A moment as ``--since`` gives it: a duration ago, or an ISO time (UTC unless it has an offset).

    The duration is returned as it is, for the database to count back from
    its server's clock, the one runs and logs are stamped by (the reports'
    *since* takes either); a time is returned aware. ConfigError otherwise.

    >>> parse_since("1h30m"), parse_since("2026-11-24T03:00")
    (datetime.timedelta(seconds=5400), datetime.datetime(2026, 11, 24, 3, 0, tzinfo=datetime.timezone.utc))
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return timedelta(seconds=parse_duration(text))
        except ConfigError:
            raise ConfigError(f"{text!r} is neither a duration ago (30s, 15m, 2h, 1d, 1h30m or seconds) nor a time"
                              " (2026-11-24T03:00, UTC unless it has an offset)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
