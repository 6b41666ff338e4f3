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
"""

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..errors import SchemaError
from ..records import Pause
from .backend import id_list
from .schema import PAUSE_REVISION, describe
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

#: ``paused_until`` of a pause without an end: it lasts until ``resume``.
FOREVER = datetime(9999, 1, 1, tzinfo=timezone.utc)


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


def paused(database: "Database", job_id: int) -> Pause | None:
    """The job's pause while it lasts (by the server's clock), else None; None on a database before 2.9."""
    if not database.has_revision(PAUSE_REVISION):
        return None
    found = database.backend.select("SELECT paused_until, pause_reason, paused_by FROM process_jobs WHERE id = $id"
                                    " AND paused_until > $now", {"id": job_id, "now": db_time(database.clock.now())})
    return pause_of(*found[0]) if found else None


def pause_of(until: "str | datetime | None", reason: str | None, by: str | None) -> Pause | None:
    """The `Pause` of a job's stored columns; None when there is none (`paused` and the listings compare the
    time with the server's clock)."""
    if until is None:
        return None
    moment = py_time(until)
    return Pause(None if moment >= FOREVER else moment, reason, by)


def _needs_revision(database: "Database") -> None:
    if not database.has_revision(PAUSE_REVISION):
        raise SchemaError(f"{database.url} has schema {describe(database.schema_state or (0, 0))}; pausing a job"
                          f" needs {describe(PAUSE_REVISION)}: run `processcache db upgrade` (it keeps every row)")
