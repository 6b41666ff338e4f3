"""Run history, last success, results, logging into the log table, check and prune."""

import logging
import time
from datetime import timedelta

import pytest

import processcache
from processcache import LogType, Registry, cache_session
from processcache.monitor.check import check
from processcache.storage.history import PRUNE_BATCH
from processcache.storage.timeutil import utcnow


def age(backend, table, column, seconds):
    """Move every row of *table* *seconds* into the past, as if written then."""
    for row_id, moment in backend.backend.select(f"SELECT id, {column} FROM {table}", {}):
        from processcache.storage.timeutil import db_time, py_time

        backend.backend.execute(f"UPDATE {table} SET {column} = $moment WHERE id = $id",
                                {"moment": db_time(py_time(moment) - timedelta(seconds=seconds)), "id": row_id})


def job(registry=None, name="job", body=None, **options):
    registry = registry or Registry()

    @registry.job("history", name, **options)
    def spec(ctx):
        return body(ctx) if body else None

    return spec


def test_runs_record_each_status(backend):
    ok = job(name="ok").run(database=backend, machine="m")
    failed = job(name="bad", body=lambda ctx: 1 / 0).run(database=backend, machine="m")
    assert (ok.status, failed.status) == ("succeeded", "failed")
    assert failed.error == "ZeroDivisionError: division by zero"
    history = backend.history
    assert [r.id for r in history.list_runs(status="failed")] == [failed.id]
    assert [r.id for r in history.list_runs()] == [failed.id, ok.id]
    assert [r.id for r in history.list_runs("history/ok")] == [ok.id]
    assert history.list_runs(machine="elsewhere") == []


def test_a_json_return_value_is_kept_as_the_runs_result(backend):
    returned = job(body=lambda ctx: {"fetched": 12, "pages": [1, 2]}).run(database=backend, machine="m")
    assert returned.result == {"fetched": 12, "pages": [1, 2]}
    assert backend.runs.get(returned.id).result == {"fetched": 12, "pages": [1, 2]}
    odd = job(name="odd", body=lambda ctx: object()).run(database=backend, machine="m")
    assert odd.ok and odd.result is None and backend.runs.get(odd.id).result is None


def test_last_success_is_the_previous_successful_run(backend):
    seen = []
    spec = job(body=lambda ctx: seen.append(ctx.last_success()))
    first = spec.run(database=backend, machine="m")
    job(name="job", body=lambda ctx: 1 / 0, registry=Registry()).run(database=backend, machine="m")
    second = spec.run(database=backend, machine="m")
    spec.run(database=backend, machine="other")
    per_machine = job(name="job", scope="machine", body=lambda ctx: seen.append(ctx.last_success()),
                      registry=Registry())
    per_machine.run(database=backend, machine="new")
    assert seen[0] is None
    assert seen[1].id == first.id and seen[1].started_at == first.started_at
    assert seen[2].id == second.id, "by default, the job's runs on any machine: it goes on where m stopped"
    assert seen[3] is None, "with scope='machine', this machine's runs"
    with cache_session("history", "job", machine="other", database=backend, scope="machine") as ctx:
        assert ctx.last_success(machine=__import__("processcache").ANY).machine == "new"


def test_ctx_logger_stores_records_with_levels_linked_to_the_run(backend):
    def body(ctx):
        ctx.logger.debug("details %s", 1)
        ctx.logger.info("fetched %d rows", 12)
        ctx.logger.warning("slow answer")
        ctx.logger.error("bad row")
        ctx.logger.critical("gave up")

    run = job(body=body).run(database=backend, machine="m")
    logs = backend.store.logs(run_id=run.id)
    assert [(log.type, log.level, log.message) for log in logs] == [
        (LogType.GENERIC, "DEBUG", "details 1"), (LogType.GENERIC, "INFO", "fetched 12 rows"),
        (LogType.WARNING, "WARNING", "slow answer"), (LogType.ERROR, "ERROR", "bad row"),
        (LogType.ERROR, "CRITICAL", "gave up")]


def test_third_party_loggers_are_captured_on_request_only(backend):
    library = logging.getLogger("some.library")

    def body(ctx):
        library.info("library says hi")
        library.debug("library detail")

    plain = job(name="plain", body=body).run(database=backend, machine="m")
    captured = job(name="captured", body=body, capture_logging=True).run(database=backend, machine="m")
    debug = job(name="debug", body=body, capture_logging="DEBUG").run(database=backend, machine="m")
    assert backend.store.logs(run_id=plain.id) == []
    assert [(log.level, log.message) for log in backend.store.logs(run_id=captured.id)] == [("INFO", "library says hi")]
    assert [log.message for log in backend.store.logs(run_id=debug.id)] == ["library says hi", "library detail"]
    assert logging.getLogger().handlers == [h for h in logging.getLogger().handlers if
                                            type(h).__name__ != "DatabaseHandler"], "the capture is removed"
    library.warning("after the run")
    assert backend.store.logs(run_id=captured.id)[-1].message == "library says hi"


def test_a_logged_exception_keeps_its_traceback(backend):
    def body(ctx):
        try:
            {}["missing"]
        except KeyError:
            ctx.logger.exception("lookup failed")

    run = job(body=body).run(database=backend, machine="m")
    [log] = backend.store.logs(run_id=run.id)
    assert log.message.startswith("lookup failed\nTraceback") and "KeyError: 'missing'" in log.message


def test_check_reports_each_kind_of_problem(backend):
    assert [p.kind for p in check(backend)] == ["no-jobs"]
    job(name="fine", expect_every="1h").run(database=backend, machine="m")
    job(name="broken", body=lambda ctx: 1 / 0).run(database=backend, machine="m")
    job(name="slow", max_duration="0.05s", body=lambda ctx: time.sleep(0.1)).run(database=backend, machine="m")
    lost = backend.runs.start("history", "lost", "m", 1, lease=0.01)
    time.sleep(0.1)
    kinds = {(p.job, p.kind) for p in check(backend)}
    assert kinds == {("history/broken", "failed"), ("history/slow", "too-long"), ("history/lost", "lost")}
    later = utcnow() + timedelta(hours=2)
    assert ("history/fine", "overdue") in {(p.job, p.kind) for p in check(backend, now=later)}
    assert ("history/fine", "overdue") not in {(p.job, p.kind) for p in check(backend, grace=7200, now=later)}
    assert [p.run_id for p in check(backend) if p.kind == "lost"] == [lost.id]


def test_skipped_runs_do_not_count_as_attempts_for_overdue(backend):
    registry = Registry()
    inner = []

    @registry.job("history", "hourly", expect_every="1h")
    def hourly(ctx):
        if ctx.machine == "m":  # only the outer run starts another: bounded even if the lock breaks
            inner.append(hourly.run(database=backend, machine="other"))

    hourly.run(database=backend, machine="m")
    assert inner[0].status == "skipped"
    problems = check(backend, now=utcnow() + timedelta(hours=2))
    assert [p.kind for p in problems] == ["overdue"]


def test_prune_dry_run_deletes_nothing_and_prune_deletes_what_it_reported(backend):
    ok, bad = job(name="ok"), job(name="bad", body=lambda ctx: 1 / 0)
    with cache_session("history", "ok", machine="m", database=backend) as ctx:
        ctx.create_cache("kept", "forever")
        ctx.create_log("old log")
    for spec in (ok, bad, ok):
        spec.run(database=backend, machine="m")
    age(backend, "process_job_runs", "started_at", 10 * 86400)
    age(backend, "process_job_logs", "created_at", 10 * 86400)
    fresh = ok.run(database=backend, machine="m")
    options = {"runs_older_than": 7 * 86400, "logs_older_than": 7 * 86400, "keep_failed_for": 30 * 86400}
    report = backend.history.prune(**options, dry_run=True)
    assert report == {"runs": 3, "logs": 1}
    assert len(backend.history.list_runs(limit=100)) == 5
    batches = []
    assert backend.history.prune(**options, progress=lambda table, n: batches.append((table, n))) == report
    assert batches == [("runs", 3), ("logs", 1)]
    remaining = backend.history.list_runs(limit=100)
    assert sorted(r.status for r in remaining) == ["failed", "succeeded"]
    assert fresh.id in {r.id for r in remaining}
    assert [log.type for log in backend.store.logs()] == [LogType.ERROR], "the failed run's log is kept"
    with cache_session("history", "ok", machine="m", database=backend) as ctx:
        assert [e.value for e in ctx.tree["kept"]] == ["forever"], "entries are never pruned"
    # only `fresh` may go now: the session's run is ok's latest, and `bad` is the only run of its job
    assert backend.history.prune(runs_older_than=0, keep_failed_for=0, logs_older_than=0, dry_run=True)["runs"] == 1


def test_prune_in_batches(backend, monkeypatch):
    monkeypatch.setattr("processcache.storage.history.PRUNE_BATCH", 2)
    with cache_session("history", "many", machine="m", database=backend) as ctx:
        for n in range(5):
            ctx.create_log(f"log {n}")
    with cache_session("history", "many", machine="m", database=backend):
        pass  # a later run: the logs above are no longer the latest run's, which prune keeps
    age(backend, "process_job_logs", "created_at", 60)  # not 0 s old: stamped by a clock SQLite's agrees with to ~1 ms
    batches = []
    counts = backend.history.prune(logs_older_than=30, progress=lambda table, n: batches.append(n))
    assert counts == {"logs": 5} and batches == [2, 2, 1]


def test_an_unknown_job_name_says_how_to_list_jobs(backend):
    with pytest.raises(Exception, match="no job a/b in this database: `processcache jobs` lists them"):
        backend.history.job_id("a/b")
    with pytest.raises(Exception, match="is not GROUP/JOB"):
        backend.history.job_id("just-a-name")


def test_a_dead_run_past_its_lease_is_lost_and_not_running_before_anyone_takes_its_lock(backend):
    dead = backend.runs.start("history", "dead", "m", 1, lease=0.3)
    assert backend.runs.acquire("history/dead", "m", 1, dead.id, lease=0.3)
    alive = backend.runs.start("history", "alive", "m", 2, lease=300)
    time.sleep(0.8)
    assert backend.runs.locks("history/dead")[0].run_id == dead.id, "no one has taken the dead run's lock"
    lost = backend.history.list_runs(status="lost")
    assert [(r.id, r.status) for r in lost] == [(dead.id, "lost")]
    assert [(r.id, r.status) for r in backend.history.list_runs(status="running")] == [(alive.id, "running")]
    assert [r.id for r in backend.history.list_runs("history/dead", status="running")] == []


def test_check_reports_a_run_still_going_past_its_max_duration_and_not_one_within_it(backend):
    hung = backend.runs.start("history", "hung", "m", 1, lease=300, max_duration=0.5)
    assert backend.runs.acquire("history/hung", "m", 1, hung.id, lease=300)
    backend.runs.start("history", "within", "m", 2, lease=300, max_duration=3600)
    time.sleep(1.0)
    # cron's next start is skipped while the hung run holds the lock: check still looks at the hung one
    assert job(name="hung", max_duration="0.5s").run(database=backend, machine="m").status == "skipped"
    assert [r.status for r in backend.history.list_runs()] == ["skipped", "running", "running"]
    problems = check(backend)
    assert [(p.job, p.kind, p.run_id) for p in problems] == [("history/hung", "too-long", hung.id)]
    assert "has been running for" in problems[0].detail and "the limit is 0.5s" in problems[0].detail


def test_prune_expired_deletes_every_batch_not_only_the_first(backend):
    ctx = processcache.CacheContext(backend, "history", "expiring", "m")
    ctx.create_cache_many([(f"k{n % 7}", n) for n in range(2 * PRUNE_BATCH + 345)], ttl=0.5)
    ctx.create_cache_many([(f"live{n}", n) for n in range(3)])
    time.sleep(1.0)
    assert backend.history.prune(expired=True, dry_run=True) == {"entries": 2 * PRUNE_BATCH + 345}
    batches = []
    counts = backend.history.prune(expired=True, progress=lambda table, n: batches.append((table, n)))
    assert counts == {"entries": 2 * PRUNE_BATCH + 345}
    assert batches == [("entries", PRUNE_BATCH), ("entries", PRUNE_BATCH), ("entries", 345)]
    assert sorted(backend.backend.values("SELECT entry_key FROM process_cache", {})) == ["live0", "live1", "live2"]
    assert sorted(ctx.get_full_cache()) == ["live0", "live1", "live2"]


def test_prune_keeps_the_last_run_and_last_success_the_incremental_pattern_starts_from(backend):
    """The README's daily prune line must not make the README's incremental job import everything again."""
    feed = []  # (moment, item): what an API would return, newest last

    def incremental(ctx):
        since = ctx.last_success()
        for moment, item in feed:
            if since is None or moment > since.started_at:
                ctx.create_cache("items", item)

    spec = job(name="incremental", body=incremental)
    # a second before the runs: SQLite stamps a run to the millisecond, and runs take less than one here
    feed.append((utcnow() - timedelta(seconds=1), "a"))
    assert spec.run(database=backend, machine="m").status == "succeeded"
    assert spec.run(database=backend, machine="m").status == "succeeded"  # nothing new: the last success
    failing = job(name="incremental", body=lambda ctx: 1 / 0)
    assert failing.run(database=backend, machine="m").status == "failed"
    assert job(name="other").run(database=backend, machine="m2").status == "succeeded"
    age(backend, "process_job_runs", "started_at", 40 * 86400)
    age(backend, "process_job_logs", "created_at", 40 * 86400)
    feed[:] = [(moment - timedelta(days=40), item) for moment, item in feed]  # all of it happened 40 days ago
    feed.append((utcnow(), "b"))
    # the README's retention line, then cron's next run of the job
    assert backend.history.prune(runs_older_than=30 * 86400, logs_older_than=14 * 86400,
                                 keep_failed_for=30 * 86400) == {"runs": 1, "logs": 0}
    assert spec.run(database=backend, machine="m").status == "succeeded"
    with cache_session("history", "incremental", machine="m", database=backend) as ctx:
        assert [entry.value for entry in ctx.tree["items"]] == ["a", "b"], "nothing imported twice"
    kept = {(r.job, r.status) for r in backend.history.list_runs(limit=100)}
    assert ("other", "succeeded") in kept, "a job's only run is kept, so `jobs` and `check` still see it"


def test_a_job_an_older_release_stored_under_a_name_now_refused_stays_findable(backend):
    old = backend.store.job_id("team", "sync@web1")  # as an older release stored it, before '@' was refused
    assert backend.history.job_id("team/sync@web1") == old
    with pytest.raises(processcache.InvalidNameError, match="holds '@'"):
        cache_session("team", "sync@web1", database=backend).__enter__()
