"""Groups, jobs, logs and the schema: their reads and writes, each in its own short session.

No transaction is held across a run: on SQLite that would lock out every
other process. Rows are read in bulk with plain SQL (``db.select``), never
as one ORM object per row, and come back as the immutable records of
`records.py`. Writes are committed when the method returns. The cache
entries have `cachestore.py`; runs and locks `runstore.py`.
"""

import contextlib
from collections.abc import Iterator
from datetime import datetime

from pony.orm.core import TransactionIntegrityError
from pony.orm.dbapiprovider import DatabaseError, IntegrityError

from .dialects import SCHEMA_LOCK
from .schema import SCHEMA_REVISION, SCHEMA_VERSION
from .fastpath import Writer
from .retry import is_disconnect, retrying
from ..errors import SchemaError
from ..logs import LogType
from ..records import LogRecord
from ..texts import storable
from ..timeutil import db_time, py_time, utcnow

_LOG_COLUMNS = "id, log_type, message, machine, created_at, run_id, level, job_id"
_GET_OR_CREATE_ATTEMPTS = 5
#: The schema version and revision a database records (see `upgrades.py`).
STATE_SQL = "SELECT name, value FROM processcache_meta WHERE name IN ('schema_version', 'schema_revision')"
#: What this processcache writes: (version, revision).
CURRENT = (SCHEMA_VERSION, SCHEMA_REVISION)


class Store:
    """The seam between processcache's logic and SQL; see the module docstring."""

    def __init__(self, database) -> None:
        self.db = database.pony
        self._job_ids: dict[tuple[str, str], int] = {}
        self._job_names: dict[int, tuple[str, str]] = {}
        self.database = database
        self.writer = Writer(database)
        self._insert_log = self.writer.sql(
            "INSERT INTO process_job_logs (job_id, run_id, machine, log_type, level, message, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)")
        self._find_log = self.writer.sql("SELECT MAX(id) FROM process_job_logs WHERE job_id = ? AND machine = ?"
                                         " AND created_at = ? AND log_type = ?")

    # -- groups and jobs ------------------------------------------------------

    def job_id(self, group: str, job: str) -> int:
        """Return the id of the (normalised) group/job, creating the rows if needed.

        Processes starting a never-seen job together race to create the rows:
        the loser's insert violates the unique key and it reads the winner's.
        """
        cached = self._job_ids.get((group, job))
        if cached is None:
            group_id = retrying(self.database, lambda: self._get_or_create("processes", {"name": group}))
            cached = retrying(self.database,
                              lambda: self._get_or_create("process_jobs", {"process_id": group_id, "name": job}))
            self._job_ids[(group, job)] = cached
            self._job_names[cached] = (job, group)
        return cached

    def forget_job(self, job_id: int) -> None:
        """Drop a deleted job from this store's memory, so a later run of its name creates it anew."""
        self._job_names.pop(job_id, None)
        self._job_ids = {names: known for names, known in self._job_ids.items() if known != job_id}

    def group_job_ids(self, group: str) -> list[int]:
        """Ids of every job of *group* (for logs across a whole group)."""
        with self.database.transaction():
            return list(self.db.select(
                "SELECT j.id FROM process_jobs j JOIN processes p ON p.id = j.process_id"
                " WHERE p.name = $group ORDER BY j.id", {"group": group}))

    def _get_or_create(self, table: str, columns: dict) -> int:
        where = " AND ".join(f"{name} = ${name}" for name in columns)
        sql = f"SELECT id FROM {table} WHERE {where}"
        for _ in range(_GET_OR_CREATE_ATTEMPTS):
            try:
                with self.database.transaction():
                    found = self.db.select(sql, dict(columns))
                    if found:
                        return found[0]
                    return self.db.insert(table, returning="id", created_at=db_time(utcnow()), **columns)
            except (IntegrityError, TransactionIntegrityError):
                continue
        raise SchemaError(f"could not create a row in {table}: the unique key kept conflicting")

    # -- logs -------------------------------------------------------------------

    def add_log(self, job_id: int, machine: str, log_type: LogType, message: str,
                run_id: int | None = None, level: str | None = None, created_at: datetime | None = None) -> LogRecord:
        """Append one log line (written at *created_at*, default now), committed on return."""
        created_at = created_at or self.database.clock.now()
        stamp = db_time(created_at)
        message = storable(message)
        log_id = self.writer.insert(self._insert_log, (job_id, run_id, machine, log_type.value, level, message, stamp),
                                    find=(self._find_log, (job_id, machine, stamp, log_type.value)))
        return LogRecord(log_id, log_type, message, machine, created_at, run_id, level, *self._job_names[job_id])

    def logs(self, job_ids: list[int] | None = None, machine: str | None = None,
             log_type: LogType | None = None, offset: int = 0, limit: int | None = None, *,
             run_id: int | None = None, since: datetime | None = None, after_id: int | None = None,
             newest: bool = False) -> list[LogRecord]:
        """Logs, oldest first, filtered and paged as asked; *job_ids* None means every job.

        ``newest=True`` pages from the newest end (the last *limit* logs),
        still returned oldest first.
        """
        if job_ids is not None and not job_ids:
            return []
        where, params = _log_filter(job_ids, machine, log_type, run_id, since, after_id)
        order = " DESC" if newest else ""
        sql = f"SELECT {_LOG_COLUMNS} FROM process_job_logs WHERE {where} ORDER BY id{order}{_page(offset, limit)}"

        def read():
            with self.database.transaction():
                found = self.db.select(sql, params)
                return found, self._names_of({row[7] for row in found})

        rows, names = retrying(self.database, read)
        records = [
            LogRecord(r[0], LogType(r[1]), r[2], r[3], py_time(r[4]), r[5], r[6], *names[r[7]])
            for r in rows
            if machine is None or r[3] == machine
        ]
        return records[::-1] if newest else records

    def count_logs(self, job_ids: list[int] | None = None, machine: str | None = None,
                   log_type: LogType | None = None, *, run_id: int | None = None, since: datetime | None = None,
                   after_id: int | None = None) -> int:
        """How many logs `logs` with the same filters finds without a limit: what a page leaves out."""
        if job_ids is not None and not job_ids:
            return 0
        where, params = _log_filter(job_ids, machine, log_type, run_id, since, after_id)

        def read():
            with self.database.transaction():
                return self.db.select(f"SELECT COUNT(*) FROM process_job_logs WHERE {where}", params)[0]

        return int(retrying(self.database, read))

    def _names_of(self, job_ids: set[int]) -> dict[int, tuple[str, str]]:
        missing = [job_id for job_id in job_ids if job_id not in self._job_names]
        if missing:
            for job_id, job, group in self.db.select(
                    "SELECT j.id, j.name, p.name FROM process_jobs j JOIN processes p ON p.id = j.process_id"
                    f" WHERE j.id IN ({id_list(missing)})", {}):
                self._job_names[job_id] = (job, group)
        return self._job_names

    # -- schema -----------------------------------------------------------------

    def schema_differences(self) -> list[str]:
        """What the database lacks against this version's schema ([] when none).

        Reads the version first and raises SchemaError for a database written
        by a newer processcache: its tables are not this release's to compare,
        let alone to create. A newer revision's indexes are not compared
        either: it may have replaced some, and a revision is usable as it is.
        """
        differences = []
        with self.database.transaction():
            connection = self.db.get_connection()
            provider = self.db.provider
            state = stored_state(self.db)
            self.refuse_newer(state)
            for name, table in self.db.schema.tables.items():
                if not provider.table_exists(connection, name):
                    differences.append(f"table {name} is missing")
                    continue
                cursor = connection.cursor()
                cursor.execute(f"SELECT * FROM {name} WHERE 1 = 0")
                present = {column[0].lower() for column in cursor.description}
                differences += [
                    f"column {name}.{column.name} is missing"
                    for column in table.column_list if column.name.lower() not in present
                ]
                differences += [
                    f"index {index.name} on {name} is missing" for index in table.indexes.values()
                    if not (index.is_pk or index.is_unique) and (state is None or state <= CURRENT)
                    and not index.exists(provider, connection, False)
                ]
        if not differences and state is not None and state < CURRENT:
            differences = [f"schema {describe(state)} is older than {describe(CURRENT)}: run `processcache db upgrade`"]
        return differences

    def schema_state(self) -> tuple[int, int] | None:
        """The (version, revision) recorded in the database, or None where there is none (yet)."""
        try:
            with self.database.transaction():
                return read_state(self.db)
        except DatabaseError as exc:
            if is_disconnect(self.db.provider, exc):
                raise  # a server away, not a new database: the caller's retry decides
            return None  # no meta table: a new database

    def refuse_newer(self, state: tuple[int, int] | None) -> None:
        """Raise SchemaError for a database a newer processcache wrote: this release must neither change nor use it.

        During a rolling upgrade, an older release that brought a newer
        schema back to its own shape would take other lock tables than the
        newer machines, and both would run the job. A newer revision of this
        version is usable as it is.
        """
        if state is not None and state[0] > SCHEMA_VERSION:
            raise SchemaError(f"{self.database.url} has schema version {state[0]}, written by a newer processcache"
                              f" (this release knows version {SCHEMA_VERSION}): upgrade processcache on this machine"
                              " to use it; nothing was changed")

    @contextlib.contextmanager
    def schema_change(self) -> Iterator[tuple[int, int] | None]:
        """A DDL session under the schema lock; yields the (version, revision) stored, None for a new database.

        Processes changing the schema at once take turns under a
        database-wide lock, all in one DDL session: SQLite's is an exclusive
        transaction already; the servers take an explicit lock. The version
        is read under the lock, before anything else: a newer processcache
        may have upgraded the database a moment ago, and this release must
        not change it (SchemaError).
        """
        lock, unlock = SCHEMA_LOCK[self.db.provider.dialect]
        with self.database.transaction.ddl():
            if lock:
                self.db.execute(lock, {})
            try:
                state = stored_state(self.db)
                self.refuse_newer(state)
                yield state
            finally:
                if unlock:
                    self.db.execute(unlock, {})

    def create_schema(self) -> None:
        """Create what is missing and record this version and revision (the first process that gets to)."""
        with self.schema_change() as state:
            if self.schema_differences():
                self.db.schema.create_tables(self.db.provider, self.db.get_connection())
            if state is None:
                self.db.insert("processcache_meta", name="schema_version", value=str(SCHEMA_VERSION))
                self.db.insert("processcache_meta", name="schema_revision", value=str(SCHEMA_REVISION))

    def drop_schema(self) -> None:
        """Drop every processcache table with its data (``sync("new")``).

        Refused for a database a newer processcache wrote: this release
        knows only its own tables, and would leave the newer one's behind.
        """
        with self.schema_change():
            connection = self.db.get_connection()
            for name in self.db.schema.tables:  # as Pony's drop_all_tables, which opens a DDL session of its own
                if self.db.provider.table_exists(connection, name):
                    self.db.provider.drop_table(connection, name)


def read_state(db) -> tuple[int, int] | None:
    """(version, revision) from the meta table, inside the caller's session; None before any."""
    found = dict(db.select(STATE_SQL, {}))
    if "schema_version" not in found:
        return None
    return int(found["schema_version"]), int(found.get("schema_revision", 0))


def stored_state(db) -> tuple[int, int] | None:
    """`read_state`, and None without a meta table, looked for first: a failed SELECT ends a PostgreSQL transaction."""
    if not db.provider.table_exists(db.get_connection(), "processcache_meta"):
        return None
    return read_state(db)


def describe(state: tuple[int, int]) -> str:
    return f"{state[0]}.{state[1]}"


def id_list(ids) -> str:
    """Ids for ``IN (...)``, written as the integers they must be."""
    return ", ".join(str(int(i)) for i in ids)


def _log_filter(job_ids, machine, log_type, run_id, since, after_id) -> tuple[str, dict]:
    """The WHERE clause and parameters of `Store.logs` and `Store.count_logs`."""
    params = {"machine": machine, "log_type": log_type and log_type.value, "run_id": run_id,
              "since": since and db_time(since), "after_id": after_id}
    clauses = ["1 = 1"]
    if job_ids is not None:
        clauses.append(f"job_id IN ({id_list(job_ids)})")
    for name in ("machine", "log_type", "run_id"):
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
