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
from processcache.storage import Spool

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


MID_RUN = '''
import os, time
from pathlib import Path
from processcache import job

@job("spool", "mirror", if_database_down="run", overlap="skip")
def mirror(ctx):
    signals = Path(os.environ["MIRROR_SIGNALS"])
    ctx.create_log("copied part 1")
    ctx.create_cache("part", 1)
    (signals / "started").touch()
    for _ in range(600):
        if (signals / "go").exists():
            break
        time.sleep(0.05)
    print("copying part 2")
    ctx.create_log("copied part 2")
    ctx.create_cache("part", 2)
'''


@pytest.mark.slow
def test_a_database_cut_mid_run_lets_the_job_finish_and_its_end_reaches_the_ledger_once(
        server_backend_url, data, tmp_path):
    connect(server_backend_url).close()
    job_file = tmp_path / "mirror.py"
    job_file.write_text(MID_RUN)
    signals = tmp_path / "signals"
    signals.mkdir()
    env = {**data, "MIRROR_SIGNALS": str(signals)}
    with Proxy.before(server_backend_url) as proxy:
        url = fast(proxy.url(server_backend_url)) + "&retry_for=2s"
        job_run = subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{job_file}:mirror", "-d", url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        deadline = time.monotonic() + 60
        while not (signals / "started").exists() and time.monotonic() < deadline:
            assert job_run.poll() is None, job_run.communicate()
            time.sleep(0.05)
        proxy.cut(600)  # every connection closed, the port refused: the server is gone mid-run
        (signals / "go").touch()
        out, err = job_run.communicate(timeout=90)
        assert job_run.returncode == 0, err
        assert "copying part 2" in out
        assert "kept in the spool" in err
        [waiting] = Spool().waiting()
        assert (waiting.status, waiting.logs, waiting.writes) == ("succeeded", 3, 1)  # warning, log, output
        proxy.reopen()
        shown = cli("runs", "-d", url, env=data)  # any command that reaches the database stores what waits
        assert shown.returncode == 0, shown.stderr
        assert Spool().waiting() == []
        again = cli("run", f"{job_file}:mirror", "-d", url, env={**env})  # no manual step: the lock was freed
        assert again.returncode == 0, again.stderr
    second, first = ledger_runs(server_backend_url, "spool/mirror")  # newest first
    assert (first.status, first.late, second.status, second.late) == ("succeeded", True, "succeeded", False)
    with connect(server_backend_url) as db:
        logs = [log.message for log in db.logs("spool/mirror", run=first.id)]
        assert logs.count("copied part 1") == 1 and logs.count("copied part 2") == 1
        assert "copying part 2" in logs
        assert any("kept in the spool" in message for message in logs)
        parts = [entry.value for entry in db.cache.entries(db.store.job_id("spool", "mirror"), None, "part")]
        assert parts == [1, 2, 1, 2]
        assert not any(lock.held for lock in db.runs.locks())


def test_a_run_whose_lock_was_taken_while_its_database_was_away_ends_lost_and_its_writes_are_dropped(
        server_backend_url, data):
    with Proxy.before(server_backend_url) as proxy:
        url = fast(proxy.url(server_backend_url)) + "&retry_for=1s"
        with cache_session("spool", "fenced", "cut-off", url, if_database_down="run", overlap="skip",
                           lease=2) as ctx:
            ctx.create_cache("owner", "cut-off")
            proxy.cut(600)
            ctx.create_cache("owner", "cut-off, later")  # the database is gone: kept in the spool
            time.sleep(2.5)  # its lease runs out; a run on another machine takes the lock over
            with cache_session("spool", "fenced", "online", server_backend_url, overlap="skip") as other:
                other.create_cache("owner", "online")
        assert ctx.run.status == "succeeded"  # as far as this machine knew
        proxy.reopen()
        with connect(url) as db:  # the spool keeps it for the database it went away from
            flushed = Spool().flush(db)
            assert len(flushed.stored) == 1
            [run] = [run for run in db.list_runs("spool/fenced", limit=None) if run.machine == "cut-off"]
            assert (run.status, run.late) == ("lost", True)
            values = [entry.value for entry in db.cache.entries(db.store.job_id("spool", "fenced"), None, "owner")]
            assert values == ["cut-off", "online"]
            warnings = [log.message for log in db.logs("spool/fenced", run=run.id, type="WARNING")]
            assert any("had lost the lock" in message for message in warnings)
            again = replay_again(db, run.id)
            assert again == 0, "a second replay of the same run adds nothing"


def replay_again(db, run_id: int) -> int:
    """Logs a second replay of a run spooled mid-run would add: it finds the run taken, and adds none."""
    from processcache.storage.replay import SpooledLog, SpooledRun, replay

    spool_id = db.backend.value("SELECT spool_id FROM process_job_runs WHERE id = $id", {"id": run_id})
    before = len(db.logs("spool/fenced", run=run_id))
    now = __import__("datetime").datetime.now().astimezone()
    done = replay(db, SpooledRun(spool_id, "spool", "fenced", "cut-off", 1, "succeeded", now, now, 0.0, None, None,
                                 None, None, None, None, "job", 0, [SpooledLog("GENERIC", None, "again", now)], [],
                                 run_id, "spool/fenced"))
    assert not done.stored and done.run_id == run_id
    return len(db.logs("spool/fenced", run=run_id)) - before


@pytest.mark.slow
def test_exec_cut_mid_run_ends_with_the_commands_exit_code_and_its_output_reaches_the_ledger_once(
        server_backend_url, data, tmp_path):
    connect(server_backend_url).close()
    go = tmp_path / "go"
    script = f"echo first half; touch {tmp_path}/started; until [ -e {go} ]; do sleep 0.05; done; echo second; exit 4"
    with Proxy.before(server_backend_url) as proxy:
        url = fast(proxy.url(server_backend_url)) + "&retry_for=2s"
        command = subprocess.Popen([sys.executable, "-m", "processcache", "exec", "--job", "spool/sync",
                                    "--if-database-down", "run", "-d", url, "--", "sh", "-c", script],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, **data})
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.cut(600)
        go.touch()
        out, err = command.communicate(timeout=90)
        assert command.returncode == 4, err
        assert "second" in out
        proxy.reopen()
        assert cli("spool", "flush", "-d", url, env=data).returncode == 0
    [run] = ledger_runs(server_backend_url, "spool/sync")
    assert (run.status, run.exit_code, run.late) == ("failed", 4, True)
    with connect(server_backend_url) as db:
        output = [log.message for log in db.logs("spool/sync", run=run.id) if log.level == "STDOUT"]
        assert output == ["first half\nsecond"]
        assert not any(lock.held for lock in db.runs.locks())


def test_check_judges_a_run_recorded_late_by_when_it_ran_not_when_it_was_stored(backend_url, data):
    from datetime import timedelta

    with cache_session("spool", "hourly", "vm1", backend_url, expect_every="1h"):
        pass  # vm1 reaches the database: its run is recorded as it happens
    with connect(backend_url) as db:
        now = db.clock.now()
        spool = Spool()  # vm2 ran the job two hours ago, while it could not reach the database
        spool_id = spool.start(db.url, "spool", "hourly", "vm2", "job", now - timedelta(hours=2))
        spool.finish(spool_id, "failed", now - timedelta(hours=2), 5.0, "it broke", None, None, 1, None, 1)
        spool.close()
        assert len(Spool().flush(db).stored) == 1
        late, on_time = db.list_runs("spool/hourly", limit=None)  # by id: stored last
        assert (late.late, late.machine, on_time.late) == (True, "vm2", False)
        assert db.check() == [], "the job's last run is vm1's, which started after vm2's, and succeeded"
        [job] = db.jobs()
        assert job.last_run.id == on_time.id
        db.backend.execute("UPDATE process_job_runs SET started_at = $at, finished_at = $at WHERE id = $id",
                           {"at": now.replace(tzinfo=None) - timedelta(hours=3), "id": on_time.id})
        assert sorted((problem.kind, problem.run_id) for problem in db.check()) == [
            ("failed", late.id), ("overdue", late.id)], "now vm2's failed run, two hours ago, is the last"


def test_a_spool_that_cannot_be_read_is_said_in_one_line_and_every_job_still_runs(tmp_path, data, job_file):
    spool_file = tmp_path / "data" / "processcache" / "spool.sqlite"
    spool_file.parent.mkdir(parents=True)
    spool_file.write_bytes(b"not a database" * 400)
    url = f"sqlite:///{tmp_path}/ledger.db"
    done = cli("run", f"{job_file}:backup", "-d", url, env=data)  # the database is there: the job runs, recorded
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "the spool" in line]
    assert f"the spool {spool_file} cannot be read" in line and "move it aside" in line
    assert "Traceback" not in done.stderr
    assert [run.status for run in ledger_runs(url)] == ["succeeded"]
    down = f"sqlite:///{tmp_path}/missing-folder-file/ledger.db"
    (tmp_path / "missing-folder-file").write_text("a file where the folder should be")
    unrecorded = cli("run", f"{job_file}:backup", "-d", down, env=data)  # down, and nowhere to keep it: runs anyway
    assert unrecorded.returncode == 0, unrecorded.stderr
    assert "backing up" in unrecorded.stdout
    assert "cannot be written" in unrecorded.stderr and "this run is not recorded" in unrecorded.stderr
