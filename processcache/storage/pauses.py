"""Pause and resume a job: its runs skip on every machine, and ``check`` leaves it alone, until then.

``processcache pause GROUP/JOB --for 2h --reason "schema migration"`` sets
``process_jobs.paused_until`` (the database server's clock plus the
duration; `FOREVER` without one, until ``resume``), ``pause_reason`` and
``paused_by`` (user@machine). A run of a paused job starts, finds the
pause, is recorded ``skipped`` with the reason and exits 75, on whichever
machine cron starts it; ``check`` judges nothing of a paused job (it is
neither overdue, missed nor failing while paused: someone said so) and
``jobs`` shows it paused. The pause ends by itself at ``paused_until`` and
``resume`` ends it now. ``alerts mute`` silences alerts and nothing else.

A maintenance window (``processcache window GROUP/JOB '0 2 * * sun' --for
2h``) is a pause that comes back: from each time its cron expression is
due (in its time zone), for its length, the job is paused as above; the
``jobs`` listing shows it while it lasts.
"""

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..durations import format_duration
from ..errors import SchemaError
from ..records import Pause
from .backend import id_list
from .schema import PAUSE_REVISION, describe
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

#: ``paused_until`` of a pause without an end: it lasts until ``resume``.
FOREVER = datetime(9999, 1, 1, tzinfo=timezone.utc)
#: A job's columns that say whether it is paused (`active`): its pause, then its maintenance window.
COLUMNS = ("paused_until, pause_reason, paused_by, window_schedule, window_timezone, window_seconds,"
           " window_reason")


def pause(database: "Database", job_ids: list[int], seconds: float | None, reason: str | None,
          by: str | None) -> datetime:
    """Pause the jobs *job_ids* for *seconds* (None: until resumed); return until when (the server's clock)."""
    _needs_revision(database)
    until = FOREVER if seconds is None else database.clock.now() + timedelta(seconds=seconds)
    database.backend.execute(f"UPDATE process_jobs SET paused_until = $until, pause_reason = $reason,"
                             f" paused_by = $by WHERE id IN ({id_list(job_ids)})",
                             {"until": db_time(until), "reason": reason, "by": by})
    return until


def resume(database: "Database", job_ids: list[int]) -> int:
    """End the pause of the jobs *job_ids* now; return how many were paused."""
    _needs_revision(database)
    return database.backend.execute(f"UPDATE process_jobs SET paused_until = NULL, pause_reason = NULL,"
                                    f" paused_by = NULL WHERE id IN ({id_list(job_ids)}) AND paused_until > $now",
                                    {"now": db_time(database.clock.now())})


def set_window(database: "Database", job_ids: list[int], schedule: str | None, timezone: str, seconds: float,
               reason: str | None) -> None:
    """Give the jobs *job_ids* a maintenance window: from each time *schedule* is due, for *seconds*, they are
    paused as by `pause`; None takes the window away."""
    _needs_revision(database)
    database.backend.execute(f"UPDATE process_jobs SET window_schedule = $schedule, window_timezone = $zone,"
                             f" window_seconds = $seconds, window_reason = $reason WHERE id IN ({id_list(job_ids)})",
                             {"schedule": schedule, "zone": timezone if schedule else None,
                              "seconds": seconds if schedule else None, "reason": reason if schedule else None})


def paused(database: "Database", job_id: int) -> Pause | None:
    """The job's pause or maintenance window while it lasts (by the server's clock), else None; None on a
    database before 2.9."""
    if not database.has_revision(PAUSE_REVISION):
        return None
    found = database.backend.select(f"SELECT {COLUMNS} FROM process_jobs WHERE id = $id", {"id": job_id})
    return active(found[0], database.clock.now()) if found else None


def active(columns: "tuple | list", now: datetime) -> Pause | None:
    """The pause that holds at *now* (the server's clock) from a job's `COLUMNS`: a pause until a later time,
    else a maintenance window it is in (until its end), else None."""
    until, reason, by, schedule, zone, seconds, window_reason = columns
    if until is not None:
        moment = py_time(until)
        if moment > now:
            return Pause(None if moment >= FOREVER else moment, reason, by)
    if schedule is None or not seconds:
        return None
    from ..schedules import last_due  # cronsim only for a job that has a window

    began = last_due(schedule, zone or "UTC", now)
    if began is None or now >= began + timedelta(seconds=seconds):
        return None
    return Pause(began + timedelta(seconds=seconds),
                 window_reason or f"maintenance window {schedule} ({zone or 'UTC'}), {format_duration(seconds)}", None)


def _needs_revision(database: "Database") -> None:
    if not database.has_revision(PAUSE_REVISION):
        raise SchemaError(f"{database.url} has schema {describe(database.schema_state or (0, 0))}; pausing a job"
                          f" needs {describe(PAUSE_REVISION)}: run `processcache db upgrade` (it keeps every row)")
