"""Lost connections and busy databases: retried, never written twice, never 'database is locked'."""

import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from paths import HELPERS

import processcache
from processcache import CacheContext, DatabaseUnavailableError, connect

WORKERS = HELPERS / "workers.py"


def kill_connections(url: str) -> int:
    """Cut every client connection to the test database from the server's side; return how many."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme.startswith("postgres"):
        import psycopg2

        admin = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres")
        admin.autocommit = True
        cursor = admin.cursor()
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                       " AND pid <> pg_backend_pid()", (name,))
        killed = cursor.rowcount
    else:
        import pymysql

        admin = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username, password="",
                                autocommit=True)
        cursor = admin.cursor()
        cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                       (name,))
        ids = [row[0] for row in cursor.fetchall()]
        for connection_id in ids:
            try:
                cursor.execute(f"KILL {int(connection_id)}")
            except pymysql.err.OperationalError:
                pass  # it ended by itself meanwhile
        killed = len(ids)
    admin.close()
    return killed


def run_while_killing_connections(url: str, worker: str, count: int, every: int) -> str:
    """Run a worker that prints its progress; cut every connection each *every* steps; return its last line."""
    connect(url).close()
    process = subprocess.Popen([sys.executable, str(WORKERS), worker, url, str(count)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    kills, last = 0, ""
    for line in process.stdout:
        last = line.strip()
        if last.isdigit() and int(last) % every == 0 and int(last) > 0:
            kills += kill_connections(url)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert kills >= 4, "connections were really cut"
    return last


def test_writes_survive_connections_killed_by_the_server_and_are_stored_once(server_backend_url):
    count = 300
    assert run_while_killing_connections(server_backend_url, "write_through_faults", count, 60) == "succeeded"
    with connect(server_backend_url) as db:
        ctx = CacheContext(db, "faults", "writer", "m")
        assert [e.value for e in ctx.get_cache("n")] == list(range(count)), "every write once, in order"
        written = [log.message for log in ctx.get_logs() if log.level not in ("STDOUT", "STDERR")]
        assert written == [f"log {n}" for n in range(count)], "every log once, in order (its printed output aside)"
        [run] = db.history.list_runs("faults/writer")
        assert run.status == "succeeded"


def test_bulk_writes_and_replacements_cut_off_by_killed_connections_are_stored_once(server_backend_url):
    count = 200
    assert run_while_killing_connections(server_backend_url, "bulk_through_faults", count, 20) == "succeeded"
    with connect(server_backend_url) as db:
        tree = CacheContext(db, "faults", "bulk", "m").get_full_cache()
    assert {key: [e.value for e in entries] for key, entries in tree.items() if key != "last"} == {
        f"b{n}": list(range(20)) for n in range(count)}, "every batch once"
    assert [e.value for e in tree["last"]] == [195]


def test_a_batch_cut_off_by_a_killed_connection_is_rolled_back_with_one_line(server_backend_url):
    with connect(server_backend_url) as db:
        ctx = CacheContext(db, "faults", "batch", "m")
        with pytest.raises(DatabaseUnavailableError, match="lost the connection to .* during a batch") as info:
            with ctx.batch():
                ctx.create_cache("in-batch", 1)
                ctx.set_cache("replaced", 2)
                kill_connections(server_backend_url)
                ctx.create_cache_many({"after-kill": 3})
        assert "\n" not in str(info.value)
        ctx.create_cache("after", 4)
        assert {key: [e.value for e in entries] for key, entries in ctx.get_full_cache().items()} == {"after": [4]}


def test_after_the_retries_a_lost_connection_is_one_line_without_the_password(server_backend_url, secret_url):
    url, marker = secret_url
    with connect(url + "?retry_for=0") as db:
        ctx = CacheContext(db, "faults", "no-retry", "m")
        ctx.create_cache("k", "before")
        kill_connections(server_backend_url)
        with pytest.raises(DatabaseUnavailableError) as info:
            ctx.create_cache("k", "after")
    message = str(info.value)
    assert message.startswith("lost the connection to ") and "not tried again (retry_for=0 in the URL)" in message
    assert marker not in message and "\n" not in message and ":***@" in message
    with connect(server_backend_url) as db:
        assert [e.value for e in CacheContext(db, "faults", "no-retry", "m").get_cache("k")] == ["before"]


def test_the_next_run_after_a_killed_connection_needs_no_manual_step(server_backend_url):
    with connect(server_backend_url) as db:
        first = processcache.Registry().job("faults", "next")(lambda ctx: ctx.create_cache("k", 1))
        assert first.run(database=db, machine="m").ok
        kill_connections(server_backend_url)
        assert first.run(database=db, machine="m").ok, "the same Database object reconnects by itself"


def test_eight_sqlite_writers_never_see_database_is_locked(tmp_path):
    url = f"sqlite:///{tmp_path}/busy.db"
    connect(url).close()
    start_at = time.time() + 3
    workers = [subprocess.Popen([sys.executable, str(WORKERS), "append_and_log", url, "400", str(start_at)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0 and "locked" not in err, err
    with connect(url) as db:
        assert db.backend.values("SELECT COUNT(*) FROM process_cache", {}) == [3200]
        assert db.backend.values("SELECT COUNT(*) FROM process_job_logs", {}) == [3200]
        assert db.backend.values("SELECT COUNT(DISTINCT status) FROM process_job_runs", {}) == [1]


def test_a_background_heartbeat_survives_a_killed_connection(server_backend_url):
    registry = processcache.Registry()

    @registry.job("faults", "beating", lease=1.5)
    def beating(ctx):
        for _ in range(3):
            time.sleep(0.5)
            kill_connections(server_backend_url)
        time.sleep(1.0)
        return ctx.database.runs.get(ctx.run.id).status

    with connect(server_backend_url) as db:
        record = beating.run(database=db, machine="m")
    assert record.ok and record.result == "running", "the run stayed alive through the kills"
