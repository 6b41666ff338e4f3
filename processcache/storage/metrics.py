"""The SQL behind `processcache metrics`: every job's state on every machine, in a fixed number of queries.

Prometheus scrapes every 15 to 60 seconds, and a farm's ledger holds
thousands of jobs and millions of runs, so a scrape runs a fixed number of
queries whatever it holds, never one per job: the database server's clock,
the jobs, the runs alive now, the live cache entries, the held locks, and
each job and machine's newest runs (`queries.last_runs`, then those runs by
id, then the runs since the last success of the machines whose newest run
failed: one query per `PAIRS_PER_READ` of them). All in one read transaction that
sees one moment (`Backend.snapshot`), judged by the server's clock read once at its
start, as leases and expiry are.

A machine's state is read from the newest end of its runs, through the
(job, machine, id, status) index of schema revision 6: a few index probes
per machine of each job, however many runs the ledger keeps. A window
over every run took 2.6 s at 200,000 runs on PostgreSQL.
"""

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from ..records import FAILED
from .history import still_retired
from .queries import (
    LAST_START,
    PAIRS_PER_READ,
    RUNNING_NOW,
    SUCCEEDED,
    last_runs,
    plain_plans,
    runs_after,
    select_by_ids,
)
from .runs import status_at
from .schema import JOB_STATE_REVISION
from .store import JOBS_FROM
from .timeutil import py_time

if TYPE_CHECKING:
    from .database import Database

_RUN_COLUMNS = "r.id, r.job_id, r.machine, r.status, r.expires_at, r.finished_at, r.duration"
#: Live entries per job and machine; grouped by ``job_id + 0``: by job_id, MariaDB walked an index of the cache and
#: read each entry's row from there to test its expiry (0.05 s for 100,000 entries; so, 0.023 s).
_ENTRIES = ("SELECT job_id + 0, machine, COUNT(*) FROM process_cache WHERE expires_at IS NULL OR expires_at > $now"
            " GROUP BY job_id + 0, machine, LENGTH(machine)")
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

    def read() -> tuple[float, list[tuple], dict[tuple[int, str], list[tuple]], list[tuple], list[tuple], list[tuple]]:
        with backend.snapshot():
            plain_plans(backend)
            now = backend.now()
            jobs, running, entries, locks = (backend.select(sql, {"now": now}) for sql in (
                f"SELECT j.id, p.name, j.name, {retired_at}, {LAST_START} {JOBS_FROM}", RUNNING_NOW, _ENTRIES,
                _HELD_LOCKS))
            return now, jobs, _machine_runs(backend), running, entries, locks

    now, jobs, machines, running, entries, locks = backend.retrying(read)
    states = {pair: _state(runs, now) for pair, runs in machines.items()}
    for job_id, machine, count in running:
        states.setdefault((job_id, machine), {})["running"] = int(count)
    for job_id, machine, count in entries:
        states.setdefault((int(job_id), machine), {})["entries"] = int(count)
    for job_id, machine in locks:
        states.setdefault((job_id, machine), {})["lock_held"] = True
    names = {job_id: (group, job) for job_id, group, job, retired, started in jobs
             if still_retired(py_time(retired), py_time(started)) is None}
    return Ledger(list(names.values()), [MachineState(*names[job_id], machine, **fields)
                                         for (job_id, machine), fields in states.items() if job_id in names])


def _machine_runs(backend) -> dict[tuple[int, str], list[tuple]]:
    """Per job and machine, newest first: the run to show and its newest success, and when the one shown
    neither succeeded nor was skipped, every run since that success that was not skipped (the failures
    to count, and the newest that ended). Rows of `_RUN_COLUMNS`."""
    pairs = backend.select(last_runs(backend, SUCCEEDED))
    rows = {row[0]: row for row in select_by_ids(backend, f"SELECT {_RUN_COLUMNS} FROM process_job_runs r"
                                                 " WHERE r.id IN ({ids})",
                                                 (run_id for row in pairs for run_id in row[2:] if run_id))}
    failing = [(job_id, machine, ok) for job_id, machine, shown, ok in pairs
               if rows[shown][3] not in ("succeeded", "skipped")]
    since: dict[tuple[int, str], list[tuple]] = {}
    for start in range(0, len(failing), PAIRS_PER_READ):
        for row in backend.select(*runs_after(_RUN_COLUMNS, failing[start:start + PAIRS_PER_READ],
                                              " AND r.status <> 'skipped'")):
            since.setdefault((row[1], row[2]), []).append(row)
    return {(job_id, machine): sorted({rows[shown], *([rows[ok]] if ok else []), *since.get((job_id, machine), [])},
                                      reverse=True)
            for job_id, machine, shown, ok in pairs}


def _state(runs: list[tuple], now: float) -> dict:
    """A machine's `MachineState` fields from its runs (`_machine_runs`, newest first)."""
    shown = next((run for run in runs if run[3] != "skipped"), runs[0])
    status = status_at(shown[3], shown[4], now)  # lost: its heartbeat stopped, as `runs` says
    ok = next((run for run in runs if run[3] == "succeeded"), None)
    ended = next((run for run in runs if run[3] != "skipped" and run[5] is not None), None)
    failures = [run for run in runs if (ok is None or run[0] > ok[0]) and status_at(run[3], run[4], now) in FAILED]
    return {"last_status": status, "last_duration": None if ended is None or ended[6] is None else float(ended[6]),
            "last_success": py_time(ok[5]) if ok else None, "failures": len(failures)}
