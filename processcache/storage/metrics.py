"""The SQL behind `processcache metrics`: every job's state on every machine, in five queries.

Prometheus scrapes every 15 to 60 seconds, and a farm's ledger holds
thousands of jobs and millions of runs, so a scrape runs a fixed number of
queries whatever it holds, never one per job: the database server's clock,
the jobs, the runs per job and machine (one pass over the runs, then the
few runs shown, by their ids), the live cache entries, and the held locks.
All in one read transaction, judged by the server's clock read once at
its start, as leases and expiry are.

Failures since the last success are counted in the same pass with a
window function (SQLite 3.25, PostgreSQL, MariaDB 10.2, MySQL 8): joining
the runs to each machine's last success instead took MariaDB 13 s on
10,000 runs, which matched them row by row on the machine's name.
"""

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from ..timeutil import py_time
from .reports import FAILED, still_retired
from .schema import JOB_STATE_REVISION
from .store import JOBS_FROM

if TYPE_CHECKING:
    from .database import Database

_FAILED = ", ".join(f"'{status}'" for status in FAILED)
#: Per job and machine (``g``): its latest start (has a retired job run since?), its runs alive now, its
#: runs that failed since its last success (``w.ok``; a running run past its lease is lost: a failure too),
#: and the runs whose records say the rest: ``a`` the newest run not skipped (the newest of all when every
#: one was), ``e`` the newest that ended and was not skipped, ``s`` the newest succeeded.
_MACHINES = (
    "SELECT g.job_id, g.machine, g.started, g.running, g.failures, a.status, a.expires_at, e.duration,"
    " s.finished_at FROM (SELECT w.job_id, w.machine, MAX(w.started_at) AS started,"
    " SUM(CASE WHEN w.status = 'running' AND (w.expires_at IS NULL OR w.expires_at >= $now) THEN 1 ELSE 0 END)"
    " AS running,"
    f" SUM(CASE WHEN (w.ok IS NULL OR w.id > w.ok) AND (w.status IN ({_FAILED})"
    " OR (w.status = 'running' AND w.expires_at < $now)) THEN 1 ELSE 0 END) AS failures,"
    " COALESCE(MAX(CASE WHEN w.status <> 'skipped' THEN w.id END), MAX(w.id)) AS shown,"
    " MAX(CASE WHEN w.status <> 'skipped' AND w.finished_at IS NOT NULL THEN w.id END) AS ended,"
    " MAX(w.ok) AS succeeded"
    " FROM (SELECT job_id, machine, id, status, started_at, finished_at, expires_at,"
    " MAX(CASE WHEN status = 'succeeded' THEN id END) OVER (PARTITION BY job_id, machine) AS ok"
    " FROM process_job_runs) w GROUP BY w.job_id, w.machine) g"
    " JOIN process_job_runs a ON a.id = g.shown LEFT JOIN process_job_runs e ON e.id = g.ended"
    " LEFT JOIN process_job_runs s ON s.id = g.succeeded")
_ENTRIES = ("SELECT job_id, machine, COUNT(*) FROM process_cache WHERE expires_at IS NULL OR expires_at > $now"
            " GROUP BY job_id, machine")
#: A held lock's holder is a run (its run id; a memoised call's random 62-bit owner matches no run's id),
#: which names the job and the machine; a digest-form lock name could not be read back into either.
_HELD_LOCKS = ("SELECT r.job_id, r.machine FROM process_job_locks l JOIN process_job_runs r ON r.id = l.run_id"
               " WHERE l.expires_at > $now")


class MachineState(NamedTuple):
    """One job on one machine as the metrics show it: the machines it ran on, wrote entries from, or locks on.

    *last_status* is that of the newest run that did the work (``lost``
    for a running run whose heartbeat stopped), ``skipped`` when every run
    there was skipped, None for a machine with entries and no run.
    *last_duration* is the newest ended run's, *last_success* the end of
    the newest succeeded run (None: never). *failures* counts the failed,
    timed-out, lost and terminated runs since that success.
    """

    group: str
    job: str
    machine: str
    last_status: str | None = None
    last_duration: float | None = None
    last_success: datetime | None = None
    running: int = 0
    failures: int = 0
    entries: int = 0
    lock_held: bool = False


class Ledger(NamedTuple):
    """The jobs that are not retired, as (group, job), and their `MachineState` rows."""

    jobs: list[tuple[str, str]]
    machines: list[MachineState]


def read_ledger(database: "Database") -> Ledger:
    """Every job that is not retired, and its state per machine (see the module docstring)."""
    backend = database.backend
    retired_at = "j.retired_at" if database.has_revision(JOB_STATE_REVISION) else "NULL"

    def read() -> tuple[float, list[list[tuple]]]:
        with backend.transaction():
            now = backend.now()
            return now, [backend.select(sql, {"now": now}) for sql in (
                f"SELECT j.id, p.name, j.name, {retired_at} {JOBS_FROM}", _MACHINES, _ENTRIES, _HELD_LOCKS)]

    now, (jobs, machines, entries, locks) = backend.retrying(read)
    states: dict[tuple[int, str], dict] = {}
    last_started: dict[int, datetime] = {}
    for job_id, machine, started, running, failures, status, expires_at, duration, succeeded in machines:
        if status == "running" and expires_at is not None and float(expires_at) < now:
            status = "lost"  # its heartbeat stopped: the process died without a word, as `runs` says
        states[(job_id, machine)] = {
            "last_status": status, "last_duration": None if duration is None else float(duration),
            "last_success": py_time(succeeded), "running": int(running), "failures": int(failures)}
        started = py_time(started)
        last_started[job_id] = max(started, last_started.get(job_id, started))
    for job_id, machine, count in entries:
        states.setdefault((job_id, machine), {})["entries"] = int(count)
    for job_id, machine in locks:
        states.setdefault((job_id, machine), {})["lock_held"] = True
    names = {job_id: (group, job) for job_id, group, job, retired in jobs
             if still_retired(py_time(retired), last_started.get(job_id)) is None}
    return Ledger(list(names.values()), [MachineState(*names[job_id], machine, **fields)
                                         for (job_id, machine), fields in states.items() if job_id in names])
