"""The Pony entities, declared on a database chosen at run time.

Pony binds entity classes to one ``Database`` when they are declared, so they
are declared inside `define_entities`, once per `connect()`. The entities
define the schema (tables, keys, indexes); the hot paths in `store.py` read
and write these tables with plain SQL through the same Pony database.

Table and column names are part of the stored format: `store.py` names them.

Times a person reads (created, started, finished) are UTC timestamps taken
by the writing process. Times that decide who may do what across machines
(lease and entry expiry, heartbeats) are seconds since the epoch by the
database server's clock (`dialects.NOW`), so machines whose clocks drift
still agree; those columns end in ``_at`` and hold a float.
"""

from datetime import datetime

from pony.orm import LongStr, Optional, PrimaryKey, Required, Set, composite_index, composite_key

#: The stored format: bumped whenever a table or column changes. A processcache
#: refuses a database of a newer version (it would not know its columns), reads
#: the version before anything else and changes nothing there (`Store.refuse_newer`).
#: Stored in ``processcache_meta``; each bump comes with its steps in `upgrades.STEPS`.
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
SCHEMA_REVISION = 3

# MySQL compares text case- and accent-insensitively by default, which would
# make the keys "Token" and "token" one key; its 3-byte `utf8` cannot hold
# emoji. Every text column there is utf8mb4 with a binary collation.
_MYSQL_TEXT = {
    "varchar": "VARCHAR({}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    "longtext": "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
}


def define_entities(db, provider: str):
    """Declare processcache's entities on the Pony database *db*; return them by name."""

    def text(max_len=None, **options):
        options.setdefault("autostrip", False)  # keys and values must round-trip exactly
        if provider == "mysql":
            kind = "longtext" if max_len is None else "varchar"
            options["sql_type"] = _MYSQL_TEXT[kind].format(max_len)
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
        logs = Set("Log")
        composite_index(job, started_at)

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
        composite_index(job, created_at)

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

    return {e.__name__: e for e in (Group, Job, Entry, Run, Log, Lock, Meta)}
