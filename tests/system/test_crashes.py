"""kill -9 at random points of runs: every committed write survives, nothing half-written shows."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paths import HELPERS

from processcache import ANY, CacheContext, Registry, connect

WORKERS = HELPERS / "workers.py"
KILLS = {"sqlite": 100, "postgresql": 50, "mysql": 50}  # most land inside a run (see kill_at_random)


def kill_at_random(writers: subprocess.Popen, fifo: Path, seed: int, rng: random.Random) -> list[tuple[str, str]]:
    """Start a writer, SIGKILL it after a random moment, return the writes it reported committed.

    *writers* (workers.py crash_writers) forks each writer, its imports done once for all, and
    reports the writer's pid, then how it ended; the writer reports through *fifo*.
    """
    writers.stdin.write(f"{seed} {fifo}\n")
    writers.stdin.flush()
    pid = int(writers.stdout.readline())
    with open(fifo) as reports:  # opens once the writer has opened its end
        # Most kills land inside the run, however long a loaded machine takes to start one; the rest anywhere.
        begun = reports.readline() if rng.random() < 0.8 else ""
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(pid, signal.SIGKILL)
        assert writers.stdout.readline() == f"ended {-signal.SIGKILL}\n", "the kill ended the writer"
        out = begun + reports.read()
    lines = out.splitlines()
    if lines and not out.endswith("\n"):
        lines = lines[:-1]  # a line cut by the kill reports nothing
    return [tuple(line.split(" ", 1)) for line in lines]


@pytest.mark.slow
@pytest.mark.timeout(300)  # 100 kills on SQLite: 40 to 80 s on a loaded 2-core machine
def test_kill_9_at_random_points_loses_no_committed_write(backend_url, tmp_path):
    kind = backend_url.split(":", 1)[0]
    rng = random.Random(20261124)
    connect(backend_url).close()
    fifo = tmp_path / "reports"
    os.mkfifo(fifo)
    reported = []
    with open(tmp_path / "stderr", "w") as errors, \
         subprocess.Popen([sys.executable, str(WORKERS), "crash_writers", backend_url], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=errors, text=True) as writers:
        for seed in range(KILLS[kind]):
            reported += kill_at_random(writers, fifo, seed, rng)
        writers.stdin.close()
        assert writers.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
    assert len(reported) > 100, "the kills landed during writes, not only at start-up"
    with connect(backend_url) as db:
        ctx = CacheContext(db, "crash", "writer", "m")
        cache = ctx.get_full_cache(machine=ANY)
        entries = {e.value for e in cache.get("n", [])}
        logs = {log.message for log in ctx.get_logs(machine=ANY)}
        for kind_of_write, name in reported:
            if kind_of_write == "E":
                assert name in entries
            elif kind_of_write == "L":
                assert name in logs
            elif kind_of_write == "M":  # "R": the run began; nothing to find
                assert [e.value for e in cache[f"batch-{name}"]] == list(range(5))
        assert all(len(v) == 5 for k, v in cache.items() if k.startswith("batch-")), "no half-written batch"
        assert len(cache.get("current", [])) <= 1, "set_cache never leaves two values"
        if kind == "sqlite":
            assert db.backend.select("PRAGMA integrity_check", {})[0][0] == "ok"
        time.sleep(0.6)  # the killed runs' leases run out
        runs = db.history.list_runs("crash/writer", limit=1000)
        assert {run.status for run in runs} == {"lost"}, "every killed run is reported lost"
        assert len(runs) > KILLS[kind] / 2, "most kills landed inside a run (the rest during start-up)"
        after = Registry().job("crash", "writer")(lambda c: c.create_cache("after", True)).run(database=db,
                                                                                          machine="m")
        assert after.ok, "the next run proceeds"
