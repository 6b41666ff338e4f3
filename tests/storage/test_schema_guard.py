"""Databases this release must not change or use as they are: one a newer processcache wrote, one missing a table.

During a rolling upgrade the machines still on the older release meet a
database the newer release has changed already; an older release that
"repaired" it into its own shape would take other lock tables than the
newer machines, and both would run the job.

A table an operator dropped by hand makes every run fail at its first use
of it: with one line that says how to see and repair it, and without a run
left `running`.
"""

import contextlib
import sqlite3
from urllib.parse import urlsplit

import pytest
from cli_helpers import cli

from processcache import CacheContext, SchemaError, cache_session, connect
from processcache.storage.schema import SCHEMA_REVISION, SCHEMA_VERSION

NEWER = SCHEMA_VERSION + 1
REFUSED = f"has schema version {NEWER}, written by a newer processcache"
TREE_INDEX = "idx_process_cache__job_id_machine_id"


# -- point 2: a newer schema is never changed ----------------------------------------------------------------------


def test_a_database_a_newer_release_changed_is_refused_by_every_command_and_left_as_it_was(backend_url):
    """The rolling upgrade: this machine's release starts after another machine's newer one changed the schema."""
    fill(backend_url)
    newer_release_upgrades(backend_url)
    before = dump(backend_url)
    with pytest.raises(SchemaError, match=REFUSED) as refused:
        connect(backend_url)
    assert "\n" not in str(refused.value) and "nothing was changed" in str(refused.value)
    for command in (["db", "sync", "--mode", "create"], ["db", "sync", "--mode", "check"], ["db", "upgrade"],
                    ["db", "sync", "--mode", "new", "--yes"], ["db", "sync"]):
        result = cli(*command, "-d", backend_url)
        assert result.returncode == 1 and result.stdout == "", (command, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert REFUSED in line and "upgrade processcache on this machine" in line, (command, line)
    assert dump(backend_url) == before


def test_a_database_opened_before_a_newer_release_changed_it_is_not_changed_by_sync_or_upgrade(backend_url):
    """A long-lived process (a scheduler) holds its Database while another machine upgrades the schema."""
    with connect(backend_url) as db:
        fill(backend_url)
        newer_release_upgrades(backend_url)
        before = dump(backend_url)
        for attempt in (lambda: db.sync("create"), lambda: db.sync("check"), lambda: db.sync("new"), db.upgrade):
            with pytest.raises(SchemaError, match=REFUSED):
                attempt()
    assert dump(backend_url) == before


def test_a_newer_revision_is_used_as_it_is_and_its_indexes_are_not_put_back(backend_url):
    """A revision changes only indexes, which older releases of the version use as they are: not theirs to recreate."""
    with connect(backend_url) as db:
        fill(backend_url)
        db.backend.execute(db.backend.dialect.drop_index(TREE_INDEX, "process_cache"))
        db.backend.execute("UPDATE processcache_meta SET value = $newer WHERE name = 'schema_revision'",
                           {"newer": str(SCHEMA_REVISION + 1)})
    before = dump(backend_url)
    for command in (["db", "sync", "--mode", "check"], ["db", "sync"], ["db", "upgrade"]):
        result = cli(*command, "-d", backend_url)
        assert result.returncode == 0, (command, result.stderr)
    with connect(backend_url) as db:
        assert [e.value for e in CacheContext(db, "guard", "probe", "m1").get_cache("seen")] == [1]
    assert dump(backend_url) == before


def fill(url: str) -> None:
    """A run with an entry, a log and its lock: rows whose every byte must survive."""
    with cache_session("guard", "probe", machine="m1", database=url, overlap="skip") as ctx:
        ctx.create_cache("seen", 1)
        ctx.create_log("filled")


def newer_release_upgrades(url: str) -> None:
    """What a newer processcache's upgrade might do: rename the lock table, drop an index, bump the version."""
    with raw(url) as connection:
        cursor = connection.cursor()
        cursor.execute("ALTER TABLE process_job_locks RENAME TO process_job_leases")
        cursor.execute(f"DROP INDEX {TREE_INDEX}" + (" ON process_cache" if kind(url) == "mysql" else ""))
        cursor.execute(f"UPDATE processcache_meta SET value = '{NEWER}' WHERE name = 'schema_version'")


# -- point 9: a table dropped by hand ---------------------------------------------------------------------------


JOB = '''
from processcache import job

@job("guard", "probe")
def probe(ctx):
    ctx.create_cache("seen", len(ctx.get_cache("seen")) + 1)
    ctx.create_log("probed")
'''
RUN_TABLES = ("process_cache", "process_job_logs", "process_job_locks")


@pytest.mark.parametrize("table", [*RUN_TABLES, "process_job_runs", "process_jobs", "processes"])
def test_a_table_dropped_by_hand_fails_the_run_with_one_line_and_leaves_no_run_running(backend_url, table, tmp_path):
    job_file = tmp_path / "probe_job.py"
    job_file.write_text(JOB)
    first = cli("run", f"{job_file}:probe", "-d", backend_url)
    assert first.returncode == 0, first.stderr
    with raw(backend_url) as connection:
        drop(connection, kind(backend_url), table)
    result = cli("run", f"{job_file}:probe", "-d", backend_url)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "`processcache db sync --mode check`" in line and table in line and "Traceback" not in line, line
    if table == "process_job_runs":
        return  # nothing can be recorded: the one line is all there is
    with raw(backend_url) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT status, error FROM process_job_runs ORDER BY id")
        runs = cursor.fetchall()
    if table in RUN_TABLES:  # the run was recorded before the table was needed: it failed, saying why
        assert [status for status, _ in runs] == ["succeeded", "failed"]
        assert "`processcache db sync --mode check`" in runs[1][1]
    else:  # the job's own rows are gone: no run could start
        assert [status for status, _ in runs] == ["succeeded"]


def test_a_dropped_table_is_listed_by_check_and_recreated_by_sync(backend_url):
    """What the one line says to do works."""
    fill(backend_url)
    with raw(backend_url) as connection:
        drop(connection, kind(backend_url), "process_job_logs")
    check = cli("db", "sync", "--mode", "check", "-d", backend_url)
    assert check.returncode == 1 and "table process_job_logs is missing" in check.stdout, check.stderr
    assert cli("db", "sync", "-d", backend_url).returncode == 0
    with cache_session("guard", "probe", machine="m1", database=backend_url) as ctx:
        ctx.create_log("after the repair")
        assert [log.message for log in ctx.get_logs()] == ["after the repair"]


def drop(connection, backend: str, table: str) -> None:
    """DROP TABLE as an operator would: PostgreSQL wants CASCADE for a table others refer to, MySQL no checks."""
    cursor = connection.cursor()
    if backend == "mysql":
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
    cursor.execute(f"DROP TABLE {table}" + (" CASCADE" if backend == "postgres" else ""))


# -- the database as it is, read without processcache -----------------------------------------------------------


def kind(url: str) -> str:
    scheme = urlsplit(url).scheme
    return "sqlite" if scheme == "sqlite" else "postgres" if scheme.startswith("postgres") else "mysql"


def sqlite_path(url: str) -> str:
    return "/" + urlsplit(url).path.lstrip("/")


@contextlib.contextmanager
def raw(url: str):
    """A driver connection in autocommit mode, for what an operator does by hand and for dumps."""
    parts = urlsplit(url)
    backend = kind(url)
    if backend == "sqlite":
        connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    elif backend == "postgres":
        import psycopg2

        connection = psycopg2.connect(dbname=parts.path.lstrip("/"), host=parts.hostname, port=parts.port or 5432,
                                      user=parts.username, password=parts.password)
        connection.autocommit = True
    else:
        import pymysql

        connection = pymysql.connect(database=parts.path.lstrip("/"), host=parts.hostname, port=parts.port or 3306,
                                     user=parts.username, password=parts.password or "", autocommit=True)
    try:
        yield connection
    finally:
        if backend == "sqlite":  # every write in the file itself, so that its bytes tell
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()


_SERVER_SCHEMA = {
    "postgres": [
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    ],
    "mysql": [
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
        "SELECT table_name, column_name, ordinal_position, column_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY 1, 2",
        "SELECT table_name, index_name, seq_in_index, column_name, non_unique FROM information_schema.statistics"
        " WHERE table_schema = DATABASE() ORDER BY 1, 2, 3",
    ],
}


def dump(url: str):
    """Everything a change could touch: for SQLite the file's bytes and its SQL dump; for a server its tables,
    columns and indexes as information_schema has them, and every row of every table."""
    backend = kind(url)
    with raw(url) as connection:
        if backend == "sqlite":
            text = list(connection.iterdump())
    if backend == "sqlite":
        with open(sqlite_path(url), "rb") as file:
            return file.read(), text
    with raw(url) as connection:
        cursor = connection.cursor()
        schema = []
        for query in _SERVER_SCHEMA[backend]:
            cursor.execute(query)
            schema.append(cursor.fetchall())
        rows = {}
        for table, _type in schema[0]:
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            rows[table] = cursor.fetchall()
    assert rows["processcache_meta"] and rows["process_cache"]  # the dump holds what it should
    return schema, rows


@pytest.mark.parametrize("table", ["process_cache", "process_job_runs", "process_job_locks"])
def test_read_commands_on_a_dropped_table_say_so_in_one_line(backend_url, table):
    fill(backend_url)
    with raw(backend_url) as connection:
        drop(connection, kind(backend_url), table)
    commands = {"process_cache": [["jobs"], ["cache", "list", "guard/probe", "-a"], ["cache", "export", "guard/probe"]],
                "process_job_runs": [["check"], ["runs"], ["jobs"]],
                "process_job_locks": [["locks"], ["locks", "break", "guard/probe", "--yes"]]}[table]
    for args in commands:
        result = cli(*args, "-d", backend_url)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert f"table {table} is missing" in result.stderr and "db sync --mode check" in result.stderr, args
