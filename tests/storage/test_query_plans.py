"""Reads use the index that serves them, before the database has any statistics.

A job's entries arrive in bulk between two runs of the statistics collector.
PostgreSQL then read `get_cache(key)` through the (job, machine, id) index,
filtering the whole job by key: 100 entries took 12 ms instead of 0.1 ms.
The ledger's reads (schema revision 2.6) must likewise stay index probes:
a pass over millions of runs or logs is seconds.
"""


import functools
import re

from processcache import CacheContext

KEY_INDEX = "idx_process_cache__job_id_machine_entry_key_id"
JOB_KEY_INDEX = "idx_process_cache__job_id_entry_key_id"


def explain(db, sql: str, params: dict) -> str:
    """The name of the index the database plans to use, in its plan's text."""
    found = db.backend.select(db.backend.dialect.explain(sql), params)
    if db.backend.dialect.name == "mysql":  # one row per table; the index chosen is the `key` column, the sixth
        return " ".join(str(row[5]) for row in found)
    return " ".join(str(part) for row in found for part in row)


def test_a_key_read_walks_only_that_keys_rows_before_any_statistics(backend):
    ctx = CacheContext(backend, "plans", "big", "m1")
    ctx.create_cache_many([(f"key-{n % 200}", n) for n in range(20_000)])
    CacheContext(backend, "plans", "other", "m1").create_cache_many([("key-7", n) for n in range(2_000)])
    plan = explain(backend, *backend.cache.entries_query(ctx.job_id, "m1", "key-7"))
    # either key index walks only this key's rows (MySQL may take the one without the machine); never the tree's
    assert KEY_INDEX in plan or JOB_KEY_INDEX in plan, plan
    assert [e.value for e in ctx.get_cache("key-7", machine="m1")] == list(range(7, 20_000, 200))


def test_a_job_scoped_key_read_walks_only_that_keys_rows_of_every_machine(backend):
    """A job of scope="job" reads a key of every machine: the (job, key, id) index serves it in order."""
    for machine in ("m1", "m2", "m3"):
        CacheContext(backend, "plans", "farm", machine).create_cache_many([(f"key-{n % 200}", n) for n in range(5_000)])
    ctx = CacheContext(backend, "plans", "farm", "m1")
    plan = explain(backend, *backend.cache.entries_query(ctx.job_id, None, "key-7"))
    assert JOB_KEY_INDEX in plan, plan
    assert [e.value for e in ctx.get_cache("key-7")] == list(range(7, 5_000, 200)) * 3


RUN_PAIR_INDEX = "idx_process_job_runs__job_id_machine_id_status"
RUN_STATUS_INDEX = "idx_process_job_runs__status_id"
LOG_JOB_INDEX = "idx_process_job_logs__job_id_id"
#: The statuses of each job and machine's 100 runs, oldest first: most succeeded, the newest timed out.
STATUSES = ["succeeded"] * 90 + ["skipped"] * 5 + ["failed"] * 4 + ["timed-out"]


def seed_ledger(db) -> list[int]:
    """20 jobs on 3 machines each, 6,000 runs and 20,000 logs, stored in bulk; the jobs' ids.

    MariaDB then plans with InnoDB's statistics, which a bulk insert
    leaves stale for a few seconds (a farm's ledger grows a run at a
    time): they are read at once. PostgreSQL and SQLite plan before any.
    """
    jobs = [db.store.job_id("plans", f"job-{n}") for n in range(20)]
    runs = [(jobs[n % 20], f"m{n % 3}", 1, STATUSES[n // 60 % 100], "2026-11-26 03:00:00", 1.0) for n in range(6000)]
    logs = [(jobs[n % 20], "m0", "GENERIC", f"log {n}", "2026-11-26 03:00:00") for n in range(20_000)]
    with db.transaction():
        db.backend.insert_many("process_job_runs", ("job_id", "machine", "pid", "status", "started_at", "duration"),
                               runs)
        db.backend.insert_many("process_job_logs", ("job_id", "machine", "log_type", "message", "created_at"), logs)
    if db.backend.dialect.name == "mysql":
        for table in ("process_job_runs", "process_job_logs"):
            db.backend.select(f"ANALYZE TABLE {table}")
    return jobs


def statement(db, call, marker: str) -> tuple[str, dict]:
    """The first SELECT *call* runs whose text holds *marker* (as test_metrics counts queries: each one is run)."""
    seen = []
    select = db.backend.select
    db.backend.select = lambda sql, params=None: seen.append((sql, params or {})) or select(sql, params)
    try:
        call()
    finally:
        del db.backend.select
    return next((sql, params) for sql, params in seen if marker in sql)


def reads_whole(db, sql: str, params: dict, table: str) -> bool:
    """Whether the plan of *sql* reads every row (or index entry) of *table*, which the queries alias ``r``."""
    rows = db.backend.select(db.backend.dialect.explain(sql), params)
    if db.backend.dialect.name == "mysql":  # a row per table read, its access type fourth: ALL or index read it all
        return any(row[2] in (table, "r") and row[3] in ("ALL", "index") for row in rows)
    text = "\n".join(" ".join(str(part) for part in row) for row in rows)
    if db.backend.dialect.name == "postgres":
        return f"Seq Scan on {table}" in text
    return re.search(rf"\bSCAN ({table}|r)\b", text) is not None  # SQLite: SEARCH seeks, SCAN reads it all


def uses_only(db, call, marker: str, table: str, index: str) -> None:
    """*call*'s statement holding *marker* reads *table* through *index*, never the whole table."""
    sql, params = statement(db, call, marker)
    plan = explain(db, sql, params)
    assert index in plan, plan
    assert not reads_whole(db, sql, params, table), plan


def test_each_job_and_machine_is_read_from_the_newest_end_of_its_runs_not_from_every_run(backend):
    """check, jobs and metrics cost a few index probes per machine of each job, however many runs are stored."""
    seed_ledger(backend)
    uses_only(backend, backend.jobs, "m.machine", "process_job_runs", RUN_PAIR_INDEX)
    # each machine's newest run of every job timed out (the last status of the cycle), after 99 that did not
    assert {job.last_run.status for job in backend.jobs()} == {"timed-out"} and len(backend.jobs()) == 20


def test_a_page_of_one_status_reads_the_newest_runs_of_that_status(backend):
    """``runs --status lost`` on a ledger with no lost run answers at once, not after a pass over every run."""
    seed_ledger(backend)
    for status in ("timed-out", "lost"):
        uses_only(backend, functools.partial(backend.list_runs, status=status), "r.status", "process_job_runs",
                  RUN_STATUS_INDEX)
    assert [run.status for run in backend.list_runs(status="timed-out", limit=100)] == ["timed-out"] * 60


def test_a_job_s_newest_page_of_logs_reads_only_that_job_s_logs(backend):
    seed_ledger(backend)
    uses_only(backend, lambda: backend.logs("plans/job-3", limit=100), "FROM process_job_logs", "process_job_logs",
              LOG_JOB_INDEX)
    found = backend.logs("plans/job-3", limit=100)
    assert [log.message for log in found] == [f"log {n}" for n in range(18_003, 20_000, 20)]
    assert {log.job for log in found} == {"job-3"}


def test_the_report_reads_each_job_and_machines_newest_runs_not_every_run(backend):
    """The report's strips (30 runs per job and machine) cost index ranges, however long the history."""
    from processcache.web.gather import RECENT_RUNS, recent_runs

    jobs = seed_ledger(backend)
    assert len(jobs) == 20
    pairs = [(job_id, f"m{k}") for job_id in jobs for k in range(3)]
    uses_only(backend, lambda: recent_runs(backend, pairs), "UNION ALL", "process_job_runs", RUN_PAIR_INDEX)
    found = recent_runs(backend, pairs)
    # seeded in turn: run n is job n % 20 on machine n % 3, so each pair's runs are 60 ids apart; a strip leaves
    # out the skipped copies, 5 of each pair's newest 35 (STATUSES[90:95])
    newest = backend.backend.value("SELECT MAX(id) FROM process_job_runs")
    for k in range(20):
        runs = found[("plans", f"job-{k}")]
        assert len(runs) == 3 * RECENT_RUNS
        for machine in ("m0", "m1", "m2"):
            ids = [run.id for run in runs if run.machine == machine]
            assert ids == sorted(ids, reverse=True) and ids[0] > newest - 60 and ids[0] - ids[-1] == 60 * (29 + 5)


def test_alerts_count_each_failing_machines_streak_from_its_last_success_not_every_failed_run(backend):
    """check --notify's failure counts read each failing machine's runs since its last success; as one OR of
    ranges, SQLite read every failed run of the ledger by the (status, id) index (0.5 s at 2,000,000 runs), as
    it planned with the statistics ANALYZE (or PRAGMA optimize) leaves."""
    seed_ledger(backend)
    if backend.backend.dialect.name == "sqlite":
        backend.backend.execute("ANALYZE")
    uses_only(backend, backend.alerts.failures_in_a_row, "r.status IN", "process_job_runs", RUN_PAIR_INDEX)
    # each machine's newest five runs went wrong (four failed, one timed out) after 95 that did not
    assert {count for count, _ in backend.alerts.failures_in_a_row().values()} == {15}
