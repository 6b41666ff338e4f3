"""The databases the original process-cache wrote (tests/fixtures/original/), loaded where a test wants them.

The dumps are the original's own output: make.sh beside them built the
original and ran its code against MariaDB, SQLite and PostgreSQL (see
write.js there for what it holds).
"""

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "original"
MYSQL_DUMP = FIXTURES / "original.sql"
SQLITE_DUMP = FIXTURES / "original.sqlite.sql"
POSTGRES_DUMP = FIXTURES / "original.postgres.sql"
#: What the dump holds, as the original counted it.
PROCESSES, JOBS, ENTRIES, LOGS = 5, 5, 19, 36
TABLES = ("process_cache", "process_job_logs", "process_jobs", "processes")


def load(url: str) -> None:
    """Load the original's database into the empty database *url*, from the dump of the same dialect."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(urlsplit(url).path)) as conn:
            conn.executescript(SQLITE_DUMP.read_text("utf-8"))
        return
    if url.startswith("postgres"):
        with contextlib.closing(postgres(url)) as conn, conn.cursor() as cursor:
            cursor.execute(POSTGRES_DUMP.read_text("utf-8"))
        return
    with contextlib.closing(mysql(url)) as conn, conn.cursor() as cursor:
        cursor.execute(MYSQL_DUMP.read_text("utf-8"))
        while cursor.nextset():  # each statement's result read, so each one ran
            pass


def mysql(url: str):
    """A PyMySQL connection to *url* that takes many statements at once."""
    import pymysql
    from pymysql.constants import CLIENT

    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username,
                           password=parts.password or "", database=parts.path.lstrip("/"), charset="utf8mb4",
                           autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)


def postgres(url: str):
    """A psycopg2 connection to *url*, committing each statement."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def tables(url: str) -> list[str]:
    """The tables *url* holds, sorted."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(urlsplit(url).path)) as conn:
            return sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if url.startswith("postgres"):
        with contextlib.closing(postgres(url)) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return sorted(row[0] for row in cursor.fetchall())
    with contextlib.closing(mysql(url)) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        return sorted(row[0] for row in cursor.fetchall())
