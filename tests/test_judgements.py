"""Judgements a pager can trust (issue 27, points 1, 2, 3, 5 and 6), driven as an operator's farm drives them:
real `processcache run` processes on two machine names, `check`, `check --notify` with a webhook of the test's
own, `runs`, `prune` and the report. Time is moved by ageing the stored rows (`age`): a server's clock cannot be."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from channel_servers import Webhook
from cli_helpers import cli

from processcache import connect
from processcache.timeutil import db_time, py_time

JOBS = Path(__file__).with_name("judged_jobs.py")


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
