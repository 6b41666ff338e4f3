"""Fencing: a run that lost its lock writes nothing more, ends `lost`, and memoised values stay one value.

The lease is lost three ways a farm meets: a process paused (SIGSTOP, as a
paused VM), one C call holding the GIL past the lease (the heartbeat thread
cannot run), and, in-process, a lease left to run out.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from paths import HELPERS

import processcache
from processcache import CacheContext, LeaseLostError
from processcache.storage.fence import Fence

WORKERS = HELPERS / "fencing_workers.py"


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(process: subprocess.Popen, expected: str) -> None:
    line = process.stdout.readline()
    assert line.strip() == expected, (line, process.stderr.read() if process.poll() is not None else "")


def finish(process: subprocess.Popen, timeout: float = 60) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out.strip().splitlines()[-1]


def held_context(db, lease: float) -> CacheContext:
    """A context whose run holds the job's lock for *lease* seconds, with no heartbeat to renew it."""
    ctx = CacheContext(db, "fence", "unit", machine="m1")
    ctx.run = db.runs.start("fence", "unit", "m1", os.getpid(), lease)
    assert db.runs.acquire("fence/unit", "m1", os.getpid(), ctx.run.id, lease)
    ctx.fence = Fence((("fence/unit", ctx.run.id),))
    return ctx


def test_a_run_whose_lock_was_taken_over_can_write_nothing_and_ends_lost(backend):
    ctx = held_context(backend, lease=0.3)
    ctx.create_cache("before", 1)
    time.sleep(0.6)
    taker = backend.runs.start("fence", "unit", "m2", os.getpid(), 30)
    assert backend.runs.acquire("fence/unit", "m2", os.getpid(), taker.id, 30)

    assert backend.runs.renew_lock("fence/unit", ctx.run.id, 30) is False  # renewal only while the holder
    for write in (lambda: ctx.create_cache("after", 2), lambda: ctx.create_cache("after", 2, ttl=60),
                  lambda: ctx.create_cache_many({"after": 2, "more": 3}), lambda: ctx.set_cache("before", 9),
                  lambda: ctx.delete_cache("before"), lambda: ctx.clear_cache()):
        with pytest.raises(LeaseLostError, match="lost the lease on the lock fence/unit"):
            write()
    assert [e.value for e in ctx.get_full_cache()["before"]] == [1]
    assert list(ctx.get_full_cache()) == ["before"]

    ended = backend.runs.finish(ctx.run, "succeeded", fence=ctx.fence)
    assert ended.status == "lost" and "another run took the lock over" in ended.error
    assert backend.runs.get(ctx.run.id).status == "lost"
    assert backend.runs.get(taker.id).status == "running"


def test_a_run_still_holding_an_expired_lease_nobody_took_writes_and_succeeds(backend):
    """An expired lease that no one took over is still this run's: no overlap happened, nothing is refused."""
    ctx = held_context(backend, lease=0.2)
    time.sleep(0.4)
    ctx.create_cache("late", 1)
    assert backend.runs.renew_lock("fence/unit", ctx.run.id, 30) is True
    assert backend.runs.finish(ctx.run, "succeeded", fence=ctx.fence).status == "succeeded"


def test_finish_moves_a_run_out_of_running_only(backend):
    ctx = held_context(backend, lease=30)
    first = backend.runs.finish(ctx.run, "failed", "RuntimeError: boom", fence=ctx.fence)
    again = backend.runs.finish(ctx.run, "succeeded", fence=ctx.fence)
    assert first.status == again.status == "failed" and again.error == "RuntimeError: boom"


def test_a_heartbeat_learns_that_its_lock_was_taken_over(backend):
    ctx = held_context(backend, lease=0.3)
    time.sleep(0.5)
    taker = backend.runs.start("fence", "unit", "m2", os.getpid(), 30)
    assert backend.runs.acquire("fence/unit", "m2", os.getpid(), taker.id, 30)
    assert backend.runs.heartbeat(ctx.run.id, 30, "fence/unit") is False


@pytest.mark.slow
@pytest.mark.parametrize("pause", ["sigstop", "gil"])
def test_a_paused_holder_and_the_run_that_took_over_never_both_write(backend_url, pause):
    """A SIGSTOPped process (a paused VM) or one C call holding the GIL loses the lease;
    only the taker's writes land."""
    processcache.connect(backend_url).close()
    first = start("locked_writer", backend_url, "A", 1, "gil" if pause == "gil" else 4)
    wait_for_line(first, "holding")
    if pause == "sigstop":
        first.send_signal(signal.SIGSTOP)
        time.sleep(1.5)
    second = start("locked_writer", backend_url, "B", 5, 0)
    try:
        assert finish(second) == "succeeded: None"
    finally:
        if pause == "sigstop":
            first.send_signal(signal.SIGCONT)
    outcome = finish(first)
    assert outcome.startswith("lost: LeaseLostError: lost the lease on the lock fence/writer"), outcome

    with processcache.connect(backend_url) as db:
        ctx = CacheContext(db, "fence", "writer", "B")
        written = [(e.id, e.value) for e in ctx.get_cache("writer", machine=processcache.ANY)]
        statuses = sorted(run.status for run in db.history.list_runs())
    assert [value for _, value in written] == ["A 0", "B 0", "B 1", "B 2", "B 3"]
    assert statuses == ["lost", "succeeded"]


@pytest.mark.slow
def test_a_memoised_value_computed_by_a_paused_process_does_not_replace_the_takers(backend_url):
    processcache.connect(backend_url).close()
    first = start("memo_computer", backend_url, "A", 1, 3)
    wait_for_line(first, "computing")
    first.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)
        second = start("memo_computer", backend_url, "B", 5, 0)
        wait_for_line(second, "computing")
        assert finish(second) == "result B"
    finally:
        first.send_signal(signal.SIGCONT)
    assert finish(first) == "result B"
    with processcache.connect(backend_url) as db:
        ctx = CacheContext(db, "fence-memo", "memoize", "any")
        values = [e.value for entries in ctx.get_full_cache(machine=processcache.ANY).values() for e in entries]
    assert values == ["B"]


@pytest.mark.slow
def test_a_memoised_computation_longer_than_its_lease_is_computed_once(backend_url):
    """The computer's lease is renewed while it computes; a waiter does not take over a live computation."""
    processcache.connect(backend_url).close()
    first = start("memo_computer", backend_url, "A", 0.6, 2.5)
    wait_for_line(first, "computing")
    second = start("memo_computer", backend_url, "B", 0.6, 0)
    assert finish(second) == "result A"
    assert finish(first) == "result A"
