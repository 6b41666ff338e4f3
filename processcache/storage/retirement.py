"""Retire, restore and delete a job: for a job taken out of the crontab.

A job removed from the crontab would stay ``overdue`` in ``check`` until its
runs aged out. So would a machine taken out of a job locked per machine
(``lock="machine"``: each machine that runs it is expected to go on):
retired from the job (`retire_machine`), it leaves the job's judgement
and its machines, until a run of the job starts on it again. Retired, it keeps its runs, logs and cache but leaves
``check`` and ``jobs`` (``jobs --all`` lists it, marked). It stays retired
until a run of it starts: cron still running it means it is not retired, so
that run brings it back by itself, with nothing added to the run's path
(`history.still_retired` compares the job's ``retired_at`` with its newest
run's start, both by the database server's clock).

Deleting removes a job for good: its logs, runs and cache entries in
batches (as `prune` deletes), then its row. It is refused while a run of it
is alive: that run would go on writing under a job that is gone. Its locks
are free then, and their rows stay, empty: a process remembers the lock
rows it has made (`RunStore`), and would find the lock taken for good if
its row went. The group's row stays too, as another job of the group may be
getting created at that moment. A process that ran the job before it was
deleted still knows its old id; a new process, or the Database that deleted
it, records the job anew.
"""

from collections.abc import Callable
from datetime import datetime

from ..errors import ProcessCacheError, SchemaError
from ..names import check_machine
from .backend import ConstraintViolation
from .history import TABLES, History, still_retired
from .schema import JUDGEMENT_REVISION, MONITORING_REVISION, RUN_CONTROL_REVISION, describe
from .texts import same_text
from .timeutil import db_time, py_time


def retire(history: History, name: str) -> datetime:
    """Retire the job *name* (``group/job``) now; return when, by the database server's clock."""
    job_id = history.job_id(name)
    moment = history.database.clock.now()
    _set_retired_at(history, job_id, db_time(moment))
    return moment


def restore(history: History, name: str) -> bool:
    """Undo `retire`; False when the job was not retired (never, restored already, or run since)."""
    job_id = history.job_id(name)
    retired_at, last_started = history.backend.select(
        "SELECT j.retired_at, (SELECT MAX(r.started_at) FROM process_job_runs r WHERE r.job_id = j.id)"
        " FROM process_jobs j WHERE j.id = $id", {"id": job_id})[0]
    _set_retired_at(history, job_id, None)
    return still_retired(py_time(retired_at), py_time(last_started)) is not None


def retire_machine(history: History, name: str, machine: str) -> datetime:
    """Retire *machine* from the job *name* (``group/job``) now; return when, by the database server's clock.

    A machine that never ran the job is a ProcessCacheError naming those that did.
    """
    job_id, machine = _machine_of(history, name, machine)
    moment = history.database.clock.now()
    params = {"job_id": job_id, "machine": machine, "retired_at": db_time(moment)}
    with history.backend.transaction():
        if not history.backend.execute("UPDATE process_job_machines SET retired_at = $retired_at"
                                       f" WHERE job_id = $job_id AND {same_text('machine', '$machine')}", params):
            history.backend.insert("process_job_machines", params)
    return moment


def restore_machine(history: History, name: str, machine: str) -> bool:
    """Undo `retire_machine`; False when the machine was not retired from the job (never, restored, run since)."""
    job_id, machine = _machine_of(history, name, machine)
    params = {"job_id": job_id, "machine": machine}
    found = history.backend.select(
        "SELECT m.retired_at, (SELECT MAX(r.started_at) FROM process_job_runs r WHERE r.job_id = m.job_id"
        f" AND {same_text('r.machine', 'm.machine')}) FROM process_job_machines m WHERE m.job_id = $job_id"
        f" AND {same_text('m.machine', '$machine')}",
        params)
    history.backend.execute("DELETE FROM process_job_machines WHERE job_id = $job_id"
                            f" AND {same_text('machine', '$machine')}", params)
    return bool(found) and still_retired(py_time(found[0][0]), py_time(found[0][1])) is not None


def _machine_of(history: History, name: str, machine: str) -> tuple[int, str]:
    """The job's id and the machine's name as stored, for a machine that ran the job."""
    database = history.database
    if not database.has_revision(JUDGEMENT_REVISION):
        raise SchemaError(f"retiring a machine from a job needs schema {describe(JUDGEMENT_REVISION)}, which"
                          f" {database.url} has not: run `processcache db upgrade`")
    job_id, machine = history.job_id(name), check_machine(machine)
    ran = [row[0] for row in history.backend.select("SELECT DISTINCT machine, LENGTH(machine) FROM process_job_runs"
                                                    " WHERE job_id = $job_id", {"job_id": job_id})]
    if machine not in ran:
        raise ProcessCacheError(f"{machine} never ran {name}: its machines are {', '.join(sorted(ran)) or 'none'}")
    return job_id, machine


def _set_retired_at(history: History, job_id: int, stamp: str | None) -> None:
    history.backend.execute("UPDATE process_jobs SET retired_at = $stamp WHERE id = $id",
                            {"stamp": stamp, "id": job_id})


def delete(history: History, name: str, dry_run: bool = False,
           progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Delete the job *name* with its logs, runs and cache entries; return how many of each went.

    *dry_run* only counts. *progress* is called with ("logs", "runs" or
    "entries", rows deleted) after every batch. A live run of the job is a
    ProcessCacheError, with *dry_run* too, so a caller learns it before asking.
    """
    job_id = history.job_id(name)
    running = history.list_runs(name, status="running", limit=1)
    if running:
        run = running[0]
        raise ProcessCacheError(f"run {run.id} of {name} is running on {run.machine} (pid {run.pid}): delete the job"
                                " once it has ended, after taking it out of every crontab")
    params = {"job_id": job_id}
    counts = {table: history.delete_rows(table, f"FROM {TABLES[table]} r WHERE r.job_id = $job_id", params,
                                         dry_run, progress)
              for table in ("logs", "runs", "entries")}
    if not dry_run:
        _delete_job_row(history, job_id, name)
    return counts


def _delete_job_row(history: History, job_id: int, name: str) -> None:
    """The job's row, unless a run started meanwhile: its rows refer to the job, and keep it."""
    try:
        history.backend.execute("DELETE FROM process_jobs WHERE id = $id", {"id": job_id})
    except ConstraintViolation:
        raise ProcessCacheError(f"a run of {name} started while it was being deleted, so its new rows are kept:"
                                " take it out of every crontab, then delete it again") from None
    history.database.store.forget_job(job_id)
    database = history.database
    if database.has_revision(RUN_CONTROL_REVISION):
        history.backend.execute("DELETE FROM process_job_slots WHERE job_id = $id", {"id": job_id})
    if database.has_revision(MONITORING_REVISION):
        database.alerts.forget_jobs([job_id])
    if database.has_revision(JUDGEMENT_REVISION):
        history.backend.execute("DELETE FROM process_job_machines WHERE job_id = $id", {"id": job_id})
