"""Retiring, restoring and deleting a job taken out of the crontab."""

import json
import time
from datetime import timedelta

import pytest
from cli_helpers import cli

from processcache import CacheContext, ProcessCacheError, Registry, connect
from processcache.monitor.check import check
from processcache.storage.timeutil import utcnow


def hourly(name="old-export", body=None):
    registry = Registry()

    @registry.job("billing", name, expect_every="1h")
    def spec(ctx):
        ctx.create_cache("cursor", 12)
        ctx.create_log("exported")
        if body:
            body(ctx)

    return spec


def names(summaries):
    return [summary.name for summary in summaries]


def test_a_retired_job_leaves_check_and_jobs_and_keeps_its_history(backend):
    old, kept = hourly(), hourly("invoices")
    old_run = old.run(database=backend, machine="m")
    kept.run(database=backend, machine="m")
    later = utcnow() + timedelta(hours=3)  # both overdue, as a job taken out of the crontab becomes
    assert {(p.job, p.kind) for p in check(backend, now=later)} == {
        ("billing/old-export", "overdue"), ("billing/invoices", "overdue")}
    retired_at = backend.retire_job("billing/old-export")
    assert [(p.job, p.kind) for p in check(backend, now=later)] == [("billing/invoices", "overdue")]
    assert names(backend.jobs()) == ["billing/invoices"]
    [shown] = [s for s in backend.jobs(include_retired=True) if s.name == "billing/old-export"]
    assert shown.retired and shown.retired_at == retired_at and shown.last_run.id == old_run.id
    assert [r.id for r in backend.list_runs("billing/old-export")] == [old_run.id]
    assert [log.message for log in backend.logs("billing/old-export")] == ["exported"]
    assert [e.value for e in CacheContext(backend, "billing", "old-export", "m").get_cache("cursor")] == [12]


def test_a_run_that_starts_after_retiring_brings_the_job_back(backend):
    spec = hourly()
    spec.run(database=backend, machine="m")
    backend.retire_job("billing/old-export")
    assert backend.jobs() == []
    time.sleep(0.05)  # in use, cron's next start is an hour away; here, clearly after the retiring
    again = spec.run(database=backend, machine="other")
    [summary] = backend.jobs()
    assert summary.retired_at is None and summary.last_run.id == again.id
    assert backend.restore_job("billing/old-export") is False, "nothing was retired any more"


def test_restore_brings_a_retired_job_back_at_once(backend):
    hourly().run(database=backend, machine="m")
    assert backend.restore_job("billing/old-export") is False
    backend.retire_job("billing/old-export")
    assert backend.restore_job("billing/old-export") is True
    assert names(backend.jobs()) == ["billing/old-export"]
    assert [p.kind for p in check(backend, now=utcnow() + timedelta(hours=3))] == ["overdue"]


def test_check_is_well_when_every_job_is_retired_and_still_fails_on_a_database_without_jobs(backend):
    assert [p.kind for p in backend.check()] == ["no-jobs"]
    hourly(body=lambda ctx: 1 / 0).run(database=backend, machine="m")
    assert [p.kind for p in backend.check()] == ["failed"]
    backend.retire_job("billing/old-export")
    assert backend.check() == []


def test_delete_removes_the_jobs_runs_logs_and_entries_and_nothing_of_its_neighbours(backend):
    old, kept = hourly(), hourly("invoices")
    for _ in range(3):
        old.run(database=backend, machine="m")
    kept_run = kept.run(database=backend, machine="m")
    assert backend.delete_job("billing/old-export", dry_run=True) == {"logs": 3, "runs": 3, "entries": 3}
    assert len(backend.list_runs()) == 4, "a dry run deletes nothing"
    assert backend.delete_job("billing/old-export") == {"logs": 3, "runs": 3, "entries": 3}
    assert names(backend.jobs(include_retired=True)) == ["billing/invoices"]
    with pytest.raises(ProcessCacheError, match="no job billing/old-export in this database"):
        backend.list_runs("billing/old-export")
    for table in ("process_job_runs", "process_job_logs", "process_cache"):
        assert backend.backend.values(f"SELECT COUNT(*) FROM {table}", {}) == [1], table
    assert [r.id for r in backend.list_runs()] == [kept_run.id]
    again = old.run(database=backend, machine="m")
    assert again.ok, "the Database that deleted the job records it anew"
    assert [s.last_run.id for s in backend.jobs() if s.job == "old-export"] == [again.id]


def test_delete_is_refused_while_a_run_of_the_job_is_alive(backend):
    hourly().run(database=backend, machine="m")
    alive = backend.runs.start("billing", "old-export", "box-2", 4242, lease=300)
    assert backend.runs.acquire("billing/old-export", "box-2", 4242, alive.id, lease=300)
    refused = (f"run {alive.id} of billing/old-export is running on box-2 \\(pid 4242\\):"
               " delete the job once it has ended")
    with pytest.raises(ProcessCacheError, match=refused):
        backend.delete_job("billing/old-export", dry_run=True)
    with pytest.raises(ProcessCacheError, match=refused):
        backend.delete_job("billing/old-export")
    assert len(backend.list_runs("billing/old-export")) == 2, "nothing deleted"
    backend.runs.finish(alive, "succeeded")
    backend.runs.release("billing/old-export", alive.id)
    assert backend.delete_job("billing/old-export")["runs"] == 2


def test_delete_goes_in_batches_and_reports_each(backend, monkeypatch):
    monkeypatch.setattr("processcache.storage.history.PRUNE_BATCH", 2)
    ctx = CacheContext(backend, "billing", "old-export", "m")
    ctx.create_cache_many([(f"k{n}", n) for n in range(5)])
    batches = []
    assert backend.delete_job("billing/old-export", progress=lambda table, n: batches.append((table, n))) \
        == {"logs": 0, "runs": 0, "entries": 5}
    assert batches == [("entries", 2), ("entries", 2), ("entries", 1)]


def test_jobs_retire_restore_and_delete_from_the_shell(backend_url):
    with connect(backend_url) as db:
        hourly(body=lambda ctx: 1 / 0).run(database=db, machine="m")
        hourly("invoices").run(database=db, machine="m")
    assert cli("check", "-d", backend_url).returncode == 1, "the old job's failure"
    retired = cli("jobs", "retire", "Billing/Old Export", "-d", backend_url)
    assert retired.returncode == 0, retired.stderr
    assert "retired Billing/Old Export: `check` and `jobs` leave it out" in retired.stdout
    assert "A run of it that starts later brings it back" in retired.stdout
    assert cli("check", "-d", backend_url).returncode == 0
    listed = cli("jobs", "-d", backend_url).stdout
    assert "billing/invoices" in listed and "old-export" not in listed
    every = cli("jobs", "--all", "-d", backend_url).stdout.splitlines()
    assert "RETIRED" in every[0] and every[1].startswith("billing/invoices")
    assert every[2].startswith("billing/old-export") and "failed" in every[2]
    data = json.loads(cli("jobs", "--all", "--json", "-d", backend_url).stdout)
    assert [(job["job"], job["retired_at"] is not None) for job in data] == [("invoices", False), ("old-export", True)]
    restored = cli("jobs", "-d", backend_url, "restore", "billing/old-export")  # --database before the subcommand
    assert restored.stdout.strip() == "restored billing/old-export: `check` and `jobs` show it again"
    assert "not retired: nothing to restore" in cli("jobs", "restore", "billing/old-export", "-d", backend_url).stdout
    asked = cli("jobs", "delete", "billing/old-export", "-d", backend_url, input="n\n")
    assert asked.returncode == 1
    assert "Delete billing/old-export for good, with its 1 runs, 2 logs and 1 cache entries?" in asked.stdout
    assert "old-export" in cli("jobs", "-d", backend_url).stdout, "nothing deleted when the answer is no"
    deleted = cli("jobs", "delete", "billing/old-export", "--yes", "-d", backend_url)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted billing/old-export with its 1 runs, 2 logs and 1 cache entries"
    assert "old-export" not in cli("jobs", "--all", "-d", backend_url).stdout
    mistyped = cli("jobs", "retire", "billing/invoice", "-d", backend_url)
    assert mistyped.returncode == 1 and mistyped.stderr.strip().splitlines() == [(
        "Error: no job billing/invoice in this database: `processcache jobs` lists them"
        " (did you mean billing/invoices?)")]


def test_jobs_says_where_the_retired_jobs_are_and_refuses_listing_options_on_a_subcommand(backend_url):
    with connect(backend_url) as db:
        hourly().run(database=db, machine="m")
        db.retire_job("billing/old-export")
    listed = cli("jobs", "-d", backend_url).stdout.strip()
    assert listed == "no jobs but 1 retired: `processcache jobs --all` lists them"
    refused = cli("jobs", "--all", "retire", "billing/old-export", "-d", backend_url)
    assert refused.returncode == 2 and "`jobs retire` takes no --all" in refused.stderr
    assert "Example" in cli("jobs", "delete", "--help").stdout


def test_jobs_subcommands_print_json_for_machines_given_before_or_after_them(backend_url):
    with connect(backend_url) as db:
        hourly().run(database=db, machine="m")
    retired = json.loads(cli("jobs", "--json", "retire", "billing/old-export", "-d", backend_url).stdout)
    assert retired["job"] == "billing/old-export" and retired["retired_at"].endswith("+00:00")
    assert json.loads(cli("jobs", "restore", "billing/old-export", "--json", "-d", backend_url).stdout) == {
        "job": "billing/old-export", "was_retired": True}
    assert json.loads(cli("jobs", "delete", "billing/old-export", "--yes", "--json", "-d", backend_url).stdout) == {
        "job": "billing/old-export", "logs": 1, "runs": 1, "entries": 1}
