"""Spooled runs into the ledger: each stored once, however many processes replay it and wherever one stops.

A run that ran while its database was down (``if_database_down="run"``) was
kept in this machine's spool (`processcache.run.spool`) under a unique id. Its
replay is one transaction: the run's row carries that id in
``process_job_runs.spool_id``, a unique column, with its logs and its cache
writes. Two processes replaying it at once both insert the row; the unique
index lets one commit and refuses the other, which rolls back everything
it did. A replay cut off (a SIGKILL, a lost connection) either committed
or stored nothing; the spool forgets a run only after its commit, so the
next replay stores it or finds it stored. The row's ``spool_id`` also marks
it as recorded late: ``runs`` and the report show it.

A run whose database went away mid-run (``run_id`` set) has its row in the
ledger already, ``running``: its replay takes that row instead (marking it
with the ``spool_id`` where no replay has yet, which two replays cannot
both do), finishes it as `RunStore.finish` would, adds its logs and writes,
and frees its lock. If another run holds its lock by then, it ends
``lost`` and its writes are dropped, as a fenced write is.

Its times are the ones the spooling machine's clock gave (there was no
server to ask), so `check` counts it from when it really ran.

Cache writes follow one rule: a spooled write of a key is stored only if no
entry of that key (in the job's scope: every machine's for ``scope="job"``,
this machine's for ``"machine"``) is newer than it. A newer entry means
another machine wrote the key while this one was cut off; the spooled
value is then dropped, not stored as an older entry (a reader of the key's
newest value would take it for the newest), and a WARNING log of the
replayed run names the key. A write that ran past its ``ttl`` meanwhile
is dropped too; one that did not expires when it would have.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SchemaError
from ..records import LogType
from .backend import ConstraintViolation
from .schema import SPOOL_REVISION, describe
from .texts import same_text, storable
from .timeutil import db_time

if TYPE_CHECKING:
    from .database import Database


class SpooledLog(NamedTuple):
    """A log a spooled run wrote."""

    type: str
    level: str | None
    message: str
    created_at: datetime


class SpooledWrite(NamedTuple):
    """A cache write a spooled run made: an append, or with *replace* the key's only entry."""

    key: str
    value: str  # encoded JSON
    ttl: float | None
    replace: bool
    created_at: datetime


class SpooledRun(NamedTuple):
    """A run kept in the spool, whole: what `replay` stores."""

    spool_id: str
    group: str
    job: str
    machine: str
    pid: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration: float | None
    error: str | None
    traceback: str | None
    result: str | None
    exit_code: int | None
    signal: int | None
    attempts: int | None
    scope: str
    dropped: int
    logs: list[SpooledLog]
    writes: list[SpooledWrite]
    run_id: int | None = None  # the ledger's id of a run whose database went away mid-run; None: never recorded
    lock: str | None = None  # the lock that run held when it went away


class Replayed(NamedTuple):
    """What `replay` did with one spooled run."""

    run_id: int
    stored: bool  # False: another process had stored it already
    dropped_writes: list[str]  # the keys whose spooled value a newer entry kept out


def replay(db: "Database", run: SpooledRun) -> Replayed:
    """Store *run* in the ledger of *db* once: its row, logs and cache writes, in one transaction.

    A run stored before (by this process, another, or a replay that was
    killed after its commit) is found by its ``spool_id`` and left as it is.
    """
    if not db.has_revision(SPOOL_REVISION):  # opened with upgrade=False: no spool_id to store it once by
        raise SchemaError(f"{db.url} has schema {describe(db.schema_state or (0, 0))}; storing runs recorded late"
                          f" needs {describe(SPOOL_REVISION)}: run `processcache db upgrade` (it keeps every row)")
    backend = db.backend
    job_id = db.store.job_id(run.group, run.job)

    def store() -> Replayed | None:
        with backend.transaction(immediate=True):
            if run.run_id is None:
                run_id, lost = backend.insert("process_job_runs", _run_row(run, job_id)), None
            else:
                taken, lost = _ended(db, run)
                if not taken:  # another replay took the row first
                    return None
                run_id = run.run_id
            writes = [] if lost else run.writes
            dropped = [write.key for write in writes if not _apply(db, job_id, run, write)]
            logs = [*run.logs, *_notes(run, dropped, lost)]
            if logs:
                backend.insert_many("process_job_logs",
                                    ("job_id", "run_id", "machine", "log_type", "level", "message", "created_at"),
                                    [(job_id, run_id, run.machine, log.type, log.level, storable(log.message) or "",
                                      db_time(log.created_at)) for log in logs])
            return Replayed(run_id, True, dropped)

    def stored() -> Replayed | None:
        found = backend.value("SELECT id FROM process_job_runs WHERE spool_id = $spool_id",
                              {"spool_id": run.spool_id})
        return None if found is None else Replayed(found, False, [])

    try:
        return backend.retrying(store, stored) or backend.retrying(stored)
    except ConstraintViolation:  # another process stored it first, and committed
        found = backend.retrying(stored)
        if found is None:
            raise
        return found


def _ended(db: "Database", run: SpooledRun) -> tuple[bool, str | None]:
    """Finish the ledger's row of a run spooled mid-run: (False, None) if a replay took it already, else (True, the
    lock it lost or None).

    The row is taken by setting its ``spool_id`` where it has none, so a
    second replay, waiting on the row, finds it taken. A row another run's
    takeover marked ``lost``, or whose lock is now another's, ends ``lost``.
    """
    backend = db.backend
    params = {"id": run.run_id, "spool_id": run.spool_id}
    if backend.execute("UPDATE process_job_runs SET spool_id = $spool_id WHERE id = $id AND spool_id IS NULL",
                       params) != 1:
        return False, None
    found = backend.value("SELECT status FROM process_job_runs WHERE id = $id", params)
    holder = None if run.lock is None else backend.value(
        f"SELECT run_id FROM process_job_locks WHERE name = $lock{backend.dialect.for_share}", {"lock": run.lock})
    lost = run.lock if found == "lost" or (run.lock is not None and holder != run.run_id) else None
    if found in ("running", "lost"):
        status, error = ("lost", run.error or f"lost its lease on the lock {lost}: another run took the lock over"
                         " while the database was down") if lost else (run.status, run.error)
        backend.execute("UPDATE process_job_runs SET status = $status, finished_at = $finished_at,"
                        " duration = $duration, error = $error, traceback = $traceback, result = $result,"
                        " exit_signal = $exit_signal, exit_code = $exit_code, attempts = $attempts, expires_at = NULL"
                        " WHERE id = $id",
                        {**params, **_run_row(run, 0), "status": status, "error": storable(error)})
    if run.lock is not None and not lost:
        backend.execute("UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL, acquired_at = NULL,"
                        " expires_at = NULL WHERE name = $lock AND run_id = $id", {**params, "lock": run.lock})
    return True, lost


def _run_row(run: SpooledRun, job_id: int) -> dict:
    return {"job_id": job_id, "machine": run.machine, "pid": run.pid, "status": run.status,
            "started_at": db_time(run.started_at), "finished_at": run.finished_at and db_time(run.finished_at),
            "duration": run.duration, "error": storable(run.error), "traceback": storable(run.traceback),
            "result": run.result, "exit_signal": run.signal, "exit_code": run.exit_code, "attempts": run.attempts,
            "spool_id": run.spool_id}


def _apply(db: "Database", job_id: int, run: SpooledRun, write: SpooledWrite) -> bool:
    """Store one spooled cache write under the rule of the module docstring; False when it was dropped."""
    backend = db.backend
    now = backend.now()
    age = (datetime.now(UTC) - write.created_at).total_seconds()
    if write.ttl is not None and write.ttl <= age:
        return False  # expired while it waited
    scope = f" AND {same_text('machine', '$machine')}" if run.scope == "machine" else ""
    params = {"job_id": job_id, "machine": run.machine, "key": write.key, "text": write.value,
              "created_at": db_time(write.created_at), "now": now,
              "expires": None if write.ttl is None else now + write.ttl - age}
    newer = backend.value(f"SELECT COUNT(*) FROM process_cache WHERE job_id = $job_id AND entry_key = $key{scope}"
                          " AND created_at > $created_at AND (expires_at IS NULL OR expires_at > $now)", params)
    if newer:
        return False
    if write.replace:
        backend.execute(f"DELETE FROM process_cache WHERE job_id = $job_id AND entry_key = $key{scope}", params)
    backend.execute("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
                    " VALUES ($job_id, $machine, $key, $text, $created_at, $expires)", params)
    return True


def _notes(run: SpooledRun, dropped: list[str], lost: str | None = None) -> list[SpooledLog]:
    """WARNING logs that say what of the run was not stored: values a newer entry kept out, what a full spool lost."""
    when = run.finished_at or run.started_at
    notes = []
    if lost and run.writes:
        notes.append(SpooledLog(LogType.WARNING.value, None, f"recorded late: the {len(run.writes)} cache writes this"
                                f" run made while the database was down were not stored: it had lost the lock {lost}",
                                when))
    if dropped:
        keys = ", ".join(sorted(set(dropped)))
        notes.append(SpooledLog(LogType.WARNING.value, None, f"recorded late: the values this run wrote under {keys}"
                                " while the database was down were not stored: a newer entry of each was there", when))
    if run.dropped:
        notes.append(SpooledLog(LogType.WARNING.value, None, f"recorded late: {run.dropped} logs or cache writes of"
                                " this run were not kept: the local spool was full", when))
    return notes
