"""Judgements a pager can trust, driven as an operator's farm drives them:
real `processcache run` processes on two machine names, `check`, `check --notify` with a webhook of the test's
own, `runs`, `prune` and the report. Time is moved by ageing the stored rows (`age`): a server's clock cannot be."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from channel_servers import Webhook
from cli_helpers import cli
from paths import HELPERS

from processcache import connect
from processcache.storage.timeutil import db_time, py_time

JOBS = HELPERS / "judged_jobs.py"


def run(url: str, name: str, machine: str, **env: str):
    """One real run of the job *name* (an attribute of judged_jobs.py) on *machine*."""
    return cli("run", f"{JOBS}:{name}", "-m", machine, "-d", url, env=env)


def age(url: str, seconds: float, job: str | None = None) -> None:
    """Move the runs (of *job*, ``group/job``, or all) *seconds* into the past, as if cron had run them then."""
    with connect(url) as db:
        where = "" if job is None else f" WHERE job_id = {db.history.job_id(job)}"
        for run_id, started, finished in db.backend.select(
                f"SELECT id, started_at, finished_at FROM process_job_runs{where}"):
            db.backend.execute("UPDATE process_job_runs SET started_at = $s, finished_at = $f WHERE id = $id", {
                "id": run_id, "s": db_time(py_time(started) - timedelta(seconds=seconds)),
                "f": finished and db_time(py_time(finished) - timedelta(seconds=seconds))})


def problems(url: str) -> list[dict]:
    done = cli("check", "-d", url, "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["problems"]


def kinds(url: str) -> list[tuple]:
    return sorted((p["job"], p["kind"], p.get("machine")) for p in problems(url))


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


# -- point 5: skipped copies ----------------------------------------------------------------------------------

def test_skipped_copies_do_not_count_as_running_and_are_hidden_where_a_person_reads(backend_url, tmp_path):
    assert run(backend_url, "daily", "vm1").returncode == 0
    age(backend_url, 2 * 3600)  # the day's real run was two hours ago; cron fired every hour since on both hosts
    for machine in ("vm1", "vm2", "vm1", "vm2"):
        assert run(backend_url, "daily", machine).returncode == 75  # the day's slot is taken: skipped
    assert kinds(backend_url) == [("ops/daily", "overdue", None)], "copies skipped are not the job running"
    listed = cli("runs", "ops/daily", "-d", backend_url, "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["succeeded"]
    every = cli("runs", "ops/daily", "--skipped", "-d", backend_url, "--json")
    assert [r["status"] for r in json.loads(every.stdout)] == ["skipped"] * 4 + ["succeeded"]
    only = cli("runs", "--status", "skipped", "-d", backend_url, "--json")
    assert len(json.loads(only.stdout)) == 4
    page = tmp_path / "report.html"
    assert cli("report", "--html", page, "-d", backend_url).returncode == 0
    assert '<li class="s-skipped"' not in page.read_text() and '<li class="s-succeeded"' in page.read_text()
    age(backend_url, 3600)
    pruned = cli("prune", "--skipped-older-than", "1h", "-d", backend_url, "--json")
    assert json.loads(pruned.stdout)["runs"] == 2, "the copies go; each host's newest start stays (cron fired)"
    every = cli("runs", "ops/daily", "--skipped", "-d", backend_url, "--json")
    assert [r["status"] for r in json.loads(every.stdout)] == ["skipped"] * 2 + ["succeeded"]


# -- point 3: prune keeps what check judges by ------------------------------------------------------------------

def test_prune_keeps_the_failure_check_reports_when_later_copies_were_skipped(backend_url, webhook):
    assert run(backend_url, "monthly", "vm1").returncode == 0
    age(backend_url, 40 * 86400)  # last month's run succeeded
    with connect(backend_url) as db:
        db.backend.execute("DELETE FROM process_job_slots")  # last month's slot
    assert run(backend_url, "monthly", "vm1", FAIL="1").returncode == 1  # this month's failed on the 1st
    for machine in ("vm2", "vm1", "vm2"):  # cron fires again on both hosts: the slot's failure is not tried again
        assert run(backend_url, "monthly", machine).returncode == 75
    shown = [(p["job"], p["kind"], p["run"]["machine"]) for p in problems(backend_url)]
    assert ("ops/monthly", "failed", "vm1") in shown
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
    age(backend_url, 8 * 86400)
    pruned = cli("prune", "--runs-older-than", "7d", "-d", backend_url, "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert ("ops/monthly", "failed") in [(p["job"], p["kind"]) for p in problems(backend_url)]
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
    assert [body["event"] for _, body in webhook.received] == ["failing"], "no false recovery after prune"


# -- point 1: per-host expectations ----------------------------------------------------------------------------

def jobs_machines(url: str) -> dict[str, list[str]]:
    listed = json.loads(cli("jobs", "-d", url, "--json").stdout)
    return {job["group"] + "/" + job["job"]: job["machines"] for job in listed}


def test_a_host_that_stops_running_a_job_locked_per_machine_is_overdue_there_until_retired(backend_url, webhook):
    for machine in ("vm1", "vm2"):
        assert run(backend_url, "logrotate", machine).returncode == 0
    assert kinds(backend_url) == []
    age(backend_url, 5 * 60)  # five minutes on, and logrotate was taken out of vm2's crontab: vm1 ran it since
    assert run(backend_url, "logrotate", "vm1").returncode == 0
    assert kinds(backend_url) == [("ops/logrotate", "overdue", "vm2")]
    [problem] = problems(backend_url)
    assert problem["detail"].startswith("on vm2: expected every 60s; last started ")
    assert problem["run"]["machine"] == "vm2"
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
    assert jobs_machines(backend_url)["ops/logrotate"] == ["vm1", "vm2"]
    refused = cli("jobs", "retire", "ops/logrotate", "--machine", "vm3", "-d", backend_url)
    assert refused.returncode == 1 and "vm3 never ran ops/logrotate: its machines are vm1, vm2" in refused.stderr
    retired = cli("jobs", "retire", "ops/logrotate", "--machine", "vm2", "-d", backend_url)
    assert retired.returncode == 0 and "retired vm2 from ops/logrotate" in retired.stdout, retired.stderr
    assert kinds(backend_url) == []
    assert jobs_machines(backend_url)["ops/logrotate"] == ["vm1"]
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 0
    assert [(body["event"], body["kind"] or body["was"]) for _, body in webhook.received] == [
        ("failing", "overdue"), ("recovered", "overdue")]
    assert run(backend_url, "logrotate", "vm2").returncode == 0  # cron runs it on vm2 again: vm2 is back
    assert jobs_machines(backend_url)["ops/logrotate"] == ["vm1", "vm2"]


# -- point 6: flaky ---------------------------------------------------------------------------------------------

def test_a_job_that_fails_now_and_then_is_flaky_alerted_once_entering_and_once_leaving(backend_url, webhook):
    for fails in (True, False) * 3:  # failed 3 of its last 6, its last succeeded
        assert run(backend_url, "sync", "vm1" if fails else "vm2", **({"FAIL": "1"} if fails else {})).returncode \
            == (1 if fails else 0)
    [problem] = problems(backend_url)
    assert (problem["kind"], problem["detail"]) == ("flaky", f"failed 3 of its last 6 runs (flaky=3/12); the last,"
                                                             f" run {problem['run_id']}, succeeded")
    for _ in range(7):  # the oldest failure leaves the last 12 at the 7th success: not flaky any more
        assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
        assert run(backend_url, "sync", "vm1").returncode == 0
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 0
    assert [(body["event"], body["text"]) for _, body in webhook.received] == [
        ("failing", "ops/sync is failing: flaky: failed 3 of its last 6 runs (flaky=3/12); the last, run 6,"
                    " succeeded"),
        ("recovered", "ops/sync recovered (it was flaky)")]


def test_one_streak_of_failures_that_ended_is_a_recovery_not_a_flaky_job(backend_url):
    for fails in (False, True, True, True, False):
        run(backend_url, "sync", "vm1", **({"FAIL": "1"} if fails else {}))
    assert kinds(backend_url) == []


def test_a_failing_job_whose_problem_changes_kind_is_one_incident(backend_url, webhook):
    """failed, then timed out: one alert, and one recovery when a run succeeds (not one per kind)."""
    assert run(backend_url, "fetch", "vm1", FAIL="1").returncode == 1
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
    assert run(backend_url, "fetch", "vm2", SLEEP="3").returncode == 124
    assert kinds(backend_url) == [("ops/fetch", "timed-out", None)]
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 1
    assert run(backend_url, "fetch", "vm1").returncode == 0
    assert cli("check", "-d", backend_url, "--notify", webhook.url).returncode == 0
    assert [(body["event"], body["kind"] or body["was"]) for _, body in webhook.received] == [
        ("failing", "failed"), ("recovered", "failed")]


# -- point 2: too long, without flapping, and the lock wait apart ----------------------------------------------

def start(url: str, name: str, machine: str, **env: str) -> subprocess.Popen:
    """A run of *name* on *machine* started in the background, as cron starts the next while one still works."""
    return subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{JOBS}:{name}", "-m", machine, "-d", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def ended(process: subprocess.Popen) -> int:
    """The exit code of a run started in the background, once it has ended (what it wrote to stderr read)."""
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return process.returncode


def test_time_waiting_for_the_lock_is_not_run_time(backend_url):
    holder = start(backend_url, "export", "vm1", SLEEP="3")
    time.sleep(1.0)  # vm1's run holds the lock
    waiter = run(backend_url, "export", "vm2", SLEEP="1.5")  # waits about 2 s for it, then works 1.5 s
    assert waiter.returncode == 0, waiter.stderr
    assert ended(holder) == 0
    runs = {r["machine"]: r for r in json.loads(cli("runs", "ops/export", "-d", backend_url, "--json").stdout)}
    assert 1.4 < runs["vm2"]["duration"] < 1.9 and 0.5 < runs["vm2"]["waited"] < 10
    assert runs["vm1"]["waited"] < 0.5
    assert kinds(backend_url) == [], "the newest run that ended worked 1.5 s of its 2 s"
    shown = cli("runs", "show", runs["vm2"]["id"], "-d", backend_url).stdout
    assert "waited:    " in shown and "duration:  1." in shown


def test_a_job_always_over_its_limit_does_not_flap_and_recovers_only_when_a_run_ends_within_it(backend_url,
                                                                                                 webhook):
    def notify() -> int:
        return cli("check", "-d", backend_url, "--notify", webhook.url).returncode

    assert run(backend_url, "export", "vm1", SLEEP="2.5").returncode == 0
    assert notify() == 1  # too long
    for _ in range(2):
        going = start(backend_url, "export", "vm1", SLEEP="2.5")
        time.sleep(1.0)
        assert notify() == 1, "a run still within the limit clears nothing: the last one that ended took 2.5 s"
        assert ended(going) == 0
        assert notify() == 1
    assert run(backend_url, "export", "vm1", SLEEP="0.2").returncode == 0
    assert notify() == 0
    assert [(body["event"], body["kind"] or body["was"]) for _, body in webhook.received] == [
        ("failing", "too-long"), ("recovered", "too-long")]
