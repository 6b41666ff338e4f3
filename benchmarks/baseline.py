"""The baseline: the same work written directly on each driver, same tables, pragmas and durability.

Each baseline opens its own driver connection to the database processcache
created, so the schema (tables, indexes, column types) is the same. It is
the leanest correct use of each driver, not a copy of processcache's
choices: every connection runs in autocommit mode, so a durable single
write is one statement, one round trip on a server (on MySQL/MariaDB
too, which processcache did not do before its storage rebuild), and a
read ends no transaction; the bulk write alone opens one. It imports
nothing of processcache, so the same baseline measures any release.
"""

import contextlib
import gc
import json
import random
from collections.abc import Iterator
from urllib.parse import urlsplit


class Raw:
    """A raw driver connection with the paramstyle and commit of its database."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.kind = parts.scheme.split("+")[0]
        if self.kind == "sqlite":
            import sqlite3

            self.conn = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
            for pragma in ("journal_mode = wal", "synchronous = normal", "busy_timeout = 30000"):
                self.conn.execute(f"PRAGMA {pragma}")
            self.mark = "?"
        elif self.kind.startswith("postgres"):
            import psycopg2

            self.conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                                         password=parts.password, dbname=parts.path.lstrip("/"))
            # Each statement its own transaction, one round trip, as processcache's single
            # writes and reads run; bulk() opens a transaction (psycopg2 sends BEGIN and COMMIT).
            self.conn.autocommit = True
            self.mark = "%s"
        else:
            import pymysql

            self.conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username,
                                        password=parts.password or "", database=parts.path.lstrip("/"),
                                        charset="utf8mb4", autocommit=True)
            self.mark = "%s"

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def write(self, sql: str, params) -> int:
        """One statement, its own committed transaction (a durable write) in autocommit mode."""
        cursor = self.conn.cursor()
        cursor.execute(self.sql(sql), params)
        return cursor.lastrowid

    def close(self) -> None:
        self.conn.close()


INSERT_ENTRY = ("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)")  # all parameters: PyMySQL batches only such an executemany
INSERT_LOG = ("INSERT INTO process_job_logs (job_id, run_id, machine, log_type, level, message, created_at)"
              " VALUES (?, NULL, ?, 'GENERIC', NULL, ?, ?)")
STAMP = "2026-11-24 03:00:00.000000"


def appends(raw: Raw, job_id: int, n: int) -> None:
    for i in range(n):
        raw.write(INSERT_ENTRY, (job_id, "m", f"key-{i % 100}", json.dumps({"n": i}), STAMP, None))


def bulk(raw: Raw, job_id: int, n: int) -> None:
    rows = [(job_id, "m", f"key-{i % 100}", json.dumps({"n": i}), STAMP, None) for i in range(n)]
    cursor = raw.conn.cursor()
    if raw.kind == "sqlite":
        cursor.execute("BEGIN")
        cursor.executemany(INSERT_ENTRY, rows)
        cursor.execute("COMMIT")
    elif raw.kind.startswith("postgres"):
        from psycopg2.extras import execute_values

        raw.conn.autocommit = False
        execute_values(cursor, "INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at,"
                       " expires_at) VALUES %s", rows, page_size=1000)
        raw.conn.commit()
        raw.conn.autocommit = True
    else:
        raw.conn.begin()
        cursor.executemany(raw.sql(INSERT_ENTRY), rows)  # PyMySQL batches these into multi-row INSERTs
        raw.conn.commit()


def load(raw: Raw, job_id: int) -> dict:
    """The tree: every live entry of a job on a machine, decoded and grouped by key, oldest first.

    The cyclic garbage collector is held while the rows are built, as
    processcache does: without it this baseline took twice as long (GC passes
    over the growing result), which flattered processcache's ratio.
    """
    cursor = raw.conn.cursor()
    cursor.execute(raw.sql("SELECT id, entry_key, entry_value, machine, created_at FROM process_cache"
                           " WHERE job_id = ? AND machine = ? ORDER BY id"), (job_id, "m"))
    tree: dict = {}
    with gc_paused():
        for row in cursor.fetchall():
            tree.setdefault(row[1], []).append((row[0], row[1], json.loads(row[2]), row[3], row[4]))
    return tree


def reads(raw: Raw, job_id: int, n: int, keys: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    # The key as a range, ordered by (key, id), keeps PostgreSQL on the key index before ANALYZE,
    # as processcache does (with "=" both sides read 100x slower there; see cachestore._filter).
    sql = raw.sql("SELECT id, entry_key, entry_value, machine, created_at FROM process_cache"
                  " WHERE job_id = ? AND machine = ? AND entry_key >= ? AND entry_key <= ? ORDER BY entry_key, id")
    cursor = raw.conn.cursor()
    for _ in range(n):
        key = f"key-{rng.randrange(keys)}"
        cursor.execute(sql, (job_id, "m", key, key))
        [json.loads(row[2]) for row in cursor.fetchall()]


def logs(raw: Raw, job_id: int, n: int) -> None:
    for i in range(n):
        raw.write(INSERT_LOG, (job_id, "m", f"log line {i}", STAMP))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held while a large result is built (it walks every new row again and again)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
