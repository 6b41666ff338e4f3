"""Catch-up of missed due times: a scheduled job's next start runs the slots no run answered (all, the latest,
or none), each once across the farm, and tells the job which due time it runs for. Every database."""

import os
import subprocess
import sys
from datetime import timedelta

from processcache import Registry, connect
from processcache.schedules import current_slot, previous_due

HOURLY = "0 * * * *"

JOB = '''
from processcache import job

@job("feed", "hourly", schedule="0 * * * *", catch_up="all")
def hourly(ctx):
    return ctx.slot.isoformat()
'''


def first_run_hours_ago(db, spec, hours: int):
    """Run *spec* once, then say it started *hours* ago: the machines were down since."""
    run = spec.run(database=db)
    db.backend.execute("UPDATE process_job_runs SET started_at = $at, finished_at = $at, slot = NULL"
                       " WHERE id = $id", {"at": (db.clock.now() - timedelta(hours=hours)).replace(tzinfo=None),
                                           "id": run.id})
    db.backend.execute("DELETE FROM process_job_slots", {})


def due_times(db, count: int):
    """The *count* due times of HOURLY before the current one, oldest first, and the current one."""
    current = current_slot(HOURLY, "UTC", db.clock.now())
    found, due = [], current
    for _ in range(count):
        due = previous_due(HOURLY, "UTC", due)
        found.append(due)
    return sorted(found), current


def test_catch_up_all_runs_each_missed_due_time_oldest_first_then_the_current_one(backend_url):
    registry = Registry()
    spec = registry.job("feed", "all", schedule=HOURLY, catch_up="all")(lambda ctx: ctx.slot.isoformat())
    with connect(backend_url) as db:
        first_run_hours_ago(db, spec, 4)  # 4 h ago, just after a due time: 3 due times missed since, or 4
        current = spec.run(database=db)
        runs = sorted(db.list_runs("feed/all", limit=None), key=lambda run: run.id)[1:]
        missed, now_slot = due_times(db, len(runs) - 1)
        assert len(runs) in (4, 5), "each hour since the first run, then the current one"
        assert [run.result for run in runs] == [due.isoformat() for due in [*missed, now_slot]]
        assert current.result == now_slot.isoformat() and all(run.status == "succeeded" for run in runs)
        assert spec.run(database=db).status == "skipped", "the current due time ran already"


def test_catch_up_latest_runs_once_for_the_newest_and_skip_runs_none(backend_url):
    registry = Registry()
    latest = registry.job("feed", "latest", schedule=HOURLY, catch_up="latest")(lambda ctx: ctx.slot.isoformat())
    skip = registry.job("feed", "skip", schedule=HOURLY, catch_up="skip")(lambda ctx: ctx.slot.isoformat())
    with connect(backend_url) as db:
        first_run_hours_ago(db, latest, 4)
        latest.run(database=db)
        [newest], now_slot = due_times(db, 1)
        assert [run.result for run in db.list_runs("feed/latest", limit=2)] == [now_slot.isoformat(),
                                                                                  newest.isoformat()]
        first_run_hours_ago(db, skip, 4)
        skip.run(database=db)
        assert len(db.list_runs("feed/skip", limit=None)) == 2, "the first run and the current one"


def test_two_machines_starting_at_once_run_each_missed_due_time_once_between_them(backend_url, tmp_path):
    script = tmp_path / "feed.py"
    script.write_text(JOB)
    registry = Registry()
    spec = registry.job("feed", "hourly", schedule=HOURLY, catch_up="all")(lambda ctx: None)
    with connect(backend_url) as db:
        first_run_hours_ago(db, spec, 3)
    starts = [subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{script}:hourly", "-d", backend_url,
                                "-m", machine], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ)) for machine in ("vm1", "vm2")]
    for start in starts:
        _, err = start.communicate(timeout=120)
        assert start.returncode in (0, 75), err
    with connect(backend_url) as db:
        done = [run.result for run in db.list_runs("feed/hourly", status="succeeded") if run.result]
        assert len(done) == len(set(done)) >= 3, "each due time once, whichever machine ran it"


def test_exec_catches_up_a_command_which_reads_its_due_time_from_processcache_slot(backend_url):
    from cli_helpers import cli

    line = ("exec", "--job", "feed/cmd", "--schedule", HOURLY, "--catch-up", "all", "-d", backend_url, "--",
            "sh", "-c", "echo slot=$PROCESSCACHE_SLOT")
    assert cli(*line).returncode == 0
    with connect(backend_url) as db:
        first = db.clock.now() - timedelta(hours=2, minutes=30)
        db.backend.execute("UPDATE process_job_runs SET started_at = $at, slot = NULL",
                           {"at": first.replace(tzinfo=None)})
        db.backend.execute("DELETE FROM process_job_slots", {})
        missed, now_slot = due_times(db, 3)
        missed = [due for due in missed if due > first]  # not a due time before the job's first run
    caught = cli(*line)
    assert caught.returncode == 0, caught.stderr
    assert caught.stdout.split() == [f"slot={due.isoformat()}" for due in [*missed, now_slot]]


def test_a_job_that_catches_up_still_runs_without_its_database_when_it_may(tmp_path):
    from cli_helpers import cli

    folder = tmp_path / "state"
    folder.write_text("a file where the database's folder should be")
    script = tmp_path / "feed.py"
    down = 'catch_up="all", if_database_down="run", down_wait=0, down_runs_once_per=True)'
    script.write_text(JOB.replace('catch_up="all")', down).replace("return ctx.slot.isoformat()", 'print("fed")'))
    done = cli("run", f"{script}:hourly", "-d", f"sqlite:///{folder}/ledger.db",
               env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert "fed" in done.stdout and "running without it" in done.stderr
