"""The schema: Pony's entities, the stored versions and revisions, and the changes between them.

Pony binds entity classes to one ``Database`` when they are declared, so they
are declared inside `declare`, once per `connect()`. The entities define the
tables, keys and indexes, which Pony creates; the stores read and write
these tables with plain SQL through the `Backend`. Table and column names
are part of the stored format.

Times a person reads (created, started, finished) are UTC timestamps taken
by the writing process. Times that decide who may do what across machines
(lease and entry expiry, heartbeats) are seconds since the epoch by the
database server's clock (`Dialect.now`), so machines whose clocks drift
still agree; those columns end in ``_at`` and hold a float.

A version changes tables or columns older processcache releases could not
use: they refuse a newer one. A revision changes only what they can use as
it is (an index; a nullable column they neither insert nor read), so a farm
upgrading one machine at a time keeps running. Pony never ALTERs, so each
change is an upgrade step here: a column added as the entities declare it
(Pony writes each database's SQL type), or Pony creating what is missing (a
new index) before the old is dropped. Schema changes run under a
database-wide lock, in one transaction where the database allows (SQLite
and PostgreSQL; MySQL commits each ALTER by itself, so every step first
checks whether it is done, and an interrupted upgrade resumes where it
stopped).
"""

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime

from pony.orm import LongStr, Optional, PrimaryKey, Required, Set, composite_index, composite_key
from pony.orm.dbapiprovider import DatabaseError

from ..errors import SchemaError
from .dialects import Dialect

#: The stored format: bumped whenever a table or column changes. A processcache
#: refuses a database of a newer version (it would not know its columns), reads
#: the version before anything else and changes nothing there (`Schema.refuse_newer`).
#: Stored in ``processcache_meta``; each bump comes with its steps in `STEPS`.
SCHEMA_VERSION = 2
#: Changes within a version that every processcache of that version can use as
#: they are (indexes): older releases ignore the ``schema_revision`` row, so a
#: farm can upgrade one machine at a time. Revision 1: the key index ends in id.
#: Revision 2: ``process_jobs.retired_at`` and ``process_jobs.scope``, both
#: nullable: an older release inserts jobs without them and never reads them.
#: This release reads ``retired_at`` only where the revision says it is there
#: (`History`), since a read-only command never upgrades.
#: The revision that added ``process_jobs.retired_at`` and ``process_jobs.scope``.
JOB_STATE_REVISION = (2, 2)
#: Revision 3: an index on (job, key, id) of ``process_cache`` for the key
#: reads of jobs of ``scope="job"``, which name no machine.
#: Revision 4 (run control): ``process_job_runs.exit_code``, ``.attempts`` and
#: ``.slot`` (nullable: older releases insert runs without them and never read
#: them), and two new tables, ``process_job_attempts`` and
#: ``process_job_slots``, whose job and run ids are plain columns, not foreign
#: keys, so that an older release deleting runs or jobs is never refused.
RUN_CONTROL_REVISION = (2, 4)
#: Revision 5 (monitoring): ``process_jobs.schedule``, ``.timezone``, ``.grace``
#: and ``.alert_after`` (nullable), and the tables ``process_job_alerts`` (each
#: job's alert state, so an alert is sent once per change however many
#: checkers run) and ``process_alert_deliveries`` (each message to a channel,
#: retried until delivered), with plain id columns as revision 4's.
MONITORING_REVISION = (2, 5)
#: Revision 6 (a ledger of millions of runs and logs): the runs get an index on
#: (job, machine, id, status), which `check`, `jobs` and `metrics` walk from
#: each job and machine's newest run (the status in the index: skipped runs cost
#: no table read), and one on (status, id) for ``runs --status`` and the runs
#: alive now; the logs' (job, created_at) index becomes (job, id), the order of
#: a job's newest page. Each a B-tree probe where a pass over every run or log was.
LEDGER_REVISION = (2, 6)
#: Revision 7 (judgements a pager can trust): ``process_jobs.lock_scope`` (the
#: job's lock, ``job`` or ``machine``: a job locked per machine is expected on
#: each machine that runs it) and ``.flaky`` (its ``flaky`` option, ``3/12``),
#: ``process_job_runs.waited`` (seconds a run of ``overlap="wait"`` waited for
#: its lock, kept out of its duration; -1 while it waits), all nullable, and
#: the table ``process_job_machines`` (a machine retired from a job), with a
#: plain job id as revision 4's tables.
JUDGEMENT_REVISION = (2, 7)
#: Revision 8 (runs recorded late): ``process_job_runs.spool_id``, nullable
#: and unique: the id a run kept in a machine's spool while the database was
#: down carries into the ledger (`replay`), so that it is stored once however
#: many processes replay it; NULL for every run recorded as it ran, which an
#: older release inserts and which the unique index lets be many.
SPOOL_REVISION = (2, 8)
#: Revision 9 (pauses): ``process_jobs.paused_until``, ``pause_reason`` and
#: ``paused_by``, nullable: a job paused by ``processcache pause`` skips its
#: runs on every machine until then (`pauses`); ``window_schedule``,
#: ``window_timezone``, ``window_seconds`` and ``window_reason``: a recurring
#: maintenance window that does the same at its times (``processcache
#: window``); and the table ``process_pools`` (a concurrency pool's size, set
#: by ``processcache pool set``); ``process_jobs.after_jobs``, the upstream
#: jobs its latest run declared (``after``). An older release ignores them.
PAUSE_REVISION = (2, 9)
SCHEMA_REVISION = 9

#: What this processcache writes: (version, revision).
CURRENT = (SCHEMA_VERSION, SCHEMA_REVISION)
#: The schema version and revision a database records.
_STATE_SQL = "SELECT name, value FROM processcache_meta WHERE name IN ('schema_version', 'schema_revision')"


def declare(db, dialect: Dialect) -> dict:
    """Declare processcache's entities on the Pony database *db*; return them by name."""

    def text(max_len=None, **options):
        options.setdefault("autostrip", False)  # keys and values must round-trip exactly
        sql_type = dialect.text_type(max_len)
        if sql_type is not None:
            options["sql_type"] = sql_type
        return options

    def timestamp(kind=Required, **options):
        return kind(datetime, precision=6, **options)  # MySQL drops microseconds without it

    class Group(db.Entity):
        _table_ = "processes"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 255, unique=True, **text(255))
        created_at = timestamp()
        jobs = Set("Job")

    class Job(db.Entity):
        _table_ = "process_jobs"
        id = PrimaryKey(int, auto=True)
        group = Required(Group, column="process_id")
        name = Required(str, 255, **text(255))
        created_at = timestamp()
        expect_every = Optional(float)  # seconds, from @job(expect_every=...)
        max_duration = Optional(float)  # seconds, from @job(max_duration=...)
        retired_at = timestamp(Optional)  # revision 2: `processcache jobs retire`; a later run undoes it
        scope = Optional(str, 16, nullable=True, **text(16))  # revision 2: the job's cache scope
        schedule = Optional(str, 255, nullable=True, **text(255))  # revision 5: its cron expression
        timezone = Optional(str, 64, nullable=True, **text(64))  # revision 5: the schedule's time zone
        grace = Optional(float)  # revision 5: seconds a due run may start late
        alert_after = Optional(int)  # revision 5: failed runs in a row before an alert
        lock_scope = Optional(str, 16, nullable=True, **text(16))  # revision 7: its lock, job or machine
        flaky = Optional(str, 16, nullable=True, **text(16))  # revision 7: its flaky option, "3/12" or "off"
        paused_until = timestamp(Optional)  # revision 9: `processcache pause`: its runs skip until then
        pause_reason = Optional(str, 255, nullable=True, **text(255))  # revision 9: why, as the pause said
        paused_by = Optional(str, 255, nullable=True, **text(255))  # revision 9: who paused it (user@machine)
        window_schedule = Optional(str, 255, nullable=True, **text(255))  # revision 9: a maintenance window's start
        window_timezone = Optional(str, 64, nullable=True, **text(64))  # revision 9: the zone it is read in
        window_seconds = Optional(float)  # revision 9: how long each window lasts
        window_reason = Optional(str, 255, nullable=True, **text(255))  # revision 9: why, as `window` said
        after_jobs = Optional(str, 1000, nullable=True, **text(1000))  # revision 9: its upstreams, "g/j,g/j"
        entries = Set("Entry")
        logs = Set("Log")
        runs = Set("Run")
        composite_key(group, name)

    class Entry(db.Entity):
        _table_ = "process_cache"
        id = PrimaryKey(int, size=64, auto=True)
        job = Required(Job, column="job_id")
        machine = Required(str, 255, **text(255))
        key = Required(str, 255, column="entry_key", **text(255))
        value = Required(LongStr, column="entry_value", lazy=False, **text())
        created_at = timestamp()
        expires_at = Optional(float)  # database clock; None never expires
        # A key's entries in order. Key reads filter the key as a range
        # (cachestore._filter), which only this index serves in order: with
        # "=", PostgreSQL without statistics took the index below and filtered
        # the whole job, 100x slower (revision 1; revision 0 ended at key).
        composite_index(job, machine, key, id)
        composite_index(job, machine, id)  # the whole tree, in order, without a sort
        # A key's entries of every machine, for jobs of scope="job" (revision 3).
        composite_index(job, key, id)

    class Run(db.Entity):
        _table_ = "process_job_runs"
        id = PrimaryKey(int, size=64, auto=True)
        job = Required(Job, column="job_id")
        machine = Required(str, 255, **text(255))
        pid = Required(int)
        status = Required(str, 16, **text(16))
        started_at = timestamp()
        finished_at = timestamp(Optional)
        expires_at = Optional(float)  # database clock: renewed by the heartbeat; past it a running run is lost
        duration = Optional(float)
        error = Optional(LongStr, lazy=False, nullable=True, **text())
        traceback = Optional(LongStr, lazy=False, nullable=True, **text())
        result = Optional(LongStr, lazy=False, nullable=True, **text())
        signal = Optional(int, column="exit_signal")  # version 2: the signal that terminated the run
        exit_code = Optional(int)  # revision 4: a command's exit code (`processcache exec`)
        attempts = Optional(int)  # revision 4: how many attempts a run with retries made
        slot = Optional(int, size=64)  # revision 4: the start of its once_per slot, database clock
        waited = Optional(float)  # revision 7: seconds it waited for its lock (overlap="wait"); -1 while it waits
        spool_id = Optional(str, 64, nullable=True, unique=True, **text(64))  # revision 8: recorded late, from a spool
        logs = Set("Log")
        composite_index(job, started_at)
        composite_index(job, machine, id, status)  # revision 6: each job and machine's newest runs
        composite_index(status, id)  # revision 6: the newest runs of a status

    class Attempt(db.Entity):  # revision 4: one row per attempt of a run with retries
        _table_ = "process_job_attempts"
        id = PrimaryKey(int, size=64, auto=True)
        run_id = Required(int, size=64, index=True)
        number = Required(int)
        status = Required(str, 16, **text(16))
        started_at = timestamp()
        finished_at = timestamp(Optional)
        duration = Optional(float)
        error = Optional(LongStr, lazy=False, nullable=True, **text())
        exit_code = Optional(int)
        signal = Optional(int, column="exit_signal")

    class Slot(db.Entity):  # revision 4: who claimed a job's once_per slot
        _table_ = "process_job_slots"
        job_id = Required(int, size=64)
        slot = Required(int, size=64)
        run_id = Required(int, size=64)
        PrimaryKey(job_id, slot)

    class Pool(db.Entity):  # revision 9: a concurrency pool's size (`processcache pool set`)
        _table_ = "process_pools"
        name = PrimaryKey(str, 255, **text(255))
        size = Required(int)

    class RetiredMachine(db.Entity):  # revision 7: a machine retired from a job (`jobs retire --machine`)
        _table_ = "process_job_machines"
        job_id = Required(int, size=64)
        machine = Required(str, 255, **text(255))
        retired_at = timestamp()
        PrimaryKey(job_id, machine)

    class Alert(db.Entity):  # revision 5: a job's alert state, changed by whichever checker sees the change first
        _table_ = "process_job_alerts"
        job_id = PrimaryKey(int, size=64)
        state = Required(str, 16, **text(16))  # ok or failing
        kind = Optional(str, 16, nullable=True, **text(16))  # what is wrong: failed, missed, lost...
        detail = Optional(LongStr, lazy=False, nullable=True, **text())
        failures = Required(int)  # failed runs in a row, when it changed
        run_id = Optional(int, size=64)
        changed_at = Optional(float)  # database clock
        muted_until = Optional(float)  # database clock: `processcache jobs mute`

    class Delivery(db.Entity):  # revision 5: one message to one channel, retried until delivered
        _table_ = "process_alert_deliveries"
        id = PrimaryKey(int, size=64, auto=True)
        job_id = Required(int, size=64)
        channel = Required(LongStr, lazy=False, **text())  # the URL: shown masked only
        event = Required(str, 16, **text(16))  # failing or recovered
        body = Required(LongStr, lazy=False, **text())  # the JSON sent
        status = Required(str, 16, **text(16), index=True)  # pending, sending, sent or failed
        attempts = Required(int)
        next_at = Optional(float)  # database clock: when a pending one is tried (again)
        last_error = Optional(LongStr, lazy=False, nullable=True, **text())
        created_at = timestamp()
        sent_at = timestamp(Optional)

    class Log(db.Entity):
        _table_ = "process_job_logs"
        id = PrimaryKey(int, size=64, auto=True)
        job = Required(Job, column="job_id")
        run = Optional(Run, column="run_id")
        machine = Required(str, 255, **text(255))
        type = Required(str, 16, column="log_type", **text(16))
        level = Optional(str, 16, nullable=True, **text(16))
        message = Optional(LongStr, lazy=False, **text())
        created_at = timestamp()
        composite_index(job, id)  # revision 6: a job's newest logs (revision 5's index was on (job, created_at))

    class Lock(db.Entity):
        _table_ = "process_job_locks"
        name = PrimaryKey(str, 255, **text(255))
        machine = Optional(str, 255, nullable=True, **text(255))
        pid = Optional(int)
        run_id = Optional(int, size=64)
        acquired_at = Optional(float)  # database clock
        expires_at = Optional(float)  # database clock; NULL or past means free

    class Meta(db.Entity):
        _table_ = "processcache_meta"
        name = PrimaryKey(str, 64, **text(64))
        value = Required(str, 255, **text(255))

    return {e.__name__: e for e in (Group, Job, Entry, Run, Attempt, Slot, RetiredMachine, Alert, Delivery, Log,
                                    Lock, Meta)}


class Schema:
    """The schema of one database: its recorded state, what it lacks, and the changes that bring it in line."""

    def __init__(self, backend, url: str) -> None:
        self.backend = backend
        self.pony = backend.pony
        self.url = url

    def state(self) -> tuple[int, int] | None:
        """The (version, revision) recorded in the database, or None where there is none (yet)."""
        try:
            with self.backend.transaction():
                return self._read_state()
        except DatabaseError as exc:
            if self.backend.is_disconnect(exc):
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
            raise SchemaError(f"{self.url} has schema version {state[0]}, written by a newer processcache"
                              f" (this release knows version {SCHEMA_VERSION}): upgrade processcache on this machine"
                              " to use it; nothing was changed")

    def differences(self) -> list[str]:
        """What the database lacks against this version's schema ([] when none).

        Reads the version first and raises SchemaError for a database written
        by a newer processcache: its tables are not this release's to compare,
        let alone to create. A newer revision's indexes are not compared
        either: it may have replaced some, and a revision is usable as it is.
        """
        differences = []
        with self.backend.transaction():
            connection = self.backend.reading_connection()
            provider = self.pony.provider
            state = self._stored_state()
            self.refuse_newer(state)
            for name, table in self.pony.schema.tables.items():
                if not provider.table_exists(connection, name):
                    differences.append(f"table {name} is missing")
                    continue
                present = self._columns(name)
                differences += [f"column {name}.{column.name} is missing"
                                for column in table.column_list if column.name.lower() not in present]
                differences += [
                    f"index {index.name} on {name} is missing" for index in table.indexes.values()
                    if not (index.is_pk or index.is_unique) and (state is None or state <= CURRENT)
                    and not index.exists(provider, connection, False)
                ]
        if not differences and state is not None and state < CURRENT:
            differences = [f"schema {describe(state)} is older than {describe(CURRENT)}: run `processcache db upgrade`"]
        return differences

    @contextlib.contextmanager
    def change(self) -> Iterator[tuple[int, int] | None]:
        """A DDL session under the schema lock; yields the (version, revision) stored, None for a new database.

        Processes changing the schema at once take turns under a
        database-wide lock, all in one DDL session: SQLite's is an exclusive
        transaction already; the servers take an explicit lock. The version
        is read under the lock, before anything else: a newer processcache
        may have upgraded the database a moment ago, and this release must
        not change it (SchemaError).
        """
        lock, unlock = self.backend.dialect.schema_lock
        with self.backend.ddl():
            if lock:
                self.backend.select(lock)
            try:
                state = self._stored_state()
                self.refuse_newer(state)
                yield state
            finally:
                if unlock:
                    self.backend.select(unlock)

    def create(self) -> None:
        """Create what is missing and record this version and revision (the first process that gets to).

        A table of processcache's name that is not processcache's (no version
        recorded, columns of its own: an application's ``processes``, or the
        original process-cache's) is refused in one line, before anything is
        created, with the way to keep processcache's tables apart.
        """
        with self.change() as state:
            schema = self.backend.config.schema
            if schema is not None:
                self.backend.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            differences = self.differences()
            if state is None:
                self._refuse_foreign(differences)
            if differences:
                self._create_missing()
            if state is None:
                self._record("schema_version", SCHEMA_VERSION)
                self._record("schema_revision", SCHEMA_REVISION)

    def drop(self) -> None:
        """Drop every processcache table with its data (``sync("new")``).

        Refused for a database a newer processcache wrote: this release
        knows only its own tables, and would leave the newer one's behind.
        """
        with self.change():
            connection = self.pony.get_connection()
            for name in self.pony.schema.tables:  # as Pony's drop_all_tables, which opens a DDL session of its own
                if self.pony.provider.table_exists(connection, name):
                    self.pony.provider.drop_table(connection, name)

    def upgrade(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Bring the database to this version and revision; return the (version, revision) before and after.

        Refuses newer versions (`change` reads the version first); a newer
        revision of this version is left as it is.
        """
        with self.change() as start:
            if start is None:
                raise SchemaError(f"{self.url} has no processcache tables to upgrade:"
                                  " `processcache db sync` creates them")
            if start >= CURRENT:
                return start, start
            for state, step in STEPS:
                if start < state:
                    step(self)
            self._record("schema_version", SCHEMA_VERSION)
            self._record("schema_revision", SCHEMA_REVISION)
        return start, CURRENT

    def _refuse_foreign(self, differences: list[str]) -> None:
        """SchemaError when a table processcache would create is there already with other columns: not ours.

        The original process-cache's tables are named as such, with the way to bring their data over.
        """
        from .original import is_original  # only a refused database needs it: no cost at every start

        foreign = sorted({difference.split()[1].split(".")[0] for difference in differences
                          if difference.startswith("column ")})
        original = [table for table in foreign if is_original(table, self._columns(table))]
        if original:
            raise SchemaError(f"{self.url} holds the original process-cache's tables ({', '.join(original)}),"
                              " which processcache never uses in place: nothing was changed; import them into a"
                              f" database of processcache's own with `processcache db import-original {self.url}"
                              " --database URL`, or add --rename-original to move them aside and use this one")
        if foreign:
            names = ", ".join(foreign)
            raise SchemaError(f"{self.url} holds a table named {names} that is not processcache's (its columns"
                              f" differ, and no processcache version is recorded): nothing was changed; keep"
                              f" processcache's tables apart: {self.backend.dialect.apart}")

    # -- steps' tools -------------------------------------------------------------------

    def _columns(self, table: str) -> set[str]:
        """The columns *table* has, lower case (the one probe: every database answers a SELECT's description)."""
        cursor = self.backend.reading_connection().cursor()
        cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return {column[0].lower() for column in cursor.description}

    def _create_missing(self) -> None:
        self.pony.schema.create_tables(self.pony.provider, self.pony.get_connection())

    def _record(self, name: str, value: int) -> None:
        params = {"name": name, "value": str(value)}
        if not self.backend.execute("UPDATE processcache_meta SET value = $value WHERE name = $name", params):
            self.backend.insert("processcache_meta", params)

    def _read_state(self) -> tuple[int, int] | None:
        found = dict(self.backend.select(_STATE_SQL))
        if "schema_version" not in found:
            return None
        return int(found["schema_version"]), int(found.get("schema_revision", 0))

    def _stored_state(self) -> tuple[int, int] | None:
        """`_read_state`, None without a meta table, looked for first: a failed SELECT ends a PostgreSQL transaction."""
        if not self.pony.provider.table_exists(self.backend.reading_connection(), "processcache_meta"):
            return None
        return self._read_state()


def describe(state: tuple[int, int]) -> str:
    """A (version, revision) as people write it: ``2.3``."""
    return f"{state[0]}.{state[1]}"


def _add_columns_as_declared(table: str, *columns: str) -> Callable[[Schema], None]:
    """Add *columns* as this version's entities declare them, in each database's own SQL type.

    Pony writes the definition (``DATETIME``, ``TIMESTAMP`` or
    ``DATETIME(6)``; MySQL's text with its character set and collation), so
    an upgraded table is the same as a new one, on every database.
    """

    def step(schema: Schema) -> None:
        declared = schema.pony.schema.tables[table].column_dict
        present = schema._columns(table)
        for column in columns:
            if column not in present:
                schema.backend.execute(f"ALTER TABLE {table} ADD COLUMN {declared[column].get_sql()}")

    return step


def _add_unique_column(table: str, column: str) -> Callable[[Schema], None]:
    """Add *column* as declared, its uniqueness as an index of its own (SQLite adds no UNIQUE column)."""

    def step(schema: Schema) -> None:
        declared = schema.pony.schema.tables[table].column_dict[column].get_sql()
        if column not in schema._columns(table):
            schema.backend.execute(f"ALTER TABLE {table} ADD COLUMN {declared.removesuffix(' UNIQUE')}")
        name = f"uq_{table}__{column}"
        if not schema.pony.provider.index_exists(schema.pony.get_connection(), table, name, case_sensitive=False):
            schema.backend.execute(f"CREATE UNIQUE INDEX {name} ON {table} ({column})")

    return step


def _replace_index(table: str, old: str | None = None) -> Callable[[Schema], None]:
    """Create this version's missing indexes, then drop *old*, if any (reads always have one)."""

    def step(schema: Schema) -> None:
        schema._create_missing()  # only what is missing: here, the new index
        provider = schema.pony.provider
        if old is not None and provider.index_exists(schema.pony.get_connection(), table, old, case_sensitive=False):
            schema.backend.execute(schema.backend.dialect.drop_index(old, table))

    return step


#: (version, revision) a step brings a database to, and the step, in order.
#: Each step first checks whether it is done, so an interrupted upgrade resumes.
STEPS = [
    ((2, 0), _add_columns_as_declared("process_job_runs", "exit_signal")),
    ((2, 1), _replace_index("process_cache", "idx_process_cache__job_id_machine_entry_key")),
    ((2, 2), _add_columns_as_declared("process_jobs", "retired_at", "scope")),
    ((2, 3), _replace_index("process_cache")),
    (RUN_CONTROL_REVISION, _add_columns_as_declared("process_job_runs", "exit_code", "attempts", "slot")),
    (RUN_CONTROL_REVISION, Schema._create_missing),  # the attempts and slots tables
    (MONITORING_REVISION, _add_columns_as_declared("process_jobs", "schedule", "timezone", "grace", "alert_after")),
    (MONITORING_REVISION, Schema._create_missing),  # the alerts and deliveries tables
    (LEDGER_REVISION, _replace_index("process_job_logs", "idx_process_job_logs__job_id_created_at")),
    (JUDGEMENT_REVISION, _add_columns_as_declared("process_jobs", "lock_scope", "flaky")),
    (JUDGEMENT_REVISION, _add_columns_as_declared("process_job_runs", "waited")),
    (JUDGEMENT_REVISION, Schema._create_missing),  # the retired machines' table
    (SPOOL_REVISION, _add_unique_column("process_job_runs", "spool_id")),
    (PAUSE_REVISION, _add_columns_as_declared("process_jobs", "paused_until", "pause_reason", "paused_by",
                                              "window_schedule", "window_timezone", "window_seconds",
                                              "window_reason", "after_jobs")),
    (PAUSE_REVISION, Schema._create_missing),  # the pools' table
]
