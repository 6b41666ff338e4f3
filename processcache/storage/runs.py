"""Runs and locks: the SQL that decides who runs, and records how runs end.

A lock is one row per lock name. Taking it is one conditional UPDATE that
succeeds only when the row is free or its lease has expired, judged by the
database server's clock; it behaves the same on SQLite, PostgreSQL and MySQL
(where Pony counts matched rows, so every condition is in the WHERE clause).
Every lock method takes a lock's name (``group/job[@machine]``) or its key
as `processcache locks` lists it, and acts on the row `locknames.lock_key`
gives, so a name too long for the row, or one MariaDB would compare without
its trailing spaces, is never another lock's row.
"""

from typing import NamedTuple

from pony.orm.core import TransactionIntegrityError
from pony.orm.dbapiprovider import IntegrityError

from ..codec import decode_value, encode_value
from .dialects import FOR_UPDATE, NOW
from ..errors import InvalidValueError
from .schema import JOB_STATE_REVISION
from .fence import NO_FENCE, Fence
from ..locknames import lock_key
from ..records import RunRecord
from .retry import retrying
from ..texts import storable
from ..timeutil import db_time, py_time

#: A run's result summary is kept when its JSON is at most this long.
MAX_RESULT_CHARS = 10_000
_RUN_COLUMNS = ("r.id, p.name, j.name, r.machine, r.pid, r.status, r.started_at, r.finished_at,"
                " r.duration, r.error, r.traceback, r.result, r.expires_at, r.exit_signal")
RUNS_FROM = ("FROM process_job_runs r JOIN process_jobs j ON j.id = r.job_id"
             " JOIN processes p ON p.id = j.process_id")


class LockRecord(NamedTuple):
    """Who holds a lock, until when (seconds from now, by the database's clock)."""

    name: str
    machine: str | None
    pid: int | None
    run_id: int | None
    held_for: float | None
    expires_in: float | None

    @property
    def held(self) -> bool:
        return self.expires_in is not None and self.expires_in > 0


class RunStore:
    """Runs and locks of one database; used by the run lifecycle and the CLI."""

    def __init__(self, database) -> None:
        self.database = database
        self.db = database.pony
        self.store = database.store
        self.now = NOW[self.db.provider.dialect]
        self._for_update = FOR_UPDATE[self.db.provider.dialect]
        self.transaction = database.transaction
        self._lock_rows: set[str] = set()

    # -- runs -------------------------------------------------------------------

    def start(self, group: str, job: str, machine: str, pid: int, lease: float,
              expect_every: float | None = None, max_duration: float | None = None,
              scope: str | None = None) -> RunRecord:
        """Record a new run, alive for *lease* seconds unless its heartbeat renews it.

        The job's expectations (for `processcache check`) and its data scope
        (for the cache commands) are those of its latest run.
        """
        job_id = self.store.job_id(group, job)
        retrying(self.database, self.database.clock.sync)  # this run's stamps by the server's clock
        started_at = self.database.clock.now()
        status = "running"
        params = {"job_id": job_id, "machine": machine, "pid": pid, "status": status,
                  "started_at": db_time(started_at), "lease": lease,
                  "expect_every": expect_every, "max_duration": max_duration, "scope": scope}
        # A database opened with upgrade=False may predate the column.
        declared = ", scope = $scope" if self.database.has_revision(JOB_STATE_REVISION) else ""

        def insert():
            with self.transaction():
                self.db.execute("UPDATE process_jobs SET expect_every = $expect_every,"
                                f" max_duration = $max_duration{declared} WHERE id = $job_id", params)
                params["id"] = self.db.insert(
                    "process_job_runs", returning="id", job_id=job_id, machine=machine, pid=pid, status=status,
                    started_at=params["started_at"])
                self.db.execute(f"UPDATE process_job_runs SET expires_at = {self.now} + $lease WHERE id = $id",
                                params)
                return params["id"]

        def stored():  # the run, if the commit got through before the connection went
            with self.transaction():
                found = self.db.select("SELECT MAX(id) FROM process_job_runs WHERE job_id = $job_id AND"
                                       " machine = $machine AND pid = $pid AND started_at = $started_at", params)
            return found[0] if found else None

        run_id = retrying(self.database, insert, stored)
        return RunRecord(run_id, group, job, machine, pid, status, started_at)

    def scope_of(self, job_id: int) -> str | None:
        """The data scope (``job`` or ``machine``) the job's latest run declared; None before any."""
        if not self.database.has_revision(JOB_STATE_REVISION):
            return None
        with self.transaction():
            found = self.db.select("SELECT scope FROM process_jobs WHERE id = $job_id", {"job_id": job_id})
        return found[0] if found else None

    def heartbeat(self, run_id: int, lease: float, lock_name: str | None = None) -> bool:
        """Keep a run (and its lock) alive for another *lease*; False if the lock was lost.

        The lock row first, then the run's: the order every transaction
        touching both takes (`finish`, `acquire`), so none waits on another in a cycle.
        """
        with self.transaction():
            held = lock_name is None or self.renew_lock(lock_name, run_id, lease)
            self.db.execute(f"UPDATE process_job_runs SET expires_at = {self.now} + $lease"
                            " WHERE id = $run_id AND status = 'running'", {"run_id": run_id, "lease": lease})
            return held

    def renew_lock(self, name: str, owner: int, lease: float) -> bool:
        """Extend the lease of a lock *owner* holds; False if it no longer does."""
        with self.transaction():
            cursor = self.db.execute(f"UPDATE process_job_locks SET expires_at = {self.now} + $lease"
                                     " WHERE name = $name AND run_id = $owner",
                                     {"name": lock_key(name), "owner": owner, "lease": lease})
            return cursor.rowcount == 1

    def finish(self, run: RunRecord, status: str, error: str | None = None, traceback: str | None = None,
               result=None, signal: int | None = None, fence: Fence = NO_FENCE) -> RunRecord:
        """Record how *run* ended (and the signal that ended it) and return its final record.

        Only a run still ``running`` is moved; one whose *fence* (its lock)
        is no longer held, or that the run which took its lock over marked
        ``lost``, ends ``lost`` whatever it was asked, with its end, error and
        traceback recorded. A run that ended already is returned as it is.
        """
        finished_at = self.database.clock.now()
        params = {"id": run.id, "finished_at": db_time(finished_at),
                  "duration": (finished_at - run.started_at).total_seconds(), "result": _summary(result),
                  "error": storable(error), "traceback": storable(traceback), "signal": signal}

        def record() -> tuple[str, str | None] | None:
            with self.transaction(immediate=True):
                lost_lock = fence.lost_lock(self.db) if fence else None
                found = self.db.select(f"SELECT status FROM process_job_runs WHERE id = $id{self._for_update}",
                                       params)
                if not found or found[0] not in ("running", "lost"):
                    return None
                ending = {"status": status, "error": params["error"]}
                if found[0] == "lost" or lost_lock is not None:
                    ending["status"] = "lost"
                    ending["error"] = ending["error"] or (f"lost its lease on the lock {lost_lock or fence.holds[0][0]}:"
                                                          " another run took the lock over before this one ended")
                self.db.execute("UPDATE process_job_runs SET status = $status, finished_at = $finished_at,"
                                " duration = $duration, error = $error, traceback = $traceback, result = $result,"
                                " exit_signal = $signal, expires_at = NULL WHERE id = $id", {**params, **ending})
                return ending["status"], ending["error"]

        ended = retrying(self.database, record)
        if ended is None:  # it had ended already: as it was recorded then
            return self.get(run.id)
        return RunRecord(run.id, run.group, run.job, run.machine, run.pid, ended[0], run.started_at, finished_at,
                         params["duration"], ended[1], params["traceback"],
                         None if params["result"] is None else result, signal)

    def get(self, run_id: int) -> RunRecord | None:
        """One run by id, with `lost` for a running run whose heartbeat stopped."""
        found = self.select_runs("r.id = $run_id", {"run_id": run_id}, limit=1)
        return found[0] if found else None

    def last_success(self, job_id: int, machine: str | None, before_run: int | None = None) -> RunRecord | None:
        """The newest succeeded run of a job (on *machine*, or any when None)."""
        clauses = ["r.job_id = $job_id", "r.status = 'succeeded'"]
        if machine is not None:
            clauses.append("r.machine = $machine")
        if before_run is not None:
            clauses.append("r.id < $before")
        found = self.select_runs(" AND ".join(clauses), {"job_id": job_id, "machine": machine,
                                                          "before": before_run}, limit=1)
        return found[0] if found else None

    def select_runs(self, where: str, params: dict, limit: int | None = None) -> list[RunRecord]:
        """Runs matching *where* (over ``r``, ``j`` and ``p``), newest first."""
        page = f" LIMIT {int(limit)}" if limit is not None else ""

        def read():
            with self.transaction():
                now = self.db.select(f"SELECT {self.now}", {})[0]
                return now, self.db.select(
                    f"SELECT {_RUN_COLUMNS} {RUNS_FROM} WHERE {where} ORDER BY r.id DESC{page}", params)

        now, rows = retrying(self.database, read)
        return [_run_record(row, now) for row in rows]

    def _update(self, sql: str, params: dict) -> None:
        """An idempotent UPDATE, tried again after a lost connection."""

        def update():
            with self.transaction():
                self.db.execute(sql, params)

        retrying(self.database, update)

    # -- locks ------------------------------------------------------------------

    def acquire(self, name: str, machine: str, pid: int, run_id: int, lease: float) -> bool:
        """Take the lock *name* for *run_id* if it is free or its lease ran out.

        *run_id* identifies the owner (a memoised computation passes a random
        token instead). A previous holder whose lease ran out is a run that
        died: it is marked `lost`.
        """
        name = lock_key(name)
        self._ensure_lock_row(name)
        params = {"name": name, "machine": machine, "pid": pid, "run_id": run_id, "lease": lease}

        def ours():  # after a lost connection: did the UPDATE commit?
            with self.transaction():
                return self.db.select("SELECT run_id FROM process_job_locks WHERE name = $name", params) == [run_id]

        return retrying(self.database, lambda: self._acquire(params), ours)

    def _acquire(self, params: dict) -> bool:
        with self.transaction():
            previous = self.db.select("SELECT run_id FROM process_job_locks WHERE name = $name", params)
            cursor = self.db.execute(
                f"UPDATE process_job_locks SET machine = $machine, pid = $pid, run_id = $run_id,"
                f" acquired_at = {self.now}, expires_at = {self.now} + $lease"
                f" WHERE name = $name AND (expires_at IS NULL OR expires_at < {self.now})", params)
            if cursor.rowcount != 1:
                return False
            if previous and previous[0] is not None:
                self.db.execute("UPDATE process_job_runs SET status = 'lost' WHERE id = $previous"
                                " AND status = 'running'", {"previous": previous[0]})
        return True

    def release(self, name: str, run_id: int) -> None:
        """Free the lock if *run_id* still holds it."""
        self._update("UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL,"
                     " acquired_at = NULL, expires_at = NULL WHERE name = $name AND run_id = $run_id",
                     {"name": lock_key(name), "run_id": run_id})

    def break_lock(self, name: str) -> bool:
        """Free the lock whoever holds it (an operator's decision); True if it was held."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL,"
                f" acquired_at = NULL, expires_at = NULL WHERE name = $name AND expires_at >= {self.now}",
                {"name": lock_key(name)})
            return cursor.rowcount == 1

    def locks(self, name: str | None = None) -> list[LockRecord]:
        """Every lock row (or the one named), held or not; a record's name is the lock's key.

        A key never ends with a space, so MariaDB's comparison finds exactly its row.
        """
        where = "WHERE name = $name" if name is not None else ""
        params = {"name": None if name is None else lock_key(name)}
        with self.transaction():
            rows = self.db.select(
                f"SELECT name, machine, pid, run_id, {self.now} - acquired_at, expires_at - {self.now}"
                f" FROM process_job_locks {where} ORDER BY name", params)
        return [LockRecord(r[0], r[1], r[2], r[3], _float(r[4]), _float(r[5])) for r in rows]

    def _ensure_lock_row(self, name: str) -> None:
        """Create the row of the lock key *name* unless it exists."""
        if name in self._lock_rows:
            return

        def ensure():
            try:
                with self.transaction():
                    if not self.db.select("SELECT name FROM process_job_locks WHERE name = $name", {"name": name}):
                        self.db.insert("process_job_locks", name=name)
            except (IntegrityError, TransactionIntegrityError):
                pass  # another process created the row first: the UPDATE decides

        retrying(self.database, ensure)  # a run's first use of the lock table: a dropped one is said in one line
        self._lock_rows.add(name)


def _summary(result) -> str | None:
    if result is None:
        return None
    try:
        text = encode_value(result)
    except InvalidValueError:
        return None
    return text if len(text) <= MAX_RESULT_CHARS else None


def _float(value) -> float | None:
    return None if value is None else float(value)


def _run_record(row, now) -> RunRecord:
    status = row[5]
    if status == "running" and row[12] is not None and float(row[12]) < float(now):
        status = "lost"  # its heartbeat stopped: the process died without a word
    result = decode_value(row[11]) if row[11] is not None else None
    return RunRecord(row[0], row[1], row[2], row[3], row[4], status, py_time(row[6]), py_time(row[7]),
                     row[8], row[9], row[10], result, row[13])
