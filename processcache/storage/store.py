"""Groups, jobs and logs: their reads and writes, each in its own short transaction.

No transaction is held across a run: on SQLite that would lock out every
other process. Rows are read in bulk with plain SQL through the `Backend`,
never as one ORM object per row, and come back as the immutable records of
`records.py`. Writes are committed when the method returns. The cache
entries have `cache.py`; runs and locks `runs.py`.
"""

from datetime import datetime
from typing import TYPE_CHECKING

from ..names import normalize
from ..records import OUTPUT_LEVELS, GroupRecord, JobRecord, LogRecord, LogType
from .backend import Backend, id_list
from .texts import same_text, storable
from .timeutil import db_time, py_time, utcnow

if TYPE_CHECKING:
    from .database import Database

_LOG_COLUMNS = "id, log_type, message, machine, created_at, run_id, level, job_id"
_INSERT_LOG = ("INSERT INTO process_job_logs (job_id, run_id, machine, log_type, level, message, created_at)"
               " VALUES ($job_id, $run_id, $machine, $log_type, $level, $message, $created_at)")
_FIND_LOG = (f"SELECT MAX(id) FROM process_job_logs WHERE job_id = $job_id AND {same_text('machine', '$machine')}"
             " AND created_at = $created_at AND log_type = $log_type")
#: A job's (``j``) group, ``p``: its name is the group's name.
GROUP_OF_JOB = "JOIN processes p ON p.id = j.process_id"
#: Jobs with their groups.
JOBS_FROM = f"FROM process_jobs j {GROUP_OF_JOB}"


class Store:
    """Groups, jobs and logs of one database; see the module docstring."""

    def __init__(self, database: "Database") -> None:
        self.backend: Backend = database.backend
        self.clock = database.clock
        self._job_ids: dict[tuple[str, str], int] = {}
        self._job_names: dict[int, tuple[str, str]] = {}

    # -- groups and jobs ------------------------------------------------------

    def job_id(self, group: str, job: str) -> int:
        """Return the id of the (normalised) group/job, creating the rows if needed.

        Processes starting a never-seen job together race to create the rows:
        the loser's insert violates the unique key and it reads the winner's.
        """
        cached = self._job_ids.get((group, job))
        if cached is None:
            stamp = db_time(utcnow())
            group_id = self.backend.insert_unique("processes", {"name": group}, {"created_at": stamp})
            cached = self.backend.insert_unique("process_jobs", {"process_id": group_id, "name": job},
                                                {"created_at": stamp})
            self._job_ids[(group, job)] = cached
            self._job_names[cached] = (job, group)
        return cached

    def find_group(self, group: str) -> GroupRecord | None:
        """The group *group* (normalised), or None: never created here (the original's ``getProcess``)."""
        rows = self.backend.select("SELECT id, name, created_at FROM processes WHERE name = $name",
                                   {"name": normalize(group)})
        return GroupRecord(rows[0][0], rows[0][1], py_time(rows[0][2])) if rows else None

    def find_job(self, group: str, job: str) -> JobRecord | None:
        """The job *group*/*job* (normalised), or None: never created here (the original's ``getJob``)."""
        rows = self.backend.select(f"SELECT j.id, p.name, j.name, j.created_at {JOBS_FROM}"
                                   " WHERE p.name = $group AND j.name = $job",
                                   {"group": normalize(group), "job": normalize(job)})
        return JobRecord(rows[0][0], rows[0][1], rows[0][2], py_time(rows[0][3])) if rows else None

    def forget_job(self, job_id: int) -> None:
        """Drop a deleted job from this store's memory, so a later run of its name creates it anew."""
        self._job_names.pop(job_id, None)
        self._job_ids = {names: known for names, known in self._job_ids.items() if known != job_id}

    def group_job_ids(self, group: str) -> list[int]:
        """Ids of every job of *group* (for logs across a whole group)."""
        return self.backend.values(f"SELECT j.id {JOBS_FROM} WHERE p.name = $group ORDER BY j.id", {"group": group})

    # -- logs -------------------------------------------------------------------

    def add_log(self, job_id: int, machine: str, log_type: LogType, message: str,
                run_id: int | None = None, level: str | None = None, created_at: datetime | None = None) -> LogRecord:
        """Append one log line (written at *created_at*, default now), committed on return."""
        created_at = created_at or self.clock.now()
        text = storable(message) or ""
        params = {"job_id": job_id, "run_id": run_id, "machine": machine, "log_type": log_type.value,
                  "level": level, "message": text, "created_at": db_time(created_at)}
        log_id = self.backend.write(_INSERT_LOG, params, find=(_FIND_LOG, params))
        return LogRecord(log_id, log_type, text, machine, created_at, run_id, level, *self._job_names[job_id])

    def logs(self, job_ids: list[int] | None = None, machine: str | None = None,
             log_type: LogType | None = None, offset: int = 0, limit: int | None = None, *,
             run_id: int | None = None, since: datetime | None = None, after_id: int | None = None,
             newest: bool = False, output: bool = True) -> list[LogRecord]:
        """Logs, oldest first, filtered and paged as asked; *job_ids* None means every job.

        ``newest=True`` pages from the newest end (the last *limit* logs),
        still returned oldest first. ``output=False`` leaves out what runs
        printed (`OUTPUT_LEVELS`), before the page is cut.
        """
        if job_ids is not None and not job_ids:
            return []
        where, params = _log_filter(job_ids, machine, log_type, run_id, since, after_id)
        if not output:
            where += f" AND (level IS NULL OR level NOT IN ({', '.join(map(repr, OUTPUT_LEVELS))}))"
        order = " DESC" if newest else ""
        sql = f"SELECT {_LOG_COLUMNS} FROM process_job_logs WHERE {where} ORDER BY id{order}{_page(offset, limit)}"

        def read() -> tuple[list[tuple], dict[int, tuple[str, str]]]:
            with self.backend.transaction():
                found = self.backend.select(sql, params)
                return found, self.names_of({row[7] for row in found})

        rows, names = self.backend.retrying(read)
        records = [
            LogRecord(r[0], LogType(r[1]), r[2], r[3], py_time(r[4]), r[5], r[6], *names[r[7]])
            for r in rows
        ]
        return records[::-1] if newest else records

    def count_logs(self, job_ids: list[int] | None = None, machine: str | None = None,
                   log_type: LogType | None = None, *, run_id: int | None = None, since: datetime | None = None,
                   after_id: int | None = None, at_most: int | None = None) -> int:
        """How many logs `logs` with the same filters finds without a limit (no more than *at_most*, a count
        that reads only that many): what a page leaves out."""
        if job_ids is not None and not job_ids:
            return 0
        where, params = _log_filter(job_ids, machine, log_type, run_id, since, after_id)
        if at_most is None:
            return int(self.backend.value(f"SELECT COUNT(*) FROM process_job_logs WHERE {where}", params))
        return int(self.backend.value(f"SELECT COUNT(*) FROM (SELECT id FROM process_job_logs WHERE {where}"
                                      f" LIMIT {int(at_most)}) counted", params))

    def names_of(self, job_ids: set[int]) -> dict[int, tuple[str, str]]:
        """(job, group) by job id, for rows read without joining their names (one query for the ids not known)."""
        missing = [job_id for job_id in job_ids if job_id not in self._job_names]
        if missing:
            for job_id, job, group in self.backend.select(f"SELECT j.id, j.name, p.name {JOBS_FROM}"
                                                          f" WHERE j.id IN ({id_list(missing)})"):
                self._job_names[job_id] = (job, group)
        return self._job_names


def _log_filter(job_ids: list[int] | None, machine: str | None, log_type: LogType | None, run_id: int | None,
                since: datetime | None, after_id: int | None) -> tuple[str, dict]:
    """The WHERE clause and parameters of `Store.logs` and `Store.count_logs`."""
    params = {"machine": machine, "log_type": log_type and log_type.value, "run_id": run_id,
              "since": since and db_time(since), "after_id": after_id}
    clauses = ["1 = 1"]
    if job_ids is not None:
        clauses.append(f"job_id IN ({id_list(job_ids)})")
    if machine is not None:
        clauses.append(same_text("machine", "$machine"))
    for name in ("log_type", "run_id"):
        if params[name] is not None:
            clauses.append(f"{name} = ${name}")
    if since is not None:
        clauses.append("created_at >= $since")
    if after_id is not None:
        clauses.append("id > $after_id")
    return " AND ".join(clauses), params


def _page(offset: int, limit: int | None) -> str:
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("offset and limit must not be negative")
    if limit is None:
        # SQLite and MySQL need a LIMIT before an OFFSET; this is "no limit".
        return f" LIMIT {2**62} OFFSET {int(offset)}" if offset else ""
    return f" LIMIT {int(limit)} OFFSET {int(offset)}"
