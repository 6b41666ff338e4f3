"""Several real processes on one database at once, and a process killed mid-run."""

import os
import signal
import subprocess
import sys
import time

import pytest
from paths import HELPERS

from processcache import ANY, cache_session, connect

WORKERS = HELPERS / "workers.py"


def start(*args):
    return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(processes):
    """Wait for all (so that no pipe is left open when one failed), then check each."""
    errors = [process.communicate(timeout=180)[1] for process in processes]
    for process, err in zip(processes, errors):
        assert process.returncode == 0, err


def test_four_processes_appending_500_each_store_exactly_2000(backend_url):
    connect(backend_url).close()
    start_at = time.time() + 3
    finish([start("append", backend_url, 500, start_at) for _ in range(4)])
    with cache_session("concurrent", "append", machine="shared", database=backend_url) as ctx:
        entries = ctx.tree["n"]
        assert len(entries) == 2000
        assert len({e.id for e in entries}) == 2000
        assert sorted(e.value for e in entries) == sorted(list(range(500)) * 4)


@pytest.mark.slow
def test_eight_processes_opening_one_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Each switches the new file to WAL; SQLite refused some at once (3 of 80 opens before the fix)."""
    for round in range(6):
        url = f"sqlite:///{tmp_path}/new-{round}.db"
        start_at = time.time() + 1.5
        finish([start("open_new", url, start_at) for _ in range(8)])
        with connect(url) as db:
            assert db.backend.select("PRAGMA journal_mode", {})[0] == ("wal",)


def test_four_processes_running_a_never_seen_job_at_once_on_a_fresh_database(backend_url):
    start_at = time.time() + 3
    finish([start("first_run", backend_url, start_at) for _ in range(4)])
    with connect(backend_url) as db:
        assert db.backend.values("SELECT name FROM processes", {}) == ["never-seen"]
        assert db.backend.values("SELECT name FROM process_jobs", {}) == ["first-run"]
        assert db.backend.values("SELECT status FROM process_job_runs", {}) == ["succeeded"] * 4
    with cache_session("never seen", "first run", machine="shared", database=backend_url) as ctx:
        assert len(ctx.get_cache("ran", machine=ANY)) == 4


def test_a_process_killed_mid_run_keeps_every_committed_write(backend_url):
    connect(backend_url).close()
    worker = start("write_forever", backend_url)
    reported = -1
    deadline = time.time() + 60
    while reported < 50 and time.time() < deadline:
        line = worker.stdout.readline()
        assert line, worker.communicate()[1]
        reported = int(line)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    # read(), not communicate(): communicate reads the raw pipe and would skip
    # lines readline() already buffered.
    unread = worker.stdout.read().splitlines()
    worker.stdout.close()
    worker.stderr.close()
    reported = int(unread[-1]) if unread else reported  # the last write reported before the kill
    assert reported >= 50
    with cache_session("killed", "mid-run", machine="m", database=backend_url) as ctx:
        values = [e.value for e in ctx.tree["n"]]
        assert values[: reported + 1] == list(range(reported + 1))
        assert len(values) <= reported + 2, "at most the write in flight at the kill"
        logs = [log.message for log in ctx.get_logs(limit=reported + 1)]
        assert logs == [f"log {n}" for n in range(reported + 1)]
    with connect(backend_url) as db:
        statuses = db.backend.values("SELECT status FROM process_job_runs ORDER BY id", {})
    assert statuses == ["running", "succeeded"], "the killed run stays recorded; the next run works"
