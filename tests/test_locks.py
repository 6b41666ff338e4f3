"""Overlap locks: one holder at a time across processes and machines, leases that expire."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pony.orm import db_session

import processcache
from processcache import Registry, connect
from processcache.runner import EXIT_SKIPPED, exit_code

TESTS = Path(__file__).resolve().parent
WORKERS = TESTS / "workers.py"
SLOW_JOBS = TESTS / "slow_jobs.py"


def test_a_lock_is_held_by_one_run_until_released(backend):
    runs = backend.runs
    assert runs.acquire("g/j", "m1", 1, run_id=10, lease=60)
    assert not runs.acquire("g/j", "m2", 2, run_id=11, lease=60)
    [lock] = runs.locks("g/j")
    assert (lock.machine, lock.pid, lock.run_id, lock.held) == ("m1", 1, 10, True)
    assert 0 < lock.expires_in <= 60
    runs.release("g/j", run_id=11)  # not the holder: nothing happens
    assert not runs.acquire("g/j", "m2", 2, run_id=11, lease=60)
    runs.release("g/j", run_id=10)
    assert runs.acquire("g/j", "m2", 2, run_id=11, lease=60)


def test_an_expired_lease_can_be_taken_and_its_run_is_marked_lost(backend):
    runs = backend.runs
    dead = runs.start("g", "j", "m1", 1, lease=0.2)
    assert runs.acquire("g/j", "m1", 1, dead.id, lease=0.2)
    time.sleep(0.5)
    assert runs.get(dead.id).status == "lost", "a running run past its lease reads as lost"
    assert runs.acquire("g/j", "m2", 2, run_id=99, lease=60)
    with db_session:
        stored = backend.pony.select("SELECT status FROM process_job_runs WHERE id = $id", {"id": dead.id})
    assert stored == ["lost"], "taking over a dead holder's lock records its run as lost"


def test_a_client_clock_hours_off_cannot_steal_a_live_lease(backend, monkeypatch):
    runs = backend.runs
    assert runs.acquire("g/j", "honest", 1, run_id=1, lease=30)
    skew = 5 * 3600
    real_time, real_now = time.time, processcache.timeutil.utcnow
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    monkeypatch.setattr(processcache.timeutil, "utcnow", lambda: real_now() + timedelta(seconds=skew))
    assert not runs.acquire("g/j", "skewed", 2, run_id=2, lease=30)
    assert runs.locks("g/j")[0].machine == "honest"


def test_heartbeats_keep_a_long_run_alive_past_its_lease(backend):
    registry = Registry()
    seen = {}

    @registry.job("g", "long", lease=1.2)
    def long_job(ctx):
        if ctx.machine == "other":
            return  # the copy that runs only if the lock was lost: it must not start another
        time.sleep(3.0)
        seen["status"] = ctx.database.runs.get(ctx.run.id).status
        seen["other"] = exit_code(long_job.run(database=backend, machine="other"))

    assert long_job.run(database=backend, machine="m").ok
    assert seen == {"status": "running", "other": EXIT_SKIPPED}


def test_a_skipped_run_is_recorded_and_names_the_holder(backend):
    registry = Registry()
    inner = {}

    @registry.job("g", "solo")
    def solo(ctx):
        if ctx.machine == "first":  # only the outer run starts another: bounded even if the lock breaks
            inner["record"] = solo.run(database=backend, machine="second")

    first = solo.run(database=backend, machine="first")
    skipped = inner["record"]
    assert first.ok and skipped.status == "skipped" and exit_code(skipped) == 75
    assert f"run {first.id} on first (pid {os.getpid()}) holds the lock g/solo" in skipped.error
    assert backend.runs.get(skipped.id).status == "skipped"
    assert solo.run(database=backend, machine="second").ok, "the lock is released after the run"


def test_overlap_allow_and_per_machine_locks(backend):
    registry = Registry()
    inner = {}

    @registry.job("g", "free", overlap="allow")
    def free(ctx):
        if ctx.machine == "a":
            inner["free"] = free.run(database=backend, machine="b").status

    @registry.job("g", "per-machine", lock="machine")
    def per_machine(ctx):
        if ctx.machine == "a" and not inner.get("nested"):
            inner["nested"] = True  # the nested run on `a` must not nest again if the lock breaks
            inner["other machine"] = per_machine.run(database=backend, machine="b").status
            inner["same machine"] = per_machine.run(database=backend, machine="a").status

    free.run(database=backend, machine="a")
    per_machine.run(database=backend, machine="a")
    assert inner == {"free": "succeeded", "nested": True, "other machine": "succeeded", "same machine": "skipped"}


def test_overlap_wait_waits_for_the_holder_or_gives_up(backend):
    runs = backend.runs
    registry = Registry()

    @registry.job("g", "patient", overlap="wait", wait_timeout="5s")
    def patient(ctx):
        return "ran"

    assert runs.acquire("g/patient", "other", 1, run_id=-1, lease=0.8)
    began = time.monotonic()
    record = patient.run(database=backend, machine="m")
    assert record.ok and record.result == "ran"
    assert 0.5 < time.monotonic() - began < 4.5
    assert runs.acquire("g/patient", "other", 1, run_id=-2, lease=30)
    gave_up = patient.run(database=backend, machine="m", wait_timeout="0.3s")
    assert gave_up.status == "skipped" and "after waiting 0.3s" in gave_up.error


def test_eight_processes_contending_200_times_never_hold_the_lock_together(backend_url, tmp_path):
    connect(backend_url).close()
    intervals = tmp_path / "intervals.txt"
    start_at = time.time() + 3
    workers = [subprocess.Popen([sys.executable, str(WORKERS), "contend", backend_url, "200", str(intervals),
                                 str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(8)]
    totals = {}
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        for code, count in json.loads(out).items():
            totals[int(code)] = totals.get(int(code), 0) + count
    assert set(totals) <= {0, EXIT_SKIPPED}, f"only successes and skips (75), got {totals}"
    assert sum(totals.values()) == 1600
    held = sorted(tuple(map(int, line.split())) for line in intervals.read_text().splitlines())
    assert len(held) == totals[0] > 0
    for (_, end, run), (start, _, next_run) in zip(held, held[1:]):
        assert end <= start, f"runs {run} and {next_run} held the lock at the same time"


def test_a_holder_killed_with_sigkill_frees_the_lock_after_its_lease(backend_url):
    lease = 2.0
    holder = subprocess.Popen([sys.executable, str(WORKERS), "hold_forever", backend_url, str(lease)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = holder.stdout.readline()
    assert line, holder.communicate()[1]
    killed_run = int(line)
    time.sleep(lease)  # the heartbeat has renewed the lease at least once by now
    os.kill(holder.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    holder.communicate(timeout=30)
    registry = Registry()

    @registry.job("contended", "killed-holder")
    def next_run(ctx):
        pass

    with connect(backend_url) as db:
        while True:
            record = next_run.run(database=db, machine="survivor")
            if record.ok:
                break
            assert record.status == "skipped"
            time.sleep(0.05)
        waited = time.monotonic() - killed_at
        assert waited <= lease + lease / 3 + 0.5, f"the lock came free {waited:.2f}s after the kill"
        assert db.runs.get(killed_run).status == "lost"
        assert [r.id for r in db.history.list_runs("contended/killed-holder", status="lost")] == [killed_run]


@pytest.mark.parametrize("lock, expected", [("job", [0, 75]), ("machine", [0, 0])])
def test_two_machines_running_the_same_job_at_once(backend_url, tmp_path, lock, expected):
    connect(backend_url).close()
    env = {**os.environ, "SLOW_JOB_LOCK": lock}
    env.pop("PROCESSCACHE_DATABASE_URL", None)
    runs = [subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{SLOW_JOBS}:slow", "-d", backend_url,
                              "--machine", machine], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env) for machine in ("host-a", "host-b")]
    results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
    assert sorted(code for code, _ in results) == expected, results
    if 75 in expected:
        skipped = next(err for code, err in results if code == 75)
        assert "skipped: run" in skipped and "holds the lock slow/job" in skipped
