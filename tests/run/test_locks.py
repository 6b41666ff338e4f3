"""Overlap locks: one holder at a time across processes and machines, leases that expire, names that never collide."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from cli_helpers import cli
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from paths import HELPERS
from test_names import declared, identities, lock_of, respelled, same_lock

import processcache
from processcache import Registry, connect
from processcache.records import EXIT_SKIPPED, exit_code

TESTS = HELPERS
WORKERS = TESTS / "workers.py"
SLOW_JOBS = TESTS / "slow_jobs.py"
LOCK_JOBS = TESTS / "lock_jobs.py"


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
    stored = backend.backend.values("SELECT status FROM process_job_runs WHERE id = $id", {"id": dead.id})
    assert stored == ["lost"], "taking over a dead holder's lock records its run as lost"


def test_a_client_clock_hours_off_cannot_steal_a_live_lease(backend, monkeypatch):
    runs = backend.runs
    assert runs.acquire("g/j", "honest", 1, run_id=1, lease=30)
    skew = 5 * 3600
    real_time, real_now = time.time, processcache.storage.timeutil.utcnow
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    monkeypatch.setattr(processcache.storage.timeutil, "utcnow", lambda: real_now() + timedelta(seconds=skew))
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


# -- names that never collide ---------------------------------------------------

def canonical(identity) -> str:
    """The lock's name as a person types it: GROUP/JOB, or GROUP/JOB@MACHINE for a per-machine lock."""
    group, job, machine, scope = identity
    return f"{group}/{job}@{machine}" if scope == "machine" else f"{group}/{job}"


_owners = itertools.count(1000)


@settings(max_examples=50, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(pair=st.one_of(st.tuples(identities, identities), respelled()))
def test_distinct_identities_hold_their_locks_at_once_and_each_is_found_by_its_name(backend, pair):
    first, second = map(declared, pair)
    assume(first is not None and second is not None and same_lock(first) != same_lock(second))
    runs, one, other = backend.runs, next(_owners), next(_owners)
    assert runs.acquire(lock_of(first), first[2], 1, one, lease=60)
    try:
        assert runs.acquire(lock_of(second), second[2], 2, other, lease=60), "the first run's lock blocked it"
        assert [lock.run_id for lock in runs.locks(canonical(first))] == [one]
        assert [lock.run_id for lock in runs.locks(canonical(second))] == [other]
    finally:
        runs.release(lock_of(first), one)
        runs.release(lock_of(second), other)


_LONG = ("g" * 255, "j" * 255)
#: Jobs whose lock names were one text (or one row, on MariaDB), each with the
#: refusal it now gets, or None: then they all run at once, each holding its lock.
COLLIDED = {
    "a per-machine lock and a job named like it": [
        ("team", "sync", "machine", "web1", None),
        ("team", "sync@web1", "job", "web1", "the job name 'sync@web1' holds '@'"),
    ],
    "a group holding / and a job holding /": [
        ("a/b", "c", "job", "m", "the group name 'a/b' holds '/', which separates the group from the job"),
        ("a", "b/c", "job", "m", "the job name 'b/c' holds '/', which separates the group from the job"),
    ],
    "machines that differ in a trailing space": [
        ("team", "sync", "machine", "web1", None),
        ("team", "sync", "machine", "web1 ", None),
    ],
    "255-character names": [
        (*_LONG, "machine", "m" * 255, None),
        (*_LONG, "machine", "m" * 254 + "n", None),
        (*_LONG, "job", "m" * 255, None),
    ],
}


@pytest.mark.parametrize("sides", COLLIDED.values(), ids=COLLIDED.keys())
def test_jobs_whose_lock_names_used_to_collide_are_refused_or_run_side_by_side(backend_url, tmp_path, sides):
    connect(backend_url).close()
    here = [tmp_path / f"run-{n}" for n in range(len(sides))]
    running = [here[n] for n, side in enumerate(sides) if side[4] is None]
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    runs = []
    for n, (group, name, scope, machine, _) in enumerate(sides):
        env = {**environ, "LOCK_JOB_GROUP": group, "LOCK_JOB_NAME": name, "LOCK_JOB_SCOPE": scope,
               "LOCK_JOB_HERE": str(here[n]),
               "LOCK_JOB_WAIT_FOR": os.pathsep.join(str(other) for other in running if other != here[n])}
        runs.append(subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{LOCK_JOBS}:held", "-q",
                                      "-d", backend_url, "--machine", machine], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for run, (*_, refusal) in zip(runs, sides):
        err = run.communicate(timeout=90)[1]
        if refusal is None:
            assert run.returncode == 0, err
        else:
            assert (run.returncode, err.count("\n")) == (1, 1) and refusal in err, err
    with connect(backend_url) as db:
        assert [run.status for run in db.history.list_runs()] == ["succeeded"] * len(running)


def test_a_job_of_255_character_names_runs_and_its_lock_is_listed_and_broken_by_its_name(backend_url):
    group, name, machine = "g" * 255, "j" * 255, "m" * 255
    typed = f"{group}/{name}@{machine}"
    registry = Registry()
    seen = {}

    @registry.job(group, name, lock="machine")
    def long_names(ctx):
        runs = ctx.database.runs
        seen["listed"] = [lock for lock in runs.locks() if lock.held]
        seen["by name"] = runs.locks(typed)
        seen["by key"] = [lock.run_id for held in seen["listed"] for lock in runs.locks(held.name)]
        if seen.get("break"):
            broke = cli("locks", "break", typed, "--yes", "--database", backend_url)
            seen["broke"] = broke.returncode, broke.stdout, broke.stderr
            ctx.create_cache("after the break", 1)  # refused: the run lost its lock

    with connect(backend_url) as db:
        first = long_names.run(database=db, machine=machine)
        assert first.status == "succeeded", first.error
        [listed] = seen["listed"]
        assert listed.run_id == first.id and len(listed.name) <= 255 and listed.name.startswith("g" * 100)
        assert [(lock.name, lock.run_id) for lock in seen["by name"]] == [(listed.name, first.id)], \
            "the lock commands find it by the name a person types"
        assert seen["by key"] == [first.id], "and by the name `processcache locks` lists"
        seen["break"] = True
        second = long_names.run(database=db, machine=machine)
        assert seen["broke"] == (0, f"broke the lock {typed}\n", ""), seen["broke"]
        assert second.status == "lost", "the break freed the lock this run held"
        assert not db.runs.locks(typed)[0].held
