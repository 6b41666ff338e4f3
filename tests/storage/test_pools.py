"""Concurrency pools: at most N runs of a pool's jobs at once on every machine together, the rest waiting or
skipped, each pool lock leased and fencing the run's writes as a job's lock does. Real processes, every database."""

import os
import subprocess
import sys

import pytest
from cli_helpers import cli

from processcache import LeaseLostError, RegistryError, cache_session, connect, job

JOBS = '''
import os, time
from processcache import job

def work(ctx):
    with open(os.environ["POOL_TRACE"], "a") as trace:
        trace.write(f"start {time.time()}\\n")
    time.sleep(0.8)
    with open(os.environ["POOL_TRACE"], "a") as trace:
        trace.write(f"end {time.time()}\\n")

extract = job("etl", "extract", pool="warehouse", overlap="wait")(work)
load = job("etl", "load", pool="warehouse", overlap="wait")(work)
report = job("bi", "report", pool="warehouse", overlap="wait")(work)
'''


def most_at_once(trace: str) -> int:
    events = sorted((float(at), 1 if kind == "start" else -1) for kind, at in
                    (line.split() for line in trace.splitlines()))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
def test_a_pool_lets_its_size_of_runs_at_once_across_jobs_and_machines(backend_url, tmp_path):
    jobs_file = tmp_path / "etl.py"
    jobs_file.write_text(JOBS)
    trace = tmp_path / "trace.txt"
    assert cli("pool", "set", "warehouse", "2", "-d", backend_url).returncode == 0
    targets = ["extract", "load", "report", "extract", "load", "report"]
    runs = [subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{jobs_file}:{target}", "-d", backend_url,
                              "-m", f"vm{n}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "POOL_TRACE": str(trace)})
            for n, target in enumerate(targets)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert most_at_once(trace.read_text()) == 2, "two at once, never three, across three jobs and six machines"
    listed = cli("pool", "-d", backend_url)
    assert listed.stdout.splitlines()[1].split() == ["warehouse", "2", "-"]


def test_a_full_pool_skips_a_run_naming_who_runs_and_frees_its_lock_at_the_end(backend_url, tmp_path):
    script = tmp_path / "nightly.py"
    script.write_text('from processcache import job\n\n@job("bi", "nightly", pool="api-quota")\n'
                      'def nightly(ctx):\n    print("ran")\n')
    with cache_session("bi", "hourly", "vm1", backend_url, pool="api-quota", overlap="skip") as holder:
        full = cli("run", f"{script}:nightly", "-d", backend_url, "-m", "vm2")
        assert full.returncode == 75, full.stderr
        assert f"the pool api-quota is full (1 at once: run {holder.run.id} on vm1)" in full.stderr
        listed = cli("pool", "--json", "-d", backend_url)
        assert f'"running": [\n      {holder.run.id}\n    ]' in listed.stdout
    ran = cli("run", f"{script}:nightly", "-d", backend_url, "-m", "vm2")
    assert ran.returncode == 0 and "ran" in ran.stdout


def test_a_run_whose_pool_lock_was_taken_over_can_write_nothing_more(backend_url):
    with cache_session("etl", "slow", "vm1", backend_url, pool="fenced", lease=30) as stalled:
        stalled.create_cache("step", 1)
        with connect(backend_url) as db:  # its lease ran out (a paused VM), renewed next in 10 s
            db.backend.execute("UPDATE process_job_locks SET expires_at = 0 WHERE name = 'pool:fenced#0'", {})
        with cache_session("etl", "other", "vm2", backend_url, pool="fenced", overlap="skip") as taker:
            taker.create_cache("step", 1)
            with pytest.raises(LeaseLostError):
                stalled.create_cache("step", 2)


def test_a_pool_is_named_and_sized_as_users_expect():
    with pytest.raises(RegistryError, match="pool_size=0: give 1 to 100"):
        job("etl", "bad", pool="warehouse", pool_size=0)
    with pytest.raises(RegistryError, match="pool=3: name the pool"):
        job("etl", "bad", pool=3)
    refused = cli("pool", "set", "warehouse", "0")
    assert refused.returncode == 2 and "0 is not in the range 1<=x<=100" in refused.stderr
