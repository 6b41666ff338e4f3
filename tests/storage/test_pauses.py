"""Pause and resume: a paused job's runs skip on every machine with the pause's reason, check leaves it alone,
and the pause ends by itself or with resume. Real `run` processes on two machine names, on every database."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import cli

from processcache import Registry, connect
from processcache.errors import ProcessCacheError
from processcache.records import Pause
from processcache.storage.pauses import active

JOB = '''
from processcache import job

@job("billing", "sync", expect_every="1h")
def sync(ctx):
    print("synced")
'''


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "billing.py"
    path.write_text(JOB)
    return path


def test_a_paused_job_skips_on_every_machine_with_its_reason_and_runs_again_once_resumed(backend_url, job_file):
    assert cli("run", f"{job_file}:sync", "-d", backend_url, "-m", "vm1").returncode == 0
    paused = cli("pause", "billing/sync", "--for", "1h", "--reason", "schema migration", "-d", backend_url)
    assert paused.returncode == 0, paused.stderr
    assert "paused billing/sync until " in paused.stdout
    for machine in ("vm1", "vm2"):
        skipped = cli("run", f"{job_file}:sync", "-d", backend_url, "-m", machine)
        assert skipped.returncode == 75, skipped.stderr
        assert "synced" not in skipped.stdout
        [line] = skipped.stderr.strip().splitlines()
        assert "billing/sync is paused until " in line and line.endswith(": schema migration")
    [listed] = json.loads(cli("jobs", "--json", "-d", backend_url).stdout)
    assert listed["pause"]["reason"] == "schema migration" and listed["pause"]["by"]
    with connect(backend_url) as db:
        runs = db.list_runs("billing/sync", limit=None)
        assert [(run.status, run.machine) for run in runs] == [("skipped", "vm2"), ("skipped", "vm1"),
                                                               ("succeeded", "vm1")]
        assert all("schema migration" in run.error for run in runs[:2])
        db.backend.execute("UPDATE process_job_runs SET started_at = $at",
                           {"at": (db.clock.now() - timedelta(hours=3)).replace(tzinfo=None)})
        assert db.check() == [], "a paused job is neither overdue nor anything else: someone said so"
    assert cli("resume", "billing/sync", "-d", backend_url).stdout == "resumed billing/sync\n"
    with connect(backend_url) as db:
        assert [problem.kind for problem in db.check()] == ["overdue"]
    again = cli("run", f"{job_file}:sync", "-d", backend_url, "-m", "vm2")
    assert again.returncode == 0 and "synced" in again.stdout


def test_a_pause_for_a_while_ends_by_itself_and_one_without_an_end_waits_for_resume(backend_url):
    registry = Registry()

    @registry.job("ops", "rotate")
    def rotate(ctx):
        return "rotated"

    with connect(backend_url) as db:
        assert db.pause_job("ops/rotate") is None, "a job not run yet is recorded, and paused until resumed"
        assert rotate.run(database=db).status == "skipped"
        assert db.resume_job("ops/rotate") == 1
        until = db.pause_job("ops/rotate", 1.0, "a moment")
        assert until is not None and until > db.clock.now()
        skipped = rotate.run(database=db)
        assert (skipped.status, skipped.error.endswith(": a moment")) == ("skipped", True)
        time.sleep(1.2)
        assert rotate.run(database=db).status == "succeeded"
        assert db.resume_job("ops/rotate") == 0, "it had ended by itself"


def test_a_group_is_paused_whole_and_an_unknown_group_is_one_line(backend_url):
    registry = Registry()
    specs = [registry.job("etl", name)(lambda ctx: None) for name in ("extract", "load")]
    with connect(backend_url) as db:
        for spec in specs:
            spec.run(database=db)
        db.pause_job("etl", reason="warehouse down")
        assert [spec.run(database=db).status for spec in specs] == ["skipped", "skipped"]
        assert {job.name: job.pause and job.pause.reason for job in db.jobs()} == {
            "etl/extract": "warehouse down", "etl/load": "warehouse down"}
        with pytest.raises(ProcessCacheError, match="no group etx in this database"):
            db.pause_job("etx")


def test_a_maintenance_window_pauses_a_job_at_its_times_and_off_takes_it_away(backend_url, job_file):
    assert cli("run", f"{job_file}:sync", "-d", backend_url, "-m", "vm1").returncode == 0
    always = cli("window", "billing/sync", "* * * * *", "--for", "1h", "--reason", "weekly upkeep", "-d", backend_url)
    assert always.returncode == 0, always.stderr
    skipped = cli("run", f"{job_file}:sync", "-d", backend_url, "-m", "vm2")
    assert skipped.returncode == 75, skipped.stderr
    assert "billing/sync is paused until " in skipped.stderr and skipped.stderr.strip().endswith(": weekly upkeep")
    with connect(backend_url) as db:
        db.backend.execute("UPDATE process_job_runs SET started_at = $at",
                           {"at": (db.clock.now() - timedelta(hours=3)).replace(tzinfo=None)})
        assert db.check() == []
    assert cli("window", "billing/sync", "off", "-d", backend_url).returncode == 0
    assert cli("run", f"{job_file}:sync", "-d", backend_url, "-m", "vm2").returncode == 0
    bad = cli("window", "billing/sync", "0 2 * * *", "-d", backend_url)
    assert bad.returncode == 2 and "needs --for" in bad.stderr


@pytest.mark.parametrize(("now", "until"), [
    (datetime(2026, 12, 6, 1, 30, tzinfo=UTC), datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),  # Sunday 02:30 in Berlin
    (datetime(2026, 12, 6, 3, 0, tzinfo=UTC), None),  # 04:00 in Berlin: the window has ended
    (datetime(2026, 12, 7, 1, 30, tzinfo=UTC), None),  # Monday: no window
])
def test_a_window_is_read_in_its_time_zone(now, until):
    found = active((None, None, None, "0 2 * * sun", "Europe/Berlin", 7200.0, None), now)
    assert (found and found.until) == until
    if found:
        assert found.reason == "maintenance window 0 2 * * sun (Europe/Berlin), 2h00m"


def test_a_pause_wins_over_a_window_and_says_its_own_reason():
    now = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    found = active((now + timedelta(hours=5), "migration", "ops@web1", "0 2 * * sun", "Europe/Berlin", 7200.0,
                    "upkeep"), now)
    assert found == Pause(now + timedelta(hours=5), "migration", "ops@web1")
