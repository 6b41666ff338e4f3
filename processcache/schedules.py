"""Cron schedules: checked when a job is declared, and the times a job was due, in its time zone.

A schedule is a five-field cron expression (minute, hour, day of month,
month, day of week, as in a crontab), read in the job's time zone with its
daylight-saving changes: ``0 3 * * *`` in Europe/Berlin is due at 03:00
local time every day, 24 hours apart but for the two days a year the clocks
change. The expressions are evaluated by cronsim, healthchecks.io's own
evaluator (small, no dependencies, 6 ms to import, and the semantics of
the service many farms already watch their crons with); only jobs that
declare a schedule import it.

Daylight-saving changes, as Debian's cron and healthchecks.io read them:

- A schedule whose minute and hour fields are both given (``30 2 * * *``,
  ``0 9-17 * * *``; neither starts with ``*``) names times on the wall
  clock. A time the clocks skip (02:30 in Europe/Berlin on 2026-03-29,
  when 02:00 becomes 03:00) is due at the first moment after the jump
  (03:00 CEST, 01:00 UTC), once however many of its times were skipped. A
  time that happens twice (02:30 on 2026-10-25, when 03:00 becomes 02:00)
  is due once, the first time (02:30 CEST, 00:30 UTC).
- Any other schedule (``*/15 * * * *``, ``30 * * * *``) counts real time
  and is due whenever the wall clock shows a matching time: twice in the
  hour that happens twice, never in the hour that is skipped.

Every time here is an aware datetime; the functions return them in UTC.

Spread start times (Jenkins' ``H``): in a field, ``H`` is one value of the
field's range derived from the job's name (``group/job``), the same on
every machine and every release: ``H 3 * * *`` is 03:17 for one job and
03:42 for another, so 300 nightly jobs do not all start at 03:00.
``H(0-29)`` takes the value from a range, ``H/15`` every 15 from an offset
derived the same way (``7-59/15``), ``H(0-29)/10`` both. The day of month's
``H`` is 1-28, so it is due every month. A run resolves its job's
schedule (`spread`), and stores the result: ``check``, the report and the
metrics know each job's real due time; ``processcache schedule GROUP/JOB
'H 3 * * *'`` prints it, for the crontab line.
"""

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import RegistryError

#: Each field's name and range, in a crontab's order.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec".split(), 4: "sun mon tue wed thu fri sat".split()}
_NUMBER = re.compile(r"\d+")
#: A spread part of a field: ``H``, ``H(low-high)``, each with an optional ``/step``.
_SPREAD = re.compile(r"h(?:\((\d+)-(\d+)\))?(?:/(\d+))?")
#: The range ``H`` takes a value from, where it is narrower than the field's: a day every month has, a day
#: of the week counted once (0 and 7 are both Sunday).
_SPREAD_RANGE = {2: (1, 28), 4: (0, 6)}


def spread(expression: str, job: str) -> str:
    """*expression* with each ``H`` made the value *job* (``group/job``) gets; see the module docstring.

    >>> spread("H 3 * * *", "ops/backup") == spread("H 3 * * *", "ops/backup")
    True
    >>> spread("0 3 * * mon-fri", "ops/backup")
    '0 3 * * mon-fri'
    """
    fields = " ".join(expression.split()).split(" ")
    if len(fields) != len(_FIELDS):
        return expression  # check_schedule says what is wrong with it
    return " ".join(",".join(_spread_part(part, index, job) for part in field.split(","))
                    for index, field in enumerate(fields))


def _spread_part(part: str, index: int, job: str) -> str:
    found = _SPREAD.fullmatch(part.lower())
    if found is None:
        return part
    name, low, high = _FIELDS[index]
    low, high = _SPREAD_RANGE.get(index, (low, high))
    if found[1] is not None:
        given = (int(found[1]), int(found[2]))
        if not low <= given[0] <= given[1] <= high:
            raise RegistryError(f"{part!r}: the {name}s of H(low-high) run from {low} to {high}, low first")
        low, high = given
    step = int(found[3]) if found[3] is not None else None
    if step == 0:
        raise RegistryError(f"{part!r}: a step of 0 never repeats: write H/15 for every 15 {name}s")
    digest = int.from_bytes(hashlib.sha256(f"{job}\0{index}".encode()).digest()[:8], "big")
    if step is None:
        return str(low + digest % (high - low + 1))
    return f"{low + digest % min(step, high - low + 1)}-{high}/{step}"


def spreads(expression: str | None) -> bool:
    """Whether *expression* has an ``H`` to resolve for each job (`spread`)."""
    return expression is not None and any(_SPREAD.fullmatch(part) for field in expression.lower().split()
                                          for part in field.split(","))


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
    for index, field in enumerate(spread(text, "").split(" ")):  # an H checked as the value it resolves to
        _check_field(text, index, field.lower())
    from cronsim import CronSim, CronSimError

    try:
        CronSim(spread(text, "").lower(), _an_hour())
    except CronSimError as exc:
        raise RegistryError(f"{expression!r}: {str(exc).lower()}: see `man 5 crontab`") from None
    return text, timezone


def zone(name: str) -> tzinfo:
    """The time zone *name*; RegistryError in one line for one the IANA database does not know.

    UTC is datetime's own: it needs no time zone database, and cronsim
    walks it without daylight-saving checks, faster.
    """
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        if not available_timezones():  # a slim container, or Windows without the package
            raise RegistryError(f"unknown time zone {name!r}: this machine has no time zone database;"
                                " install one (pip install tzdata)") from None
        raise RegistryError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") from None


def last_due(schedule: str, timezone: str, moment: datetime) -> datetime | None:
    """The last time *schedule* was due at or before *moment*, in UTC; None if it never was (in 50 years).

    >>> last_due("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 29, 12, tzinfo=UTC))  # 02:30 was skipped
    datetime.datetime(2026, 3, 29, 1, 0, tzinfo=datetime.timezone.utc)
    """
    due = _walk_back(schedule, timezone, moment)
    later = due and _walk_on(schedule, timezone, due)
    while due is not None and later is not None and later <= moment:  # one cronsim's walk back stepped over
        due, later = later, _walk_on(schedule, timezone, later)
    return due


def next_due(schedule: str, timezone: str, moment: datetime) -> datetime | None:
    """The first time *schedule* is due after *moment*, in UTC; None if it never is (in 50 years).

    >>> next_due("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC))  # the first 02:30
    datetime.datetime(2026, 10, 25, 0, 30, tzinfo=datetime.timezone.utc)
    """
    due = _walk_on(schedule, timezone, moment)
    earlier = due and _walk_back(schedule, timezone, due - _JUST_BEFORE)
    while due is not None and earlier is not None and earlier > moment:  # one cronsim's walk on stepped over
        due, earlier = earlier, _walk_back(schedule, timezone, earlier - _JUST_BEFORE)
    return due


def recent_due(schedule: str, timezone: str, moment: datetime, count: int = 5) -> list[datetime]:
    """The *count* last times *schedule* was due at or before *moment*, newest first, in UTC."""
    found: list[datetime] = []
    due = last_due(schedule, timezone, moment)
    while due is not None and len(found) < count:
        found.append(due)
        due = previous_due(schedule, timezone, due)
    return found


#: A run that starts up to this many seconds (at most a tenth of the time since the due time before) before
#: a due time answers it: cron on a machine whose clock is ahead fires a little early (as session.SLOT_EARLY).
EARLY = 30.0


def early_allowance(due: datetime, previous: datetime | None) -> float:
    """How many seconds before *due* a run may start and still answer it, *previous* being the due time before.

    Never more than a tenth of the time between them, so that a run a
    little late for *previous* is not taken for one early for *due*.
    """
    return EARLY if previous is None else min(EARLY, (due - previous).total_seconds() / 10)


def current_slot(schedule: str, timezone: str, now: datetime) -> datetime | None:
    """The due time a run starting at *now* answers: the last one, or the next one if it is only `early_allowance` away.

    A machine whose clock runs ahead fires cron's 03:00 at 02:59:50 by the
    database server's: that run is 03:00's. None before the schedule's
    first due time (in the last 50 years).
    """
    opened, following = last_due(schedule, timezone, now), next_due(schedule, timezone, now)
    if following is not None and (following - now).total_seconds() <= early_allowance(following, opened):
        return following
    return opened


def previous_due(schedule: str, timezone: str, due: datetime) -> datetime | None:
    """The due time before *due*, in UTC."""
    return last_due(schedule, timezone, due - _JUST_BEFORE)


def local_time(moment: datetime, timezone: str, date: bool = True) -> str:
    """*moment* on the wall clock of *timezone*, as check shows it: ``2026-11-26 03:00``, seconds only if any."""
    local = moment.astimezone(zone(timezone))
    shown = "%Y-%m-%d %H:%M" if date else "%H:%M"
    return local.strftime(shown + (":%S" if local.second or local.microsecond else ""))


#: Less than any step of a schedule: the moment just before a due time.
_JUST_BEFORE = timedelta(microseconds=1)
#: Longer than any hour a time zone repeats (Antarctica/Casey's clocks went back 3 hours).
_LONGEST_FOLD = timedelta(days=1)


def _walk_on(schedule: str, timezone: str, moment: datetime) -> datetime | None:
    """cronsim's first due time after *moment*.

    From the wall time of a moment in a repeated hour, cronsim may first
    give a time of the hour's first pass, which is before it: skipped. In a
    zone whose clocks change by 30 minutes (Australia/Lord_Howe), its walk on
    a real-time schedule (``0 */6 * * *``) steps over a due time or two after
    the change, which its walk back finds: `next_due` asks both.
    """
    for due in _due_times(schedule, timezone, moment, reverse=False):
        if due > moment:
            return due
    return None


def _walk_back(schedule: str, timezone: str, moment: datetime) -> datetime | None:
    """cronsim's last due time at or before *moment*, which `last_due` checks by walking on from it."""
    for due in _due_times(schedule, timezone, _reverse_start(timezone, moment), reverse=True):
        if due <= moment:
            return due
    return None


def _due_times(schedule: str, timezone: str, start: datetime, reverse: bool) -> Iterator[datetime]:
    """cronsim's due times from *start* on (or back), in UTC: those of a wall-clock schedule in wall-clock order."""
    from cronsim import CronSim

    for due in CronSim(schedule, start.astimezone(zone(timezone)), reverse=reverse):
        yield due.astimezone(UTC)


def _reverse_start(timezone: str, moment: datetime) -> datetime:
    """Where to walk back from to meet every due time at or before *moment*, the whole second after it included.

    A wall-clock schedule is walked in wall-clock time. In the day after the
    clocks went back, a due time of the repeated hour's first pass (02:30
    CEST) is at or before a moment of its second pass (02:15 CET) but later
    on the wall: start from the wall time the clock would show without the
    change. `last_due` drops the due times after *moment* this meets.
    """
    ahead = max(_offset(timezone, moment - _LONGEST_FOLD) - _offset(timezone, moment), timedelta(0))
    return (moment + ahead).replace(microsecond=0) + timedelta(seconds=1)


def _offset(timezone: str, moment: datetime) -> timedelta:
    return moment.astimezone(zone(timezone)).utcoffset() or timedelta(0)




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
