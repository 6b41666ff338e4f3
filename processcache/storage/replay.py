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
from .texts import storable
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

    def store() -> Replayed:
        with backend.transaction(immediate=True):
            run_id = backend.insert("process_job_runs", _run_row(run, job_id))
            dropped = [write.key for write in run.writes if not _apply(db, job_id, run, write)]
            logs = [*run.logs, *_notes(run, dropped)]
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
        return backend.retrying(store, stored)
    except ConstraintViolation:  # another process stored it first, and committed
        found = backend.retrying(stored)
        if found is None:
            raise
        return found


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
    scope = " AND machine = $machine" if run.scope == "machine" else ""
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


def _notes(run: SpooledRun, dropped: list[str]) -> list[SpooledLog]:
    """WARNING logs that say what of the run was not stored: values a newer entry kept out, what a full spool lost."""
    when = run.finished_at or run.started_at
    notes = []
    if dropped:
        keys = ", ".join(sorted(set(dropped)))
        notes.append(SpooledLog(LogType.WARNING.value, None, f"recorded late: the values this run wrote under {keys}"
                                " while the database was down were not stored: a newer entry of each was there", when))
    if run.dropped:
        notes.append(SpooledLog(LogType.WARNING.value, None, f"recorded late: {run.dropped} logs or cache writes of"
                                " this run were not kept: the local spool was full", when))
    return notes
