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


def query(url: str, sql: str) -> list[tuple]:
    """The rows *sql* reads from *url* through the driver alone (processcache would refuse the original's tables)."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(urlsplit(url).path)) as conn:
            return conn.execute(sql).fetchall()
    if url.startswith("postgres"):
        with contextlib.closing(postgres(url)) as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("`", '"'))
            return cursor.fetchall()
    with contextlib.closing(mysql(url)) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def entries(url: str, prefix: str = "") -> list[tuple]:
    """The original's cache entries in id order: (process, job, machine, key, value, createdAt)."""
    return query(url, f"SELECT p.name, j.name, c.machine, c.`key`, c.value, c.`createdAt` FROM {prefix}process_cache c"
                      f" JOIN {prefix}process_jobs j ON j.id = c.job JOIN {prefix}processes p ON p.id = j.process"
                      " ORDER BY c.id")


def logs(url: str, prefix: str = "") -> list[tuple]:
    """The original's logs in id order: (process, job, machine, type, message, createdAt)."""
    return query(url, "SELECT p.name, j.name, l.machine, l.type, l.message, l.`createdAt`"
                      f" FROM {prefix}process_job_logs l"
                      f" JOIN {prefix}process_jobs j ON j.id = l.job JOIN {prefix}processes p ON p.id = j.process"
                      " ORDER BY l.id")


def grow(url: str, jobs: int, logs_each: int) -> None:
    """Add *jobs* jobs of *logs_each* logs to the original's database at *url* (MariaDB), as its code writes them."""
    with contextlib.closing(mysql(url)) as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO processes (name, createdAt, updatedAt) VALUES ('bulk', 1564200000, 0)")
        process = cursor.lastrowid
        for number in range(jobs):
            cursor.execute("INSERT INTO process_jobs (process, name, createdAt, updatedAt) VALUES (%s, %s, %s, 0)",
                           (process, f"job-{number}", 1564200000))
            job = cursor.lastrowid
            # Placeholders only: PyMySQL sends one multi-row INSERT then, not a statement (and a commit) a row.
            cursor.executemany("INSERT INTO process_job_logs (process, job, machine, type, message, createdAt,"
                               " updatedAt) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                               [(process, job, "bulk-host", "GENERIC", f"line {n}", 1564200000 + n, 0)
                                for n in range(logs_each)])

