"""200 processes running short recorded jobs at once through a pgbouncer pool of 20 server connections.

A farm puts pgbouncer in transaction pooling mode in front of its
PostgreSQL server so that hundreds of cron jobs share a few server
connections: each transaction may run on another server connection, so
processcache must keep no state on a session between transactions (it
keeps none: docs/databases.rst). The test starts its own pgbouncer
(tests/helpers/pgbouncer_server.py: ``pool_mode = transaction``, 20 server
connections for the database) on a free port, in front of the test
server. 200 processes, each a real process with a connection of its own
to pgbouncer, start together once all are connected and run a recorded job back to back for
`SECONDS`: each run takes its job's lock, writes an entry and a log, and
ends succeeded. Meanwhile the server's own ``pg_stat_activity`` and
pgbouncer's ``SHOW POOLS`` are read every 50 ms. Then: every run
succeeded, every run, entry and log a process was told is stored is on the
server, and the server never had more connections to the database than the
pool's 20. ``pytest -s`` prints the figures (runs per second, connections
and clients at peak, the longest wait for a server connection).

The 200 processes are forked from one launcher that imported processcache
once (``python tests/system/test_pgbouncer.py URL FOLDER``): 200 interpreters
starting at once would spend the test's minute importing.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Run as a script too (the launcher below): the helpers beside it, as conftest puts them for the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from paths import HELPERS  # noqa: E402
from pgbouncer_server import running  # noqa: E402

PROCESSES = 200
POOL = 20
#: How long each process runs its job back to back.
SECONDS = 15.0


@pytest.fixture(autouse=True)
def _pgbouncer_installed() -> None:
    """Skip without pgbouncer (fail under PROCESSCACHE_TEST_REQUIRE_SERVERS, as CI sets)."""
    if shutil.which("pgbouncer") is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("PROCESSCACHE_TEST_REQUIRE_SERVERS"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_200_processes_share_20_server_connections_and_every_write_is_stored(postgres_url, tmp_path):
    name = urlsplit(postgres_url).path.lstrip("/")
    with running(pool_size=POOL, max_clients=2 * PROCESSES + 50) as (through, folder):
        url = urlsplit(postgres_url)._replace(netloc=urlsplit(through).netloc).geturl()
        with Sampler(os.environ["PROCESSCACHE_TEST_POSTGRES_URL"], through, name) as sampler:
            started = time.monotonic()
            launched = subprocess.run([sys.executable, __file__, url, str(tmp_path)], capture_output=True, text=True,
                                      timeout=200, cwd=HELPERS)
            elapsed = time.monotonic() - started
        assert launched.returncode == 0, launched.stdout + launched.stderr
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*.json"))]
    assert len(reports) == PROCESSES, launched.stdout + launched.stderr
    assert [report["errors"] for report in reports if report["errors"]] == []
    runs = [run_id for report in reports for run_id in report["runs"]]
    assert all(report["runs"] for report in reports)  # every process ran at once with the others

    stored = stored_writes(postgres_url)
    assert stored["runs"] == sorted(runs)
    assert stored["entries"] == sorted(runs)
    assert stored["logs"] == sorted(runs)
    assert stored["statuses"] == ["succeeded"]
    assert stored["locks_held"] == 0

    assert 0 < sampler.peak_server <= POOL, sampler.describe()
    assert sampler.peak_clients >= PROCESSES, sampler.describe()  # all connected at once, sharing the pool
    seconds = max(report["ended"] for report in reports) - min(report["started"] for report in reports)
    print(f"\n{len(runs)} runs of {PROCESSES} processes in {seconds:.1f} s: {len(runs) / seconds:.0f} runs/s"
          f" through a pool of {POOL} (test {elapsed:.0f} s); {sampler.describe()}")


def test_processcache_leaves_no_session_state_on_a_server_connection_a_pooler_shares(postgres_url):
    """Under transaction pooling, state left on a server session reaches other clients' transactions, and a
    client's next transaction may run elsewhere: a session advisory lock, a session-level SET, a prepared
    statement, LISTEN, a temporary table or a holdable cursor. Through a pgbouncer pool of one server connection,
    which every transaction of every client shares, a run that creates the tables (under the schema lock), takes
    its job's lock, writes entries alone and in a batch, logs and memoises leaves none of them there."""
    import processcache

    registry = processcache.Registry()

    @registry.job("pooling", "every-path")
    def every_path(ctx):
        ctx.create_cache("single", 1)
        with ctx.batch():
            ctx.create_cache("batched", 2)
        ctx.create_log("logged")
        return ctx.memoize(ttl="1h")(lambda x: x * 2)(21)

    with running(pool_size=1, max_clients=20) as (through, _):
        with processcache.connect(urlsplit(postgres_url)._replace(netloc=urlsplit(through).netloc).geturl()) as db:
            assert every_path.run(database=db, machine="m").result == 42
            state = {name: db.backend.select(sql) for name, sql in SESSION_STATE.items()}
    assert state == {name: [] for name in SESSION_STATE}


#: What a server session may hold past a transaction, as the session itself sees it.
SESSION_STATE = {
    "advisory locks": "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    "settings SET in the session": "SELECT name, setting FROM pg_settings WHERE source = 'session'",
    "prepared statements": "SELECT name FROM pg_prepared_statements",
    "channels listened to": "SELECT pg_listening_channels()",
    "temporary tables": "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
    "open cursors": "SELECT name FROM pg_cursors",
}


class Sampler(threading.Thread):
    """Reads the server's connections to the database and pgbouncer's pool every 50 ms, keeping the peaks."""

    def __init__(self, server_url: str, through: str, database: str) -> None:
        """*server_url* names another database of the server: a connection to *database* would be counted."""
        super().__init__(daemon=True)
        self.server_url = server_url
        self.admin_url = urlsplit(through)._replace(path="/pgbouncer").geturl()
        self.database = database
        self.peak_server = self.peak_clients = self.peak_waiting = 0
        self.longest_wait = 0.0
        self.samples = 0
        self.stopping = threading.Event()

    def __enter__(self) -> "Sampler":
        import psycopg2

        self.server = psycopg2.connect(self.server_url)
        self.server.autocommit = True
        self.admin = psycopg2.connect(self.admin_url)
        self.admin.autocommit = True  # pgbouncer's console takes no BEGIN
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join()
        self.server.close()
        self.admin.close()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            self.sample()
        self.sample()

    def sample(self) -> None:
        cursor = self.server.cursor()
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,))
        self.peak_server = max(self.peak_server, cursor.fetchone()[0])
        pools = self.admin.cursor()
        pools.execute("SHOW POOLS")
        columns = [column[0] for column in pools.description]
        for row in pools.fetchall():
            pool = dict(zip(columns, row, strict=True))
            if pool["database"] == self.database:
                self.peak_clients = max(self.peak_clients, pool["cl_active"] + pool["cl_waiting"])
                self.peak_waiting = max(self.peak_waiting, pool["cl_waiting"])
                self.longest_wait = max(self.longest_wait, pool["maxwait"] + pool["maxwait_us"] / 1e6)
        self.samples += 1

    def describe(self) -> str:
        return (f"server connections at peak {self.peak_server} (pg_stat_activity), clients at peak"
                f" {self.peak_clients}, of which waiting for a server connection {self.peak_waiting}, longest wait"
                f" {self.longest_wait:.2f} s, {self.samples} samples")


def stored_writes(url: str) -> dict:
    """What the server holds: the runs' ids, the runs whose entry and log are there, the statuses, locks still held."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        cursor = connection.cursor()

        def ids(sql: str) -> list[int]:
            cursor.execute(sql)
            return sorted(row[0] for row in cursor.fetchall())

        return {
            "runs": ids("SELECT id FROM process_job_runs"),
            "entries": ids("SELECT CAST(entry_value AS BIGINT) FROM process_cache WHERE entry_key = 'run'"),
            "logs": ids("SELECT run_id FROM process_job_logs WHERE message = 'ran'"),
            "statuses": [row[0] for row in _all(cursor, "SELECT DISTINCT status FROM process_job_runs")],
            "locks_held": _all(cursor, "SELECT count(*) FROM process_job_locks WHERE run_id IS NOT NULL")[0][0],
        }
    finally:
        connection.close()


def _all(cursor, sql: str) -> list[tuple]:
    cursor.execute(sql)
    return cursor.fetchall()


# -- the launcher and its processes --------------------------------------------------------------------------


def launch(url: str, folder: str) -> None:
    """Create the tables, fork `PROCESSES` processes, start them together once each is connected; exit 1 unless
    each exited 0."""
    import processcache

    processcache.connect(url).close()
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    children = []
    for index in range(PROCESSES):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(go_write)  # the launcher's closing it is the signal to go
                run_jobs(url, index, lambda: (os.write(ready_write, b"."), os.read(go_read, 1)),
                         Path(folder) / f"{index:03d}.json")
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children.append(pid)
    ready = 0
    while ready < PROCESSES:
        ready += len(os.read(ready_read, PROCESSES))
    os.close(go_write)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    if any(codes):
        sys.exit(f"exit codes other than 0: {sorted(set(codes))}")


def run_jobs(url: str, index: int, connected: Callable[[], object], report: Path) -> None:
    """Connect, call *connected* (which returns once every process is connected), then run this process's job
    back to back for `SECONDS`; note each run confirmed and each error."""
    import processcache

    registry = processcache.Registry()

    @registry.job("load", f"p{index:03d}")
    def short(ctx):
        ctx.create_cache("run", ctx.run.id)
        ctx.create_log("ran")
        return ctx.run.id

    runs, errors = [], []
    with processcache.connect(url) as db:
        connected()
        started = time.time()
        while time.time() < started + SECONDS:
            record = short.run(database=db, machine=f"m{index:03d}")
            if record.ok:
                runs.append(record.result)
            else:
                errors.append(f"{record.status}: {record.error}")
    report.write_text(json.dumps({"runs": runs, "errors": errors, "started": started, "ended": time.time()}))


if __name__ == "__main__":
    launch(*sys.argv[1:])
