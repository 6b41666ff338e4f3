"""SIGTERM and SIGINT: the run ends recorded as terminated, its lock released, its writes kept."""

import os
import signal
import subprocess
import sys

import pytest
from paths import HELPERS

from processcache import Registry, cache_session, connect

JOBS = HELPERS / "signal_jobs.py"


def start(target, url):
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    process = subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{JOBS}:{target}", "-d", url,
                                "-m", "m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline() == "started\n", process.communicate()[1]
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_as_terminated_and_exits_128_plus_the_signal(backend_url, signum):
    process = start("sleeper", backend_url)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err
    assert "terminated in" in err and f"terminated by {name}" in err
    with connect(backend_url) as db:
        [run] = db.history.list_runs("signals/sleeper")
        assert run.status == "terminated" and name in run.error and run.signal == signum
        assert db.runs.locks("signals/sleeper")[0].held is False, "the lock was released"
    with cache_session("signals", "sleeper", machine="m", database=backend_url) as ctx:
        assert [e.value for e in ctx.tree["before"]] == ["kept"]
    registry = Registry()
    assert registry.job("signals", "sleeper")(lambda ctx: None).run(database=backend_url, machine="m").ok


def test_a_second_sigint_exits_at_once(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    process = start("stubborn", url)
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline() == "ignoring the first signal\n"
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGINT
