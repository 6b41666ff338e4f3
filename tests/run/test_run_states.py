"""Run states that tell the truth: every way a run ends is recorded as it was, or said aloud when it cannot be."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from paths import HELPERS

import processcache
import processcache.storage.clock
from processcache import ProcessCacheError, Registry, RunNotRecordedError, cache_session, connect
from processcache.durations import parse_since
from processcache.monitor.check import check

JOBS = HELPERS / "state_jobs.py"


def start(target: str, url: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    return subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{JOBS}:{target}", "-d", url, "-m", "m",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def runs_of(url: str, name: str) -> list:
    with connect(url) as db:
        return [run for run in db.history.list_runs() if f"{run.group}/{run.job}" == name]


def test_a_signal_while_waiting_for_the_lock_ends_the_run_terminated(backend_url):
    holder = start("holder", backend_url)
    try:
        assert holder.stdout.readline() == "started\n", holder.communicate()[1]
        waiter = start("holder", backend_url, "--overlap", "wait", "--wait-timeout", "2m")
        deadline = time.monotonic() + 30
        while len(runs_of(backend_url, "states/holder")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # inside the lock's wait now
        waiter.send_signal(signal.SIGTERM)
        _, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 128 + signal.SIGTERM, err
        run = runs_of(backend_url, "states/holder")[0]
        assert run.status == "terminated" and run.signal == signal.SIGTERM and "SIGTERM" in run.error
    finally:
        holder.kill()
        holder.communicate()


def test_sighup_ends_a_run_like_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path}/h.db"
    process = start("sleeper", url)
    assert process.stdout.readline() == "started\n", process.communicate()[1]
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGHUP, err
    [run] = runs_of(url, "states/sleeper")
    assert run.status == "terminated" and run.signal == signal.SIGHUP


def test_a_job_that_runs_itself_with_overlap_wait_fails_at_once_instead_of_waiting_for_itself(backend):
    registry = Registry()

    @registry.job("states", "recursive", overlap="wait", wait_timeout=600)
    def recursive(ctx):
        recursive.run(database=ctx.database, machine="m")

    began = time.monotonic()
    outer = recursive.run(database=backend, machine="m")
    assert time.monotonic() - began < 30
    assert outer.status == "failed" and "this run would wait for itself" in outer.error
    inner = backend.runs.get(outer.id + 1)
    assert inner.status == "failed" and "this run would wait for itself" in inner.error


def test_a_context_used_after_its_session_raises_instead_of_writing_onto_a_finished_run(backend):
    with cache_session("states", "after", machine="m", database=backend) as ctx:
        ctx.create_cache("k", 1)
    for late in (lambda: ctx.create_cache("k", 2), lambda: ctx.create_log("late"), lambda: ctx.get_cache("k"),
                 lambda: ctx.set_cache("k", 3), ctx.sync_cache):
        with pytest.raises(ProcessCacheError, match=f"the run {ctx.run.id} of states/after has ended"):
            late()
    assert backend.runs.get(ctx.run.id).status == "succeeded"
    assert [log.message for log in backend.store.logs()] == []


@pytest.mark.parametrize("text, stored_as", [
    ("a NUL \x00 in the middle", "a NUL \\x00 in the middle"),
    ("undecodable bytes \udcff from a subprocess", "undecodable bytes \\udcff from a subprocess"),
    ("x" * (20 * 2**20), None),
], ids=["nul", "lone surrogate", "20MiB"])
def test_a_failure_quoting_nul_a_lone_surrogate_or_a_huge_text_is_recorded(backend, text, stored_as):
    """PostgreSQL's text cannot hold NUL, no database a lone surrogate;
    MariaDB refuses a statement over max_allowed_packet."""
    registry = Registry()

    @registry.job("states", "quoting")
    def quoting(ctx):
        ctx.create_log(text)
        raise ValueError(text)

    run = quoting.run(database=backend, machine="m")
    assert run.status == "failed"
    stored = backend.runs.get(run.id)
    assert stored.status == "failed" and stored.error.startswith("ValueError: ")
    messages = [log.message for log in backend.store.logs()]
    if stored_as is not None:
        assert stored.error == f"ValueError: {stored_as}" and messages[0] == stored_as
    else:
        for stored_text in (stored.error, stored.traceback, *messages):
            assert "characters cut by processcache" in stored_text and len(stored_text) < 300 * 1024


def test_a_failure_that_cannot_be_recorded_says_both_errors(backend_url):
    process = start("unrecordable", backend_url)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("processcache: run ") and "the job failed (ValueError: the real error)" in last
    assert "recording that failed" in last and "process_job_runs" in last
    assert "Traceback" not in err.split("[ERROR]")[0]


def test_spec_run_never_returns_a_running_record(backend):
    registry = Registry()

    @registry.job("states", "unrecordable-inline")
    def unrecordable(ctx):
        ctx.database.backend.execute("ALTER TABLE process_job_runs RENAME TO process_job_runs_gone")
        return "done"

    with pytest.raises(RunNotRecordedError, match="the job succeeded, but recording that failed") as caught:
        unrecordable.run(database=backend, machine="m")
    assert caught.value.original is None and caught.value.run.status == "running"


class _Behind:
    """This machine's clock, *hours* behind the database server's (the runner's clock, not the server's, is faked)."""

    def __init__(self, monkeypatch, hours: float) -> None:
        shift = timedelta(hours=hours)
        real_time = time.time

        class Clock(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) - shift

        monkeypatch.setattr(processcache.storage.clock, "datetime", Clock)
        monkeypatch.setattr(processcache.storage.clock.time, "time", lambda: real_time() - shift.total_seconds())


@pytest.mark.parametrize("hours", [2, 31 * 24])
def test_runs_are_stamped_by_the_servers_clock_so_check_and_prune_agree_across_machines(backend_url, monkeypatch,
                                                                                        hours):
    registry = Registry()

    @registry.job("states", "skewed", expect_every="1h")
    def skewed(ctx):
        ctx.create_log("ran")

    with monkeypatch.context() as patched:
        _Behind(patched, hours)
        run = skewed.run(database=backend_url, machine="behind")
    assert abs(run.started_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    with connect(backend_url) as db:
        assert [problem for problem in check(db, grace=60)] == []
        assert db.history.prune(runs_older_than=30 * 86400, logs_older_than=30 * 86400) == {"runs": 0, "logs": 0}
        [log] = db.store.logs()
        assert abs(log.created_at - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_logs_since_a_duration_count_back_from_the_servers_clock_on_a_machine_whose_clock_is_ahead(backend_url,
                                                                                                  monkeypatch):
    """``logs --since 1h``: the duration `parse_since` reads is counted back by the database (server) clock."""
    with cache_session("states", "since", machine="m", database=backend_url) as ctx:
        ctx.create_log("just now")
    with monkeypatch.context() as patched:
        _Behind(patched, -2)  # two hours ahead
        with connect(backend_url) as db:
            assert [log.message for log in db.logs(since=parse_since("1h"))] == ["just now"]


def test_two_threads_running_one_waiting_job_take_turns_instead_of_failing(backend_url):
    """Only a run waiting for its own thread's lock fails at once; a scheduler's threads wait for each other."""
    import threading

    registry = Registry()
    held = threading.Event()

    @registry.job("states", "threaded", overlap="wait", wait_timeout=60)
    def threaded(ctx):
        held.set()
        time.sleep(0.5)

    with connect(backend_url) as db:
        results = []
        first = threading.Thread(target=lambda: results.append(threaded.run(database=db, machine="m")))
        first.start()
        held.wait(30)
        second = threaded.run(database=db, machine="m")
        first.join(30)
    assert [run.status for run in results] == ["succeeded"] and second.status == "succeeded", second.error


def test_a_stored_traceback_shows_the_jobs_frames_not_processcaches(backend):
    registry = Registry()

    @registry.job("states", "bad-key")
    def bad_key(ctx):
        ctx.create_cache("", 1)

    run = bad_key.run(database=backend, machine="m")
    package = str(Path(processcache.__file__).parent)
    assert run.status == "failed" and 'ctx.create_cache("", 1)' in run.traceback
    assert f'File "{package}' not in run.traceback and "InvalidKeyError" in run.traceback.splitlines()[-1]
