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

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..cache.codec import decode_value, encode_value
from ..errors import InvalidValueError, SchemaError
from ..names import lock_key
from ..records import FAILED, AttemptRecord, LockRecord, RunRecord, RunStatus
from .backend import Backend, ConstraintViolation, id_list
from .fence import NO_FENCE, Fence
from .schema import (
    JOB_STATE_REVISION,
    JUDGEMENT_REVISION,
    MONITORING_REVISION,
    PAUSE_REVISION,
    RUN_CONTROL_REVISION,
    SPOOL_REVISION,
    describe,
)
from .texts import same_text, storable
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

#: A run's result summary is kept when its JSON is at most this long.
MAX_RESULT_CHARS = 10_000
#: A run's columns; its group and job are named from its job id (`Store.names_of`), not joined: MariaDB joined
#: runs read by id from the groups' side, reading every run of every job (9.6 s for 18,000 runs by id).
_RUN_COLUMNS = ("r.id, r.job_id, r.machine, r.pid, r.status, r.started_at, r.finished_at,"
                " r.duration, r.error, r.traceback, r.result, r.expires_at, r.exit_signal")
#: The run-control columns, read as NULL from a database of an older revision (opened with upgrade=False).
_CONTROL_COLUMNS = (", r.exit_code, r.attempts, r.slot", ", NULL, NULL, NULL")
#: The lock wait's column (revision 7), read as NULL from a database of an older revision.
_WAITED_COLUMN = (", r.waited", ", NULL")
#: Whether a run was recorded late, from a machine's spool (revision 8; `replay`): 0 from an older revision.
LATE_COLUMN = (", CASE WHEN r.spool_id IS NULL THEN 0 ELSE 1 END", ", 0")
#: A run's ``waited`` while it waits for its lock (`RunStore.start` with *waiting*): not yet at work.
WAITING = -1.0
#: Runs read by id per query (`RunStore.runs_by_id`): under MariaDB's in_predicate_conversion_threshold (1,000).
ID_BATCH = 500
#: The job's monitoring settings each run stores with it (`JobOptions` fields, `process_jobs` columns).
MONITORING = ("schedule", "timezone", "grace", "alert_after")
#: What `check` judges a job by, stored by each run from revision 7 on: its lock (`JobOptions.lock`: a job
#: locked per machine is expected on each machine) and its ``flaky`` option, by column.
JUDGED = {"lock_scope": "lock", "flaky": "flaky"}


class RunStore:
    """Runs and locks of one database; used by the run lifecycle and the CLI."""

    def __init__(self, database: "Database") -> None:
        self.database = database
        self.backend: Backend = database.backend
        self.store = database.store
        self.now = self.backend.dialect.now
        self._for_update = self.backend.dialect.for_update
        self.transaction = self.backend.transaction
        self._lock_rows: set[str] = set()

    # -- runs -------------------------------------------------------------------

    def start(self, group: str, job: str, machine: str, pid: int, lease: float,
              expect_every: float | None = None, max_duration: float | None = None,
              scope: str | None = None, monitoring: dict[str, Any] | None = None,
              waiting: bool = False) -> RunRecord:
        """Record a new run, alive for *lease* seconds unless its heartbeat renews it.

        The job's expectations (for `processcache check`), its data scope
        (for the cache commands) and its *monitoring* settings (``schedule``,
        ``timezone``, ``grace``, ``alert_after``, and `JUDGED`'s ``lock`` and
        ``flaky`` by their option names, for `check` on machines that do not
        import the job's code) are those of its latest run. A run that will
        wait for its lock (*waiting*) is recorded `WAITING` until `waited`
        says how long it did: it is not at work yet.
        """
        job_id = self.store.job_id(group, job)
        self.backend.retrying(self.database.clock.sync)  # this run's stamps by the server's clock
        started_at = self.database.clock.now()
        status: RunStatus = "running"
        params = {"job_id": job_id, "machine": machine, "pid": pid, "status": status,
                  "started_at": db_time(started_at), "lease": lease,
                  "expect_every": expect_every, "max_duration": max_duration, "scope": scope}
        # A database opened with upgrade=False may predate the columns.
        declared = ", scope = $scope" if self.database.has_revision(JOB_STATE_REVISION) else ""
        if self.database.has_revision(MONITORING_REVISION):
            declared += "".join(f", {name} = ${name}" for name in MONITORING)
            params.update({name: (monitoring or {}).get(name) for name in MONITORING})
        waits, waited = "", None
        if self.database.has_revision(JUDGEMENT_REVISION):
            declared += "".join(f", {column} = ${column}" for column in JUDGED)
            params.update({column: (monitoring or {}).get(option) for column, option in JUDGED.items()})
            waits, waited = (", waited", WAITING) if waiting else ("", None)
            params["waited"] = waited
        if self.database.has_revision(PAUSE_REVISION):
            declared += ", after_jobs = $after_jobs"
            params["after_jobs"] = ",".join((monitoring or {}).get("after") or ()) or None

        def insert() -> int:
            with self.transaction():
                self.backend.execute("UPDATE process_jobs SET expect_every = $expect_every,"
                                     f" max_duration = $max_duration{declared} WHERE id = $job_id", params)
                return self.backend.write(
                    f"INSERT INTO process_job_runs (job_id, machine, pid, status, started_at, expires_at{waits})"
                    f" VALUES ($job_id, $machine, $pid, $status, $started_at, {self.now} + $lease"
                    f"{waits and ', $waited'})", params)

        def stored() -> int | None:  # the run, if the commit got through before the connection went
            return self.backend.value("SELECT MAX(id) FROM process_job_runs WHERE job_id = $job_id AND"
                                      f" {same_text('machine', '$machine')} AND pid = $pid"
                                      " AND started_at = $started_at", params)

        run_id = self.backend.retrying(insert, stored)
        return RunRecord(run_id, group, job, machine, pid, status, started_at, waited=waited)

    def waited(self, run: RunRecord, seconds: float) -> RunRecord:
        """Record that *run* waited *seconds* for its lock (its duration leaves them out); *run* with them."""
        if self.database.has_revision(JUDGEMENT_REVISION):
            self.backend.execute("UPDATE process_job_runs SET waited = $waited WHERE id = $id",
                                 {"id": run.id, "waited": seconds})
        return run._replace(waited=seconds)

    def scope_of(self, job_id: int) -> str | None:
        """The data scope (``job`` or ``machine``) the job's latest run declared; None before any."""
        if not self.database.has_revision(JOB_STATE_REVISION):
            return None
        return self.backend.value("SELECT scope FROM process_jobs WHERE id = $job_id", {"job_id": job_id})

    def heartbeat(self, run_id: int, lease: float, *locks: str | None) -> bool:
        """Keep a run (and its locks: its job's, its pool's) alive for another *lease*; False if one was lost.

        The lock rows first, then the run's: the order every transaction
        touching both takes (`finish`, `acquire`), so none waits on another in a cycle.
        """
        names = [name for name in locks if name is not None]
        with self.transaction():
            held = all([self.renew_lock(name, run_id, lease) for name in names])  # every one renewed, held or not
            self.backend.execute(f"UPDATE process_job_runs SET expires_at = {self.now} + $lease"
                                 " WHERE id = $run_id AND status = 'running'", {"run_id": run_id, "lease": lease})
            return held

    def renew_lock(self, name: str, owner: int, lease: float) -> bool:
        """Extend the lease of a lock *owner* holds; False if it no longer does."""
        return self.backend.execute(f"UPDATE process_job_locks SET expires_at = {self.now} + $lease"
                                    " WHERE name = $name AND run_id = $owner",
                                    {"name": lock_key(name), "owner": owner, "lease": lease}) == 1

    def finish(self, run: RunRecord, status: RunStatus, error: str | None = None, traceback: str | None = None,
               result: Any = None, signal: int | None = None, fence: Fence = NO_FENCE,
               exit_code: int | None = None, attempts: int | None = None) -> RunRecord:
        """Record how *run* ended (and the signal that ended it) and return its final record.

        Only a run still ``running`` is moved; one whose *fence* (its lock)
        is no longer held, or that the run which took its lock over marked
        ``lost``, ends ``lost`` whatever it was asked, with its end, error and
        traceback recorded. A run that ended already is returned as it is.
        """
        finished_at = self.database.clock.now()
        waited = run.waited if run.waited is not None and run.waited > 0 else 0.0  # at work only after the lock
        duration, summary, stored_traceback = max((finished_at - run.started_at).total_seconds() - waited, 0.0), \
            result_summary(result), storable(traceback)
        params = {"id": run.id, "finished_at": db_time(finished_at), "duration": duration, "result": summary,
                  "traceback": stored_traceback, "signal": signal, "exit_code": exit_code, "attempts": attempts}
        control = ", exit_code = $exit_code, attempts = $attempts" if self._controlled else ""

        def record() -> tuple[str, str | None] | None:
            with self.transaction(immediate=True):
                lost_lock = fence.lost_lock(self.backend) if fence else None
                found = self.backend.value(f"SELECT status FROM process_job_runs WHERE id = $id{self._for_update}",
                                           params)
                if found not in ("running", "lost"):
                    return None
                ending, why = status, storable(error)
                if found == "lost" or lost_lock is not None:
                    ending = "lost"
                    why = why or (f"lost its lease on the lock {lost_lock or fence.holds[0][0]}: another run took"
                                  " the lock over before this one ended")
                self.backend.execute("UPDATE process_job_runs SET status = $status, finished_at = $finished_at,"
                                     " duration = $duration, error = $error, traceback = $traceback,"
                                     f" result = $result, exit_signal = $signal{control}, expires_at = NULL"
                                     " WHERE id = $id",
                                     {**params, "status": ending, "error": why})
                return ending, why

        ended = self.backend.retrying(record)
        if ended is None:  # it had ended already: as it was recorded then
            recorded = self.get(run.id)
            if recorded is None:  # its row is gone: a failover to a standby that never had it, a restore
                raise SchemaError(f"run {run.id} is not in {self.database.url} any more (a failover to a standby"
                                  " that had not received it, or a restored backup): its end cannot be recorded")
            return recorded
        return RunRecord(run.id, run.group, run.job, run.machine, run.pid, ended[0], run.started_at, finished_at,
                         duration, ended[1], stored_traceback, None if summary is None else result, signal,
                         exit_code, attempts, run.slot, run.waited)

    def starts_since(self, job_id: int, since: datetime) -> list[datetime]:
        """When each run of the job that started at or after *since* started (skipped copies too)."""
        return [py_time(started) for (started,) in self.backend.select(
            "SELECT started_at FROM process_job_runs WHERE job_id = $job_id AND started_at >= $since",
            {"job_id": job_id, "since": db_time(since)})]

    def first_start(self, job_id: int) -> datetime | None:
        """When the job's first run still stored started; None if it never ran."""
        first = self.backend.value("SELECT MIN(started_at) FROM process_job_runs WHERE job_id = $job_id",
                                   {"job_id": job_id})
        return None if first is None else py_time(first)

    def get(self, run_id: int) -> RunRecord | None:
        """One run by id, with `lost` for a running run whose heartbeat stopped."""
        found = self.select_runs("r.id = $run_id", {"run_id": run_id}, limit=1)
        return found[0] if found else None

    def last_success(self, job_id: int, machine: str | None, before_run: int | None = None) -> RunRecord | None:
        """The newest succeeded run of a job (on *machine*, or any when None)."""
        clauses = ["r.job_id = $job_id", "r.status = 'succeeded'"]
        if machine is not None:
            clauses.append(same_text("r.machine", "$machine"))
        if before_run is not None:
            clauses.append("r.id < $before")
        found = self.select_runs(" AND ".join(clauses), {"job_id": job_id, "machine": machine,
                                                          "before": before_run}, limit=1)
        return found[0] if found else None

    def runs_by_id(self, ids: list[int]) -> list[RunRecord]:
        """The runs with these ids, newest first, read `ID_BATCH` at a time.

        Read by an IN list of literal ids, kept under 1,000: MariaDB turns a
        longer list into a derived table, and then reads every run of every
        job to join it (2 s for 1,000 ids of 200,000 runs).
        """
        ordered = sorted(set(ids), reverse=True)
        return [run for start in range(0, len(ordered), ID_BATCH)
                for run in self.select_runs(f"r.id IN ({id_list(ordered[start:start + ID_BATCH])})", {})]

    def select_runs(self, where: str, params: dict, limit: int | None = None) -> list[RunRecord]:
        """Runs matching *where* (over ``r``, the runs alone), newest first."""
        page = f" LIMIT {int(limit)}" if limit is not None else ""

        columns = (_RUN_COLUMNS + _CONTROL_COLUMNS[0 if self._controlled else 1]
                   + _WAITED_COLUMN[0 if self.database.has_revision(JUDGEMENT_REVISION) else 1]
                   + LATE_COLUMN[0 if self.database.has_revision(SPOOL_REVISION) else 1])

        def read() -> tuple[float, list[tuple], dict[int, tuple[str, str]]]:
            with self.transaction():
                rows = self.backend.select(
                    f"SELECT {columns} FROM process_job_runs r WHERE {where} ORDER BY r.id DESC{page}", params)
                return self.backend.now(), rows, self.store.names_of({row[1] for row in rows})

        now, rows, names = self.backend.retrying(read)
        return [_run_record(row, names[row[1]], now) for row in rows]

    @property
    def _controlled(self) -> bool:
        """Whether the database has the run-control columns and tables (a read-only command never upgrades)."""
        return self.database.has_revision(RUN_CONTROL_REVISION)

    # -- attempts and slots --------------------------------------------------------

    def record_attempt(self, run_id: int, attempt: AttemptRecord) -> None:
        """Store one finished attempt of a run with retries (nowhere on a database of an older revision)."""
        if not self._controlled:
            return
        self.backend.write(
            "INSERT INTO process_job_attempts (run_id, number, status, started_at, finished_at, duration, error,"
            " exit_code, exit_signal) VALUES ($run_id, $number, $status, $started_at, $finished_at, $duration,"
            " $error, $exit_code, $signal)",
            {**attempt._asdict(), "run_id": run_id, "started_at": db_time(attempt.started_at),
             "finished_at": attempt.finished_at and db_time(attempt.finished_at), "error": storable(attempt.error)},
            find=("SELECT id FROM process_job_attempts WHERE run_id = $run_id AND number = $number",
                  {"run_id": run_id, "number": attempt.number}))

    def attempts(self, run_id: int) -> list[AttemptRecord]:
        """The attempts of a run with retries, first first ([] for any other run)."""
        if not self._controlled:
            return []
        rows = self.backend.select("SELECT number, status, started_at, finished_at, duration, error, exit_code,"
                                   " exit_signal FROM process_job_attempts WHERE run_id = $run_id ORDER BY number",
                                   {"run_id": run_id})
        return [AttemptRecord(r[0], r[1], py_time(r[2]), py_time(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def claim_slot(self, job_id: int, slot: int, run_id: int, reopen: bool) -> int | None:
        """Claim the job's ``once_per`` slot from *slot* for *run_id*: None when it did, else the holder's run id.

        The first run to insert the slot's row holds it, on whatever
        machine; with *reopen*, a holder that ended `FAILED` (or died)
        is replaced, by a compare-and-set, so two retries never both win.
        """
        if not self._controlled:
            raise SchemaError(f"once_per needs schema {describe(RUN_CONTROL_REVISION)}, which {self.database.url} has"
                              " not: run `processcache db upgrade` (or connect once without upgrade=False)")
        params = {"job_id": job_id, "slot": slot, "run_id": run_id}
        where = "job_id = $job_id AND slot = $slot"

        def take() -> None:
            self.backend.execute("UPDATE process_job_runs SET slot = $slot WHERE id = $run_id", params)

        def claim() -> int:
            try:  # the slot's first run: no lock on a missing row, which MySQL would take on the gap and deadlock
                with self.transaction():
                    self.backend.insert("process_job_slots", {"job_id": job_id, "slot": slot, "run_id": run_id})
                    take()
                return run_id
            except ConstraintViolation:
                pass  # another run inserted the slot's row first: who holds it now?
            with self.transaction(immediate=True):
                holder = self.backend.value(f"SELECT run_id FROM process_job_slots WHERE {where}{self._for_update}",
                                            params)
                if holder != run_id and not (reopen and self._ended_unfinished(holder)):
                    return holder
                self.backend.execute(f"UPDATE process_job_slots SET run_id = $run_id WHERE {where}", params)
                take()
                return run_id

        def ours() -> int | None:  # after a lost connection: did the claim commit?
            held = self.backend.value(f"SELECT run_id FROM process_job_slots WHERE {where}", params)
            return run_id if held == run_id else None

        holder = self.backend.retrying(claim, ours)
        return None if holder == run_id else holder

    def _ended_unfinished(self, run_id: int) -> bool:
        """Whether the run ended failed, timed out, terminated or lost (or died running); True for a pruned run."""
        found = self.backend.select("SELECT status, expires_at FROM process_job_runs WHERE id = $id", {"id": run_id})
        status, expires_at = found[0] if found else (None, None)
        if status == "running":
            return expires_at is not None and float(expires_at) < self.backend.now()
        return status is None or status in FAILED

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

        def ours() -> bool:  # after a lost connection: did the UPDATE commit?
            return self.backend.value("SELECT run_id FROM process_job_locks WHERE name = $name", params) == run_id

        return self.backend.retrying(lambda: self._acquire(params), ours)

    def _acquire(self, params: dict) -> bool:
        with self.transaction():
            previous = self.backend.value("SELECT run_id FROM process_job_locks WHERE name = $name", params)
            taken = self.backend.execute(
                f"UPDATE process_job_locks SET machine = $machine, pid = $pid, run_id = $run_id,"
                f" acquired_at = {self.now}, expires_at = {self.now} + $lease"
                f" WHERE name = $name AND (expires_at IS NULL OR expires_at < {self.now})", params)
            if taken != 1:
                return False
            if previous is not None:
                self.backend.execute("UPDATE process_job_runs SET status = 'lost' WHERE id = $previous"
                                     " AND status = 'running'", {"previous": previous})
        return True

    def release(self, name: str, run_id: int) -> None:
        """Free the lock if *run_id* still holds it."""
        self.backend.execute("UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL,"
                             " acquired_at = NULL, expires_at = NULL WHERE name = $name AND run_id = $run_id",
                             {"name": lock_key(name), "run_id": run_id})

    def break_lock(self, name: str) -> bool:
        """Free the lock whoever holds it (an operator's decision); True if it was held."""
        return self.backend.execute(
            "UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL,"
            f" acquired_at = NULL, expires_at = NULL WHERE name = $name AND expires_at >= {self.now}",
            {"name": lock_key(name)}) == 1

    def locks(self, name: str | None = None) -> list[LockRecord]:
        """Every lock row (or the one named), held or not; a record's name is the lock's key.

        A key never ends with a space, so MariaDB's comparison finds exactly its row.
        """
        where = "WHERE name = $name" if name is not None else ""
        params = {"name": None if name is None else lock_key(name)}
        rows = self.backend.select(f"SELECT name, machine, pid, run_id, {self.now} - acquired_at,"
                                   f" expires_at - {self.now} FROM process_job_locks {where} ORDER BY name", params)
        return [LockRecord(r[0], r[1], r[2], r[3], _float(r[4]), _float(r[5])) for r in rows]

    def _ensure_lock_row(self, name: str) -> None:
        """Create the row of the lock key *name* unless it exists."""
        if name in self._lock_rows:
            return

        # A run's first use of the lock table: a dropped one is said in one line (`backend.missing_table`).
        self.backend.insert_unique("process_job_locks", {"name": name}, column="name")
        self._lock_rows.add(name)


def result_summary(result: Any) -> str | None:
    """A run's result as the ledger keeps it: its JSON, or None (not a JSON value, or over `MAX_RESULT_CHARS`)."""
    if result is None:
        return None
    try:
        text = encode_value(result)
    except InvalidValueError:
        return None
    return text if len(text) <= MAX_RESULT_CHARS else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def status_at(status: RunStatus, expires_at: float | None, now: float) -> RunStatus:
    """A run's status as of *now* (the server's clock): a running run whose lease expired is ``lost``."""
    if status == "running" and expires_at is not None and float(expires_at) < float(now):
        return "lost"  # its heartbeat stopped: the process died without a word
    return status


def _run_record(columns: tuple, names: tuple[str, str], now: float) -> RunRecord:
    """A run from its `_RUN_COLUMNS` and its (job, group) names."""
    row = (columns[0], names[1], names[0], *columns[2:])
    status = status_at(row[5], row[12], now)
    result = decode_value(row[11]) if row[11] is not None else None
    slot = None if row[16] is None else datetime.fromtimestamp(row[16], UTC)
    return RunRecord(row[0], row[1], row[2], row[3], row[4], status, py_time(row[6]), py_time(row[7]),
                     row[8], row[9], row[10], result, row[13], row[14], row[15], slot, row[17], bool(row[18]))
