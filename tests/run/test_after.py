"""Dependencies (``after``): a job runs once its upstreams have done their work, waits for them or is skipped
saying which, and check reports a failing upstream once with the jobs it blocks. Real processes, every database."""

import os
import subprocess
import sys
import time
from datetime import timedelta

from cli_helpers import cli

from processcache import Registry, connect


def exec_job(url: str, job: str, *args: str, machine: str = "vm1", command: tuple[str, ...] = ("true",)):
    return cli("exec", "--job", job, "-d", url, "-m", machine, *args, "--", *command)


def test_a_dependant_runs_only_after_its_upstream_succeeded_and_check_reports_the_root_cause_once(backend_url):
    never = exec_job(backend_url, "etl/load", "--after", "etl/extract", "--expect-every", "1s", command=("echo", "x"))
    assert never.returncode == 75 and "waiting for etl/extract, which has never run" in never.stderr
    assert exec_job(backend_url, "etl/extract", machine="vm2", command=("false",)).returncode == 1
    blocked = exec_job(backend_url, "etl/load", "--after", "etl/extract", "--expect-every", "1s")
    assert blocked.returncode == 75
    assert "waiting for etl/extract, which has not succeeded since" in blocked.stderr and ", failed)" in blocked.stderr
    time.sleep(1.1)  # etl/load is overdue now: its upstream is why
    with connect(backend_url) as db:
        found = [(problem.job, problem.kind, problem.detail) for problem in db.check()]
    assert found == [("etl/extract", "failed", "exit code 1; blocks etl/load")], "one report, for the root cause"
    assert exec_job(backend_url, "etl/extract", machine="vm2").returncode == 0
    ran = exec_job(backend_url, "etl/load", "--after", "etl/extract", command=("echo", "loaded"))
    assert ran.returncode == 0 and "loaded" in ran.stdout
    listed = cli("jobs", "-d", backend_url).stdout.splitlines()
    assert "AFTER" in listed[0].split()
    assert [line.split()[-2] for line in listed[1:] if line.startswith("etl/load")] == ["etl/extract"]


def test_a_dependant_with_overlap_wait_starts_as_soon_as_its_upstream_succeeds(backend_url):
    waiting = subprocess.Popen([sys.executable, "-m", "processcache", "exec", "--job", "bi/report", "--after",
                                "bi/extract", "--overlap", "wait", "--wait-timeout", "60s", "-d", backend_url,
                                "--", "echo", "reported"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ))
    time.sleep(1.5)
    assert waiting.poll() is None, "it waits for its upstream"
    assert exec_job(backend_url, "bi/extract", machine="vm2").returncode == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "reported" in out


def test_an_upstream_with_a_schedule_has_done_its_work_once_it_succeeded_since_its_own_due_time(backend_url):
    registry = Registry()
    extract = registry.job("shop", "extract", schedule="0 2 * * *")(lambda ctx: None)
    load = registry.job("shop", "load", schedule="0 3 * * *", after=["shop/extract"])(lambda ctx: "loaded")
    with connect(backend_url) as db:
        done = extract.run(database=db)
        assert load.run(database=db).status == "succeeded", "it succeeded since its latest 02:00"
        db.backend.execute("UPDATE process_job_runs SET started_at = $at, finished_at = $at WHERE id = $id",
                           {"at": (done.started_at - timedelta(days=1, hours=1)).replace(tzinfo=None),
                            "id": done.id})
        skipped = load.run(database=db)
        assert skipped.status == "skipped"
        assert "waiting for shop/extract, which has not succeeded since" in skipped.error
