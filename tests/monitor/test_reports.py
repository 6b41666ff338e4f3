"""Runs and logs you can find, from the shell and from Python."""

import json
import selectors
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from cli_helpers import cli

import processcache
from processcache import CacheContext, JobSummary, LogType, ProcessCacheError, Registry, RunDetail, connect


def seed(db):
    """billing/invoices succeeds on box-1, billing/refunds fails on box-2, ops/backup succeeds on box-1."""
    registry = Registry()

    @registry.job("billing", "invoices")
    def invoices(ctx):
        ctx.logger.info("sent 3 invoices")
        return {"sent": 3}

    @registry.job("billing", "refunds")
    def refunds(ctx):
        ctx.create_log("about to fail", LogType.WARNING)
        raise RuntimeError("bank API down")

    @registry.job("ops", "backup")
    def backup(ctx):
        ctx.create_log("backed up")

    return (invoices.run(database=db, machine="box-1"), refunds.run(database=db, machine="box-2"),
            backup.run(database=db, machine="box-1"))


def test_every_report_of_the_cli_is_a_typed_method_of_database(backend):
    ok, bad, backup = seed(backend)
    assert {"JobSummary", "Problem", "RunDetail", "LockRecord", "RunRecord", "LogRecord"} <= set(processcache.__all__)
    summaries = backend.jobs()
    assert all(isinstance(s, JobSummary) for s in summaries)
    assert [(s.name, s.last_run.status, s.machines) for s in summaries] == [
        ("billing/invoices", "succeeded", ("box-1",)), ("billing/refunds", "failed", ("box-2",)),
        ("ops/backup", "succeeded", ("box-1",))]
    assert [r.id for r in backend.list_runs("billing")] == [bad.id, ok.id], "a group alone: every job of it"
    assert [r.id for r in backend.list_runs("billing/invoices")] == [ok.id]
    assert [r.id for r in backend.list_runs(status="failed")] == [bad.id]
    assert [r.id for r in backend.list_runs(machine="box-1", limit=1)] == [backup.id]
    assert [r.id for r in backend.list_runs(since=timedelta(hours=1))] == [backup.id, bad.id, ok.id]
    assert backend.list_runs(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    assert backend.list_runs(since=datetime(2999, 1, 1)) == [], "a naive time is UTC"
    assert [(p.job, p.kind, p.run_id) for p in backend.check(grace="5m")] == [("billing/refunds", "failed", bad.id)]
    assert [log.message for log in backend.logs("billing", type="warning")] == ["about to fail"]
    assert [log.message for log in backend.logs(run=ok.id)] == ["sent 3 invoices"]
    assert backend.count_logs() == 4 and backend.count_logs("billing/refunds") == 2
    assert [log.run_id for log in backend.logs(limit=2)] == [bad.id, backup.id], "the newest, oldest first"
    assert [log.message for log in backend.logs(after=backend.logs(limit=2)[0].id)] == ["backed up"]
    assert backend.locks() == []
    holder = backend.runs.start("ops", "backup", "box-9", 9, lease=300)
    assert backend.runs.acquire("ops/backup", "box-9", 9, holder.id, lease=300)
    assert [(lock.name, lock.machine, lock.run_id) for lock in backend.locks()] == [("ops/backup", "box-9", holder.id)]
    with pytest.raises(ProcessCacheError, match="no group nope in this database"):
        backend.list_runs("nope")


def test_one_run_whole_with_the_exit_code_processcache_run_gives_it(backend):
    ok, bad, _ = seed(backend)
    detail = backend.run(bad.id)
    assert isinstance(detail, RunDetail) and detail.run == backend.runs.get(bad.id)
    assert detail.exit_code == 1 and "RuntimeError: bank API down" in detail.run.traceback
    first_lines = [log.message.splitlines()[0] for log in detail.logs]
    assert first_lines == ["about to fail", "Traceback (most recent call last):"]
    assert backend.run(ok.id).exit_code == 0 and backend.run(ok.id).run.result == {"sent": 3}
    holder = backend.runs.start("billing", "invoices", "box-3", 7, lease=300)
    assert backend.runs.acquire("billing/invoices", "box-3", 7, holder.id, lease=300)
    registry = Registry()
    skipped = registry.job("billing", "invoices")(lambda ctx: None).run(database=backend, machine="box-1")
    assert (skipped.status, backend.run(skipped.id).exit_code) == ("skipped", 75)
    assert backend.run(holder.id).exit_code is None, "still running"
    stopped = backend.runs.finish(holder, "terminated", error="terminated by SIGTERM", signal=15)
    assert backend.run(stopped.id).exit_code == 143
    with pytest.raises(ProcessCacheError, match="no run 999999 in this database: `processcache runs` lists them"):
        backend.run(999999)


def test_jobs_shows_a_run_in_progress_not_the_copies_skipped_after_it(backend):
    registry = Registry()
    spec = registry.job("ops", "hourly", expect_every="1h")(lambda ctx: None)
    spec.run(database=backend, machine="m")
    running = backend.runs.start("ops", "hourly", "m", 1, lease=300)
    assert backend.runs.acquire("ops/hourly", "m", 1, running.id, lease=300)
    assert [spec.run(database=backend, machine="m").status for _ in range(2)] == ["skipped", "skipped"]
    [summary] = backend.jobs()
    assert (summary.last_run.id, summary.last_run.status) == (running.id, "running")
    backend.runs.finish(running, "failed", error="boom")
    [summary] = backend.jobs()
    assert summary.last_run.status == "failed", "how the job really ended, not the skips after it"
    assert [p.kind for p in backend.check()] == ["failed"], "check judges the last attempt, as before"


def test_runs_of_a_group_since_a_time_with_status_and_machine_from_the_shell(backend_url):
    with connect(backend_url) as db:
        ok, bad, backup = seed(db)

    def ids(*args):
        result = cli("runs", "--json", *args, "-d", backend_url)
        assert result.returncode == 0, result.stderr
        return [run["id"] for run in json.loads(result.stdout)]

    assert ids("billing") == [bad.id, ok.id]
    assert ids("billing/") == [bad.id, ok.id]
    assert ids("billing", "--since", "1h") == [bad.id, ok.id]
    assert ids("--since", "2999-01-01T00:00") == []
    assert ids("billing", "--status", "failed", "--machine", "box-2") == [bad.id]
    assert ids("--machine", "box-1") == [backup.id, ok.id]
    bad_since = cli("runs", "--since", "yesterday", "-d", backend_url)
    assert bad_since.returncode == 2 and "'yesterday' is neither a duration ago" in bad_since.stderr
    table = cli("runs", "billing", "-d", backend_url).stdout
    assert "billing/refunds" in table and "ops/backup" not in table
    unknown = cli("runs", "biling", "-d", backend_url)
    assert unknown.returncode == 1 and "no group biling in this database" in unknown.stderr
    assert "(did you mean billing?)" in unknown.stderr


def test_runs_show_prints_one_run_whole_in_utc_and_local_time(backend_url):
    with connect(backend_url) as db:
        _, bad, _ = seed(db)
        started = db.runs.get(bad.id).started_at
    shown = cli("runs", "show", bad.id, "-d", backend_url, env={"TZ": "XYZ-3"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:3] == [f"run:       {bad.id} of billing/refunds", f"machine:   box-2 (pid {bad.pid})",
                         "status:    failed"]
    local = started + timedelta(hours=3)
    assert lines[3] == f"started:   {started:%Y-%m-%d %H:%M:%S} UTC, {local:%Y-%m-%d %H:%M:%S} XYZ local"
    assert "exit code: 1" in lines and "error:     RuntimeError: bank API down" in lines
    assert "traceback:" in lines and "  RuntimeError: bank API down" in lines
    after = lines.index("logs:      2")
    assert lines[after + 1].endswith(f"billing/refunds box-2 run {bad.id} [WARNING] about to fail")
    data = json.loads(cli("runs", "show", bad.id, "--json", "-d", backend_url).stdout)
    assert (data["run"]["id"], data["exit_code"], len(data["logs"])) == (bad.id, 1, 2)
    missing = cli("runs", "show", "999999", "-d", backend_url)
    assert missing.returncode == 1 and "no run 999999 in this database" in missing.stderr
    for args, said in [(["show"], "`runs show` takes one run's id"), (["show", "x"], "`runs show` takes one run's id"),
                       (["show", bad.id, "--status", "failed"], "`runs show` takes no --status"),
                       (["billing", "ops"], "one GROUP or GROUP/JOB")]:
        refused = cli("runs", *args, "-d", backend_url)
        assert refused.returncode == 2 and said in refused.stderr, args


def test_a_group_named_show_is_listed_with_a_slash(backend_url):
    with connect(backend_url) as db:
        run = Registry().job("show", "tonight")(lambda ctx: None).run(database=db, machine="m")
    listed = cli("runs", "show/", "--json", "-d", backend_url)
    assert [r["id"] for r in json.loads(listed.stdout)] == [run.id]


def test_logs_says_on_stderr_how_many_a_page_leaves_out(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "ops", "chatty", "box-1")
        for n in range(7):
            ctx.create_log(f"m{n}")
    cut = cli("logs", "ops/chatty", "--limit", "3", "-d", backend_url)
    assert cut.stdout.count("\n") == 3 and "showing" not in cut.stdout, "stdout stays clean for pipes"
    assert cut.stderr.strip() == "showing 3 of 7 logs (use --limit, or --offset to page back)"
    paged = cli("logs", "ops", "--limit", "3", "--offset", "6", "--json", "-d", backend_url)
    assert [json.loads(line)["message"] for line in paged.stdout.splitlines()] == ["m0"]
    assert "showing 1 of 7 logs" in paged.stderr
    whole = cli("logs", "ops/chatty", "-d", backend_url)
    assert whole.stdout.count("\n") == 7 and whole.stderr == ""


def test_logs_counts_what_a_page_leaves_out_only_up_to_ten_thousand(backend_url):
    """A farm's ledger holds millions of logs: `logs` counts no further than it says (0.5 s at 10M logs)."""
    with connect(backend_url) as db:
        job_id = db.store.job_id("ops", "chatty")
        with db.transaction():
            db.backend.insert_many("process_job_logs", ("job_id", "machine", "log_type", "message", "created_at"),
                                   [(job_id, "m", "GENERIC", f"m{n}", "2026-11-26 03:00:00") for n in range(10_050)])
        assert db.count_logs("ops") == 10_050 and db.count_logs("ops", at_most=7) == 7
        assert db.count_logs("ops", after=db.logs("ops", limit=3)[0].id, at_most=7) == 2
    cut = cli("logs", "ops", "--limit", "3", "-d", backend_url)
    assert cut.stderr.strip() == "showing 3 of more than 10,000 logs (use --limit, or --offset to page back)"
    assert cut.stdout.splitlines()[-1].endswith("m10049")


def test_logs_follow_with_limit_0_prints_only_what_comes(backend_url):
    with connect(backend_url) as db:
        CacheContext(db, "ops", "old", "box-1").create_log("written before following")
    follower = subprocess.Popen([sys.executable, "-m", "processcache", "logs", "--follow", "-n", "0",
                                 "-d", backend_url], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2.5)
        with connect(backend_url) as db:
            CacheContext(db, "ops", "new", "box-1").create_log("written while following")
        seen = first_line(follower.stdout, timeout=30)
    finally:
        follower.kill()
        follower.communicate(timeout=30)
    assert "written while following" in seen, seen


def first_line(stream, timeout: float) -> str:
    """The next line a process prints, or "" if none comes within *timeout* seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    return stream.readline() if selector.select(timeout) else ""
