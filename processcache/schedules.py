"""Cron schedules: checked when a job is declared, and the times a job was due, in its time zone.

A schedule is a five-field cron expression (minute, hour, day of month,
month, day of week, as in a crontab), read in the job's time zone with its
daylight-saving changes: ``0 3 * * *`` in Europe/Berlin is due at 03:00
local time every day, 24 hours apart but for the two days a year the clocks
change. The expressions are evaluated by cronsim, healthchecks.io's own
evaluator (small, no dependencies, 6 ms to import, and the semantics of
the service many farms already watch their crons with); only jobs that
declare a schedule import it.
"""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import RegistryError

#: Each field's name and range, in a crontab's order.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec".split(), 4: "sun mon tue wed thu fri sat".split()}
_NUMBER = re.compile(r"\d+")


def check_schedule(expression: str | None, timezone: str) -> tuple[str | None, str]:
    """The schedule (white space made single) and time zone as stored; RegistryError in one line if either is wrong.

    >>> check_schedule(" 0  3 * * mon-fri ", "Europe/Berlin")
    ('0 3 * * mon-fri', 'Europe/Berlin')
    """
    zone(timezone)
    if expression is None:
        return None, timezone
    if not isinstance(expression, str):
        raise RegistryError(f"schedule={expression!r}: write a cron expression such as '0 3 * * *'")
    text = " ".join(expression.split())
    fields = text.split(" ")
    if len(fields) != len(_FIELDS):
        raise RegistryError(f"{expression!r}: a schedule has five fields (minute hour day-of-month month"
                            f" day-of-week), not {len(fields)}; e.g. '0 3 * * *' for 03:00 every day")
    for index, field in enumerate(fields):
        _check_field(text, index, field.lower())
    from cronsim import CronSim, CronSimError

    try:
        CronSim(text.lower(), _an_hour())
    except CronSimError as exc:
        raise RegistryError(f"{expression!r}: {str(exc).lower()}: see `man 5 crontab`") from None
    return text, timezone


def zone(name: str) -> ZoneInfo:
    """The time zone *name*; RegistryError in one line for one the IANA database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise RegistryError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") from None


def _check_field(text: str, index: int, field: str) -> None:
    """Refuse a number out of its field's range, naming field and range ('hour 25 is out of range 0-23')."""
    name, low, high = _FIELDS[index]
    for word in re.findall(r"[a-z]+", field):
        if word not in _NAMES.get(index, ()):
            raise RegistryError(f"{text!r}: {word!r} is not a {name}")
    for part in field.split(","):
        values = part.split("/")
        numbers = [int(number) for number in _NUMBER.findall(values[0])]
        for number in numbers:
            if not low <= number <= high:
                raise RegistryError(f"{text!r}: {name} {number} is out of range {low}-{high}")


def _an_hour() -> "datetime":
    return datetime(2026, 1, 1, tzinfo=UTC)
