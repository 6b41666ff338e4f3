"""connect(), the schema and its sync modes, SQLite settings, and connection errors."""

import os
import stat
import subprocess
import sys

import pytest

import processcache
from processcache import DatabaseUnavailableError, SchemaError, cache_session, connect
from processcache.storage.schema import SCHEMA_VERSION


def count(db, table):
    return db.backend.values(f"SELECT COUNT(*) FROM {table}", {})[0]


def test_tables_are_created_on_first_use(backend_url):
    with connect(backend_url, create=False) as bare:
        assert "table process_cache is missing" in bare.sync("check")
    with cache_session("g", "j", machine="m", database=backend_url) as ctx:
        ctx.create_cache("k", 1)
    with connect(backend_url, create=False) as db:
        assert db.sync("check") == []


def test_sync_create_keeps_data(backend):
    with cache_session("g", "j", machine="m", database=backend) as ctx:
        ctx.create_cache("k", "kept")
    assert backend.sync("create") == []
    assert count(backend, "process_cache") == 1


def test_sync_new_drops_and_recreates(backend):
    with cache_session("g", "j", machine="m", database=backend) as ctx:
        ctx.create_cache("k", "gone")
    backend.sync("new")
    assert backend.sync("check") == []
    assert count(backend, "process_cache") == 0
    assert count(backend, "processes") == 0


def test_sync_check_reports_a_missing_table_and_changes_nothing(backend):
    backend.backend.execute("DROP TABLE process_job_logs")
    assert backend.sync("check") == ["table process_job_logs is missing"]
    assert backend.sync("check") == ["table process_job_logs is missing"]
    assert backend.sync("create") == ["table process_job_logs is missing"]
    assert backend.sync("check") == []


def test_an_unknown_sync_mode_is_refused(backend):
    with pytest.raises(SchemaError, match="use create, check or new"):
        backend.sync("alter")


def test_a_database_from_a_newer_version_is_refused_untouched(backend_url):
    with connect(backend_url) as db:
        db.backend.execute("UPDATE processcache_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(SchemaError, match="schema version 99, written by a newer processcache"):
        connect(backend_url)


def test_the_schema_version_is_recorded(backend):
    found = backend.backend.values("SELECT value FROM processcache_meta WHERE name = 'schema_version'", {})
    assert found == [str(SCHEMA_VERSION)]


def test_a_database_is_a_context_manager_and_hides_the_password():
    with connect("sqlite://:memory:") as db:
        assert repr(db) == "<processcache.Database sqlite://:memory:>"


def pragma(db, name):
    return db.backend.select(f"PRAGMA {name}", {})[0][0]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    with connect(f"sqlite:///{tmp_path}/w.db") as db:
        assert pragma(db, "journal_mode") == "wal"
        assert pragma(db, "synchronous") == 1  # NORMAL
        assert pragma(db, "busy_timeout") == 30000


def test_sqlite_synchronous_full_on_request(tmp_path):
    with connect(f"sqlite:///{tmp_path}/w.db?synchronous=full") as db:
        assert pragma(db, "synchronous") == 2


def test_a_new_sqlite_file_and_folder_are_private(tmp_path):
    path = tmp_path / "new" / "deeper" / "state.db"
    connect(f"sqlite:///{path}").close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_relative_sqlite_url_lands_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with cache_session("g", "j", database="sqlite:///relative.db"):
        pass
    assert (tmp_path / "relative.db").exists()


def test_the_default_database_is_the_user_data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("PROCESSCACHE_DATABASE_URL", raising=False)
    with cache_session("g", "j") as ctx:
        ctx.create_cache("k", 1)
    assert (tmp_path / "processcache" / "processcache.db").exists()


@pytest.mark.parametrize("url", [
    "postgresql://cron:Sekr3tMarker@127.0.0.1:1/cron?retry_for=0",  # no server there: no waiting for one either
    "mysql://cron:Sekr3tMarker@127.0.0.1:1/cron?retry_for=0",
])
def test_an_unreachable_server_is_one_line_without_the_password(url):
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(url)
    message = str(info.value)
    assert "Sekr3tMarker" not in message and "\n" not in message
    assert message.startswith("the database at ") and ":***@127.0.0.1:1/cron cannot be reached" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("scheme, module, extra, package", [("postgresql", "psycopg2", "postgres", "psycopg2-binary"),
                                                            ("mysql", "pymysql", "mysql", "PyMySQL")])
def test_a_missing_driver_names_the_package_and_the_extra_to_install(scheme, module, extra, package):
    blocked = f"import sys; sys.modules[{module!r}] = None; sys.modules['MySQLdb'] = None\n"
    code = blocked + (
        "import processcache\n"
        "try:\n"
        f"    processcache.connect('{scheme}://u:pw@127.0.0.1/db')\n"
        "except processcache.MissingDriverError as e:\n"
        "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"pip install {package} (or the extra: pip install 'processcache[{extra}]')" in out, \
        "a package name installs from a checkout too, where processcache itself is not on the index"


def test_databases_are_independent():
    with connect("sqlite://:memory:") as one, connect("sqlite://:memory:") as two:
        with cache_session("g", "j", machine="m", database=one) as ctx:
            ctx.create_cache("k", 1)
        with cache_session("g", "j", machine="m", database=two) as ctx:
            assert not ctx.has_cache()
    assert processcache.Database is type(one)


def test_a_session_on_postgresql_ends_without_discard_all(postgres_url):
    """Pony ends every session with DISCARD ALL, a round trip each (several per run); processcache skips it."""
    import psycopg2

    with connect(postgres_url) as db:
        with cache_session("g", "j", machine="m", database=db) as ctx:
            ctx.create_log("a write outside Pony's sessions")
            assert [log.message for log in ctx.get_logs()] == ["a write outside Pony's sessions"]  # a Pony session
            with db.backend.transaction():  # the connection that read, the pool's newest: no statement sent
                pid = db.backend.pony.get_connection().get_backend_pid()
            with psycopg2.connect(postgres_url) as other, other.cursor() as cursor:
                cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
                [(last,)] = cursor.fetchall()
            other.close()
    assert "process_job_logs" in last and "DISCARD" not in last


def test_find_group_and_find_job_return_none_and_create_nothing_until_a_job_runs(backend):
    """The original's getProcess and getJob: a lookup that answers null, where createProcess and createJob create."""
    assert backend.find_group("example") is None and backend.find_job("example", "hello-world") is None
    assert backend.jobs() == [], "looking created nothing"
    with processcache.cache_session("Example", "Hello World", machine="m", database=backend) as ctx:
        job_id = ctx.job_id
    group, job = backend.find_group("  EXAMPLE "), backend.find_job("example", "hello.world")
    assert (group.name, job.id, job.group, job.name) == ("example", job_id, "example", "hello-world")
    assert job.created_at.tzinfo is not None and group.created_at <= job.created_at
    assert backend.find_job("example", "other") is None and backend.find_group("other") is None
