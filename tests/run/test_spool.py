"""if_database_down and the local spool: jobs run through an outage, and reach the ledger exactly once.

Every test has a data folder of its own (``XDG_DATA_HOME``), so no two share
a spool. The servers' outages are a TCP proxy of the test's own between
the client and the server (`tcpproxy`): refused, stalled; SQLite's is a
file that cannot be opened (its folder is a file).
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from cli_helpers import cli
from paths import HELPERS
from tcpproxy import Proxy

from processcache import RegistryError, SchemaError, cache_session, connect, job
from processcache.run.spool import Spool

WORKERS = HELPERS / "spool_workers.py"

JOB = '''
from processcache import job

@job("spool", "backup", if_database_down="run", overlap="allow")
def backup(ctx):
    print("backing up")
    ctx.create_log("backed up 3 files")
    ctx.create_cache("last", {"files": 3})
'''


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A data folder of the test's own: the spool of this test alone, in this process and the ones it starts."""
    folder = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(folder))
    monkeypatch.delenv("PROCESSCACHE_SPOOL", raising=False)
    return {"XDG_DATA_HOME": str(folder)}


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "backup.py"
    path.write_text(JOB)
    return path


def fast(url: str) -> str:
    """*url* with short connect and read timeouts, so that a stalled server costs a test seconds, not ten.

    (MariaDB's greeting is read under the read timeout: a stalled one costs that, 15 s by default.)
    """
    return url + ("&" if "?" in url else "?") + "connect_timeout=2&read_timeout=2"


def ledger_runs(url: str, job_name: str = "spool/backup"):
    with connect(url) as db:
        return db.list_runs(job_name, limit=None)


@pytest.mark.slow
def test_a_job_that_may_run_without_its_database_runs_through_a_refused_port_and_is_recorded_once(
        server_backend_url, data, job_file):
    connect(server_backend_url).close()
    with Proxy.before(server_backend_url) as proxy:
        url = proxy.url(server_backend_url)
        proxy.cut(600)
        began = time.monotonic()
        done = cli("run", f"{job_file}:backup", "-d", url, env=data)
        waited = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        assert "backing up" in done.stdout
        assert "kept in this machine's spool" in done.stderr
        assert waited < 10 + 5, "ran after down_wait (10 s), not after the retry budget"
        listed = cli("spool", env=data)
        assert "spool/backup" in listed.stdout and "succeeded" in listed.stdout
        proxy.reopen()
        time.sleep(0.3)
        back = time.monotonic()
        shown = cli("runs", "-d", url, env=data)  # any command that reaches the database stores what waits
        to_ledger = time.monotonic() - back
        assert shown.returncode == 0, shown.stderr
        assert "recorded late" in shown.stdout
        print(f"outage end to ledger: {to_ledger:.2f} s")
        again = cli("run", f"{job_file}:backup", "-d", url, env=data)
        assert again.returncode == 0, again.stderr
    runs = ledger_runs(server_backend_url)
    assert [(run.status, run.late) for run in runs] == [("succeeded", False), ("succeeded", True)]
    with connect(server_backend_url) as db:
        logs = [log.message for log in db.logs("spool/backup", run=runs[1].id)]
        assert "backed up 3 files" in logs and "backing up" in logs
        assert any("running without it" in message for message in logs)
        assert [entry.value for entry in db.cache.entries(db.store.job_id("spool", "backup"), None)] == [
            {"files": 3}, {"files": 3}]
    assert Spool().waiting() == []


@pytest.mark.slow
def test_a_stalled_server_lets_the_job_run_after_down_wait_and_exec_output_reaches_the_ledger(
        server_backend_url, data):
    connect(server_backend_url).close()
    with Proxy.before(server_backend_url) as proxy:
        url = fast(proxy.url(server_backend_url))
        proxy.stall()
        began = time.monotonic()
        done = cli("exec", "--job", "spool/cmd", "--if-database-down", "run", "--down-wait", "3s", "-d", url,
                   "--", "sh", "-c", "echo copied; exit 3", env=data)
        waited = time.monotonic() - began
        assert done.returncode == 3, done.stderr
        assert "copied" in done.stdout
        assert waited < 3 + 2 + 3, "one more connect timeout at most past down_wait"
        proxy.forward()
        flushed = cli("spool", "flush", "-d", url, env=data)
        assert flushed.returncode == 0, flushed.stderr
        assert "stored 1 runs" in flushed.stdout
    [run] = ledger_runs(server_backend_url, "spool/cmd")
    assert (run.status, run.exit_code, run.late) == ("failed", 3, True)
    with connect(server_backend_url) as db:
        assert "copied" in [log.message for log in db.logs("spool/cmd", run=run.id)]


def test_skip_exits_75_with_one_line_and_fail_is_unchanged(server_backend_url, data, job_file):
    with Proxy.before(server_backend_url) as proxy:
        url = proxy.url(server_backend_url)
        proxy.cut(600)
        skipped = cli("run", f"{job_file}:backup", "-d", url, "--if-database-down", "skip", "--down-wait", "1s",
                      env=data)
        assert skipped.returncode == 75, skipped.stderr
        assert skipped.stdout == ""
        [line] = skipped.stderr.strip().splitlines()
        assert "skipped, the database is down (if_database_down=skip)" in line
        failed = cli("run", f"{job_file}:backup", "-d", url + "?retry_for=1s", "--if-database-down", "fail",
                     env=data)
        assert failed.returncode == 1
        [line] = failed.stderr.strip().splitlines()  # today's one line, whatever its words
        assert "127.0.0.1" in line and "skipped" not in line
        assert "backing up" not in failed.stdout
    assert Spool().waiting() == []


def test_sqlite_a_file_that_cannot_be_opened_spools_the_run_and_the_next_command_stores_it(tmp_path, data, job_file):
    folder = tmp_path / "state"
    folder.write_text("not a folder")  # the database's folder is a file: it cannot be opened
    url = f"sqlite:///{folder}/ledger.db"
    done = cli("run", f"{job_file}:backup", "-d", url, env=data)
    assert done.returncode == 0, done.stderr
    assert len(Spool().waiting()) == 1
    folder.unlink()
    folder.mkdir()
    connect(url).close()  # the database is back (check opens it read-only: it must be there)
    check = cli("check", "-d", url, env=data)  # check, as any command that reaches the database, stores it
    assert "spool" not in check.stderr, check.stderr
    assert Spool().waiting() == []
    [run] = ledger_runs(url)
    assert run.late and run.status == "succeeded"
    assert "recorded late" in cli("runs", "show", str(run.id), "-d", url, env=data).stdout


@pytest.mark.slow
def test_two_processes_flushing_at_once_store_each_run_once(server_backend_url, data):
    count = 40
    with spooled_while_down(server_backend_url, count, 3, data) as url:
        flushes = [subprocess.Popen([sys.executable, "-m", "processcache", "spool", "flush", "-d", url],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, **data}) for _ in range(2)]
        for flush in flushes:
            _, err = flush.communicate(timeout=120)
            assert flush.returncode == 0, err
    assert_stored_once(server_backend_url, count, 3)


@pytest.mark.slow
def test_a_flush_killed_midway_and_run_again_stores_each_run_once(server_backend_url, data):
    count = 120
    with spooled_while_down(server_backend_url, count, 20, data) as url:
        flush = subprocess.Popen([sys.executable, "-m", "processcache", "spool", "flush", "-d", url],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **data})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stored_count(server_backend_url) < 5:
            time.sleep(0.02)
        flush.send_signal(signal.SIGKILL)
        flush.wait(timeout=30)
        part = stored_count(server_backend_url)
        assert 0 < part < count, "killed midway"
        again = cli("spool", "flush", "-d", url, env=data)
        assert again.returncode == 0, again.stderr
    assert_stored_once(server_backend_url, count, 20)


def test_a_full_spool_is_reported_and_the_job_still_runs(tmp_path, data, job_file):
    folder = tmp_path / "state"
    folder.write_text("not a folder")
    url = f"sqlite:///{folder}/ledger.db"
    job_file.write_text(JOB.replace('"backed up 3 files"', '"backed up: " + "x" * 3000'))
    env = {**data, "PROCESSCACHE_SPOOL_LIMIT": "40KiB"}  # an empty spool is 32 KiB; each run keeps 3 KiB more
    outcomes = [cli("run", f"{job_file}:backup", "-d", url, env=env) for _ in range(8)]
    assert all(done.returncode == 0 and "backing up" in done.stdout for done in outcomes)
    full = [done for done in outcomes if "is full" in done.stderr]
    assert full, "the limit is reached and said"
    assert "PROCESSCACHE_SPOOL_LIMIT raises the limit" in full[-1].stderr
    assert "this run is not recorded" in full[-1].stderr
    kept = len(Spool().waiting())
    assert 0 < kept < 8
    folder.unlink()
    folder.mkdir()
    assert cli("spool", "flush", "-d", url, env=data).returncode == 0
    assert len(ledger_runs(url)) == kept


def test_a_spooled_cache_write_is_kept_out_by_a_newer_entry_from_another_machine(tmp_path, data):
    folder = tmp_path / "state"
    folder.write_text("not a folder")
    url = f"sqlite:///{folder}/ledger.db"
    with cache_session("spool", "shared", "cut-off", url, if_database_down="run", down_wait=0) as ctx:
        ctx.set_cache("token", "old")
        ctx.create_cache("seen", 1)
        with pytest.raises(Exception, match="runs without its database .*: ctx.get_cache"):
            ctx.get_cache("token")
    folder.unlink()
    folder.mkdir()
    with connect(url) as db:  # the other machine writes first; it holds no spool of its own
        Spool().close()
        job_id = db.store.job_id("spool", "shared")
        db.cache.replace(job_id, "online", "token", '"new"')
        flushed = Spool().flush(db)
        assert len(flushed.stored) == 1
        values = {key: [entry.value for entry in db.cache.entries(job_id, None, key)] for key in ("token", "seen")}
        assert values == {"token": ["new"], "seen": [1]}
        warnings = [log.message for log in db.logs("spool/shared", type="WARNING")]
        assert any("token" in message and "newer entry" in message for message in warnings)


def test_run_without_the_database_is_refused_with_once_per_unless_asked():
    with pytest.raises(RegistryError, match="down_runs_once_per=True"):
        job("spool", "hourly", once_per="1h", if_database_down="run")(lambda ctx: None)
    job("spool", "hourly-anyway", once_per="1h", if_database_down="run", down_runs_once_per=True)(lambda ctx: None)
    job("spool", "hourly-skip", once_per="1h", if_database_down="skip")(lambda ctx: None)


def test_the_spool_file_and_its_folder_are_private(tmp_path, data):
    spool = Spool(str(tmp_path / "private" / "spool.sqlite"))
    spool.waiting()
    spool.start("sqlite:////nowhere.db", "g", "j", "m", "job", __import__("datetime").datetime.now().astimezone())
    spool.close()
    assert oct(os.stat(tmp_path / "private").st_mode & 0o777) == "0o700"
    assert oct(os.stat(spool.path).st_mode & 0o777) == "0o600"


def test_a_revision_7_database_is_used_as_it_is_and_upgraded_to_store_runs_recorded_late(tmp_path, data,
                                                                                            server_backend_url):
    with connect(server_backend_url) as db:  # what revision 7 left: no spool_id (SQLite drops no UNIQUE column)
        db.backend.execute("ALTER TABLE process_job_runs DROP COLUMN spool_id", {})
        db.backend.execute("UPDATE processcache_meta SET value = '7' WHERE name = 'schema_revision'", {})
        url = db.url
    folder = tmp_path / "state"
    folder.write_text("not a folder")
    with cache_session("spool", "old", "m", f"sqlite:///{folder}/x.db", if_database_down="run", down_wait=0) as ctx:
        ctx.create_log("ran")
    with sqlite3.connect(Spool().path) as spool_file:  # kept for the database under test
        spool_file.execute("UPDATE runs SET database = ?", (url,))
    with connect(server_backend_url, upgrade=False) as old:  # runs as it is; the spool waits
        with pytest.raises(SchemaError, match="needs 2.8: run `processcache db upgrade`"):
            Spool().flush(old)
    with connect(server_backend_url) as db:  # upgrades: the column, and its unique index
        assert db.sync("check") == []
        assert len(Spool().flush(db).stored) == 1
        [run] = db.list_runs("spool/old")
        assert run.late


# -- helpers --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def spooled_while_down(server_url: str, count: int, logs: int, data: dict):
    """*count* runs of spool/bulk spooled while a proxy in front of *server_url* refuses; then the proxy's URL, open."""
    connect(server_url).close()
    with Proxy.before(server_url) as proxy:
        url = proxy.url(server_url)
        proxy.cut(600)
        done = subprocess.run([sys.executable, str(WORKERS), "spool_runs", url, str(count), str(logs)],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **data})
        assert done.returncode == 0, done.stderr
        assert len(Spool().waiting()) == count
        proxy.reopen()
        time.sleep(0.3)
        yield url


def stored_count(url: str) -> int:
    with connect(url) as db:
        return db.backend.value("SELECT COUNT(*) FROM process_job_runs WHERE spool_id IS NOT NULL")


def assert_stored_once(url: str, count: int, logs: int) -> None:
    with connect(url) as db:
        rows = db.backend.select("SELECT spool_id, COUNT(*) FROM process_job_runs WHERE spool_id IS NOT NULL"
                                 " GROUP BY spool_id")
        assert len(rows) == count and all(times == 1 for _, times in rows), "each run once"
        job_id = db.store.job_id("spool", "bulk")
        assert db.count_logs("spool/bulk") == count * (logs + 1), "each log once (and the outage's warning)"
        assert sorted(entry.value for entry in db.cache.entries(job_id, None, "n")) == list(range(count))
        started = [run.started_at for run in sorted(db.list_runs("spool/bulk", limit=None), key=lambda r: r.id)]
        assert started == sorted(started), "stored in the order they happened"
    assert Spool().waiting() == []
