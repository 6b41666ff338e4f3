"""The few SQL fragments that differ between SQLite, PostgreSQL and MySQL.

Keyed by Pony's ``provider.dialect``. Everything else processcache writes is
plain SQL that the three accept as it is.
"""

#: The SQL function SQLite's clock adds: how far tests moved its time forward
#: (`clock.moved`, 0.0 otherwise), defined on each connection (`database.py`).
#: Declared deterministic, SQLite calls it once per statement, as it reads
#: julianday('now') once, not once per row.
SQLITE_MOVED = "processcache_moved"

#: The database server's clock as seconds since the epoch (a float). Leases,
#: heartbeats and expiry are judged by it, never by the machines' clocks.
NOW = {
    "SQLite": f"((julianday('now') - 2440587.5) * 86400.0 + {SQLITE_MOVED}())",
    "PostgreSQL": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
    "MySQL": "CAST(UNIX_TIMESTAMP(SYSDATE(6)) AS DOUBLE)",
}

#: Statements that take and release the database-wide schema lock (None: not
#: needed, or released with the transaction). SQLite's DDL session is an
#: exclusive transaction already.
SCHEMA_LOCK = {
    "SQLite": (None, None),
    "PostgreSQL": ("SELECT pg_advisory_xact_lock(7013370001)", None),
    "MySQL": ("SELECT GET_LOCK('processcache_schema', 600)", "SELECT RELEASE_LOCK('processcache_schema')"),
}

#: Locks one job's row until the transaction ends, so writers that replace a
#: key of that job take turns (SQLite's writers take turns already).
LOCK_JOB_ROW = {
    "SQLite": None,
    "PostgreSQL": "SELECT id FROM process_jobs WHERE id = $job_id FOR UPDATE",
    "MySQL": "SELECT id FROM process_jobs WHERE id = $job_id FOR UPDATE",
}

#: A stored UTC time stamp as the driver should read it. psycopg2 builds an
#: aware datetime in C from a ``timestamptz``, much faster than setting the
#: zone of each naive one in Python (a third of a 100,000-entry load).
AWARE_TIME = {
    "SQLite": "{}",
    "PostgreSQL": "({} AT TIME ZONE 'UTC')",
    "MySQL": "{}",
}

#: Appended to a SELECT of lock rows that a write depends on: the row cannot
#: change hands until the transaction ends, so a run whose lease is taken
#: over meanwhile cannot slip a write in after the takeover (`fence.py`).
#: SQLite's writers take turns already.
FOR_SHARE = {
    "SQLite": "",
    "PostgreSQL": " FOR SHARE",
    "MySQL": " LOCK IN SHARE MODE",
}

#: Appended to a SELECT of a row the transaction will change.
FOR_UPDATE = {
    "SQLite": "",
    "PostgreSQL": " FOR UPDATE",
    "MySQL": " FOR UPDATE",
}
