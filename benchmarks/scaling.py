"""``python -m benchmarks.scaling --databases sqlite,postgresql,mysql``

How costs grow with data: loading a job of 10k, 100k and 1M entries should
take time in proportion (the µs per entry stays flat); a recorded run that
reads one key of the largest job should cost about that key read plus the
run's own record, since the cache loads only when ``ctx.tree`` is used
(``load_cache="eager"`` is shown beside it); and reading one job
should not slow down as other jobs' entries and logs grow to a million rows.

``--ledger`` measures the operations commands over a farm's ledger instead
(``--runs 2000000 --logs 10000000 --jobs 1000`` is issue 17's size; the
defaults are a quick try): every job runs hourly on its machines, mostly
succeeding, with logs and cache entries. It times check, check --notify
(no channel), jobs, runs, logs, locks and metrics as the CLI calls them
(each should answer in under 0.3 s), the real CLI once, a trivial recorded
run beside an empty database and beside the ledger, and prune of the oldest
tenth while a job writes in another process (its longest write is its
stall). ``--url`` keeps a ledger to measure again: it is filled on first use
and the tenth prune took is put back before the next measurement.
"""

import argparse
import io
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar
from urllib.parse import urlsplit

import processcache
from processcache.monitor.check import judge, problems
from processcache.names import lock_key, lock_name
from processcache.storage.backend import id_list
from processcache.storage.schema import CURRENT, describe
from processcache.storage.timeutil import db_time, py_time

from .__main__ import Scratch, timed
from .workloads import context, key_reading_job


def fill(db, job: str, total: int, keys: int = 100) -> processcache.CacheContext:
    ctx = context(db, job)
    for start in range(0, total, 20_000):
        ctx.create_cache_many([(f"key-{i % keys}", {"n": i}) for i in range(start, min(total, start + 20_000))])
    return ctx


def fill_logs(db, job: str, total: int) -> None:
    rows = [(db.store.job_id("bench", job), "m", "GENERIC", f"log {i}", "2026-11-24 03:00:00") for i in range(total)]
    for start in range(0, total, 20_000):
        with db.transaction():
            db.backend.insert_many("process_job_logs", ("job_id", "machine", "log_type", "message", "created_at"),
                                   rows[start:start + 20_000])


def median_of(repeat: int, func, *args) -> float:
    return statistics.median(timed(func, *args) for _ in range(repeat))


def measure(kind: str, folder: str, repeat: int, sizes: list[int]) -> None:
    scratch = Scratch(kind, folder)
    try:
        with processcache.connect(scratch.url) as db:
            print(f"\n{kind}: load time by job size")
            for size in sizes:
                ctx = fill(db, f"size-{size}", size)
                seconds = median_of(repeat, ctx.sync_cache)
                print(f"  {size:>9,} entries  {seconds * 1000:>9,.0f} ms  {seconds / size * 1e6:>6.2f} µs/entry")
            one_key_run(db, ctx, sizes[-1], repeat)
            small = fill(db, "small", 1_000, keys=100)
            logs = context(db, "small")
            for n in range(100):
                logs.create_log(f"small log {n}")

            def reads():
                for k in range(1_000):
                    small.get_cache(f"key-{k % 100}")
                logs.get_logs(limit=50)

            before = median_of(repeat, reads)
            fill(db, "others", 1_000_000, keys=1_000)
            fill_logs(db, "others", 1_000_000)
            after = median_of(repeat, reads)
            print(f"{kind}: 1,000 reads and a log page of one job: {before * 1000:,.0f} ms beside an empty"
                  f" database, {after * 1000:,.0f} ms beside 1M other entries and 1M other logs"
                  f" ({after / before:.2f}x)")
    finally:
        scratch.drop()


def one_key_run(db, largest: processcache.CacheContext, size: int, repeat: int) -> None:
    """A recorded run reading one key of the largest job, against that key read alone (and an eager run)."""
    key_read = median_of(repeat, largest.latest, "key-7")
    run = median_of(repeat, key_reading_job(largest.job).run, db, "m")
    eager = median_of(repeat, key_reading_job(largest.job, load_cache="eager").run, db, "m")
    print(f"  a run reading one key of {size:,} entries: {run * 1000:,.1f} ms, {run / key_read:.2f}x the key read"
          f" alone ({key_read * 1000:.1f} ms; the rest: the run's record); load_cache='eager': {eager * 1000:,.0f} ms")


# -- the ledger: runs and logs of a farm, and the operations commands over them ----------------------------------

MACHINES = ("web1", "web2", "web3", "web4", "batch1")
#: Statuses of ordinary runs and their shares; the rest succeed.
OUTCOMES = (("skipped", 0.05), ("failed", 0.04), ("timed-out", 0.01), ("terminated", 0.003), ("lost", 0.002))
ERRORS = {"failed": "ValueError: row 1832 of the export has no customer id", "timed-out": "timed out after 30m",
          "terminated": "terminated by SIGTERM", "lost": "lost: its heartbeat stopped",
          "skipped": "skipped: web1 holds the lock"}
RUN_COLUMNS = ("id", "job_id", "machine", "pid", "status", "started_at", "finished_at", "expires_at", "duration",
               "error", "exit_code", "attempts")
LOG_COLUMNS = ("id", "job_id", "run_id", "machine", "log_type", "level", "message", "created_at")
ATTEMPT_COLUMNS = ("run_id", "number", "status", "started_at", "finished_at", "duration", "error")
LOCK_COLUMNS = ("name", "machine", "pid", "run_id", "acquired_at", "expires_at")
T = TypeVar("T")
#: The benchmark's own table in a ledger database: when its timeline ends and how it was filled.
LEDGER_TABLE = "benchmark_ledger"
TARGET = 0.3


@dataclass(frozen=True)
class Shape:
    """A ledger's size: every job runs once an hour, on its machines in turn, for ``runs // jobs`` hours.

    The oldest tenth of the hours is what the prune benchmark deletes, and
    puts back afterwards (the same rows, regenerated), so that a ledger can
    be measured again.
    """

    runs: int
    logs: int
    jobs: int

    @property
    def hours(self) -> int:
        return max(self.runs // self.jobs, 20)

    @property
    def old_hours(self) -> int:
        return self.hours // 10

    @property
    def logs_per_run(self) -> float:
        return self.logs / (self.jobs * self.hours * (1 - OUTCOMES[0][1]))  # skipped runs write none


def job_name(k: int) -> tuple[str, str]:
    """Jobs come twenty to a group: team-00/job-0000 ... team-49/job-0999."""
    return f"team-{k // 20:02d}", f"job-{k:04d}"


def machines_of(k: int) -> list[str]:
    return [MACHINES[(k + i) % len(MACHINES)] for i in range(1 + k % 3)]


def minute_of(k: int) -> int:
    """The minute past the hour job *k* starts: its schedule is ``M * * * *``."""
    return (k * 7) % 60


def outcome(shape: Shape, k: int, hour: int, newest: int, rng: random.Random) -> str:
    """A run's status: mostly succeeded; job 7 of every 50 failed its last 24 runs or more; job 3 of every 10
    runs now (in the *newest* hour)."""
    if k % 50 == 7 and hour >= shape.hours - 24:
        return "failed"
    if k % 10 == 3 and hour == newest:
        return "running"
    draw = rng.random()
    for status, share in OUTCOMES:
        if draw < share:
            return status
        draw -= share
    return "succeeded"


def stamp(seconds: float) -> str:
    """A database time stamp (naive UTC text, as `timeutil.db_time` writes them) from seconds since the epoch."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


@dataclass
class Rows:
    """One stretch of the ledger's rows, each table's in its columns' order."""

    runs: list[tuple] = field(default_factory=list)
    logs: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)


class Timeline:
    """The ledger's rows hour by hour, the same every time: ids and values follow from the hour alone.

    Hours after the ledger's first *shape.hours* (`catch_up`) take ids after *next_run* and *next_log*;
    the runs of the *newest* hour are the ones running now.
    """

    def __init__(self, shape: Shape, anchor: float, job_ids: list[int], newest: int | None = None,
                 next_run: int = 1, next_log: int = 1) -> None:
        self.shape, self.anchor, self.job_ids = shape, anchor, job_ids
        self.newest = shape.hours - 1 if newest is None else newest
        self.order = sorted(range(shape.jobs), key=minute_of)  # the jobs in the order they start each hour
        self.next_run, self.next_log = next_run, next_log

    def boundary(self) -> float:
        """When the old tenth ends: every run and log before it is old, every one after it is not."""
        return self.anchor - (self.shape.hours - self.shape.old_hours) * 3600

    def hours(self, first: int, last: int) -> Rows:
        rows = Rows()
        for hour in range(first, last):
            rng = random.Random(hour)
            start_of_hour = self.anchor - (self.shape.hours - hour) * 3600
            for k in self.order:
                self._run(rows, k, hour, start_of_hour + minute_of(k) * 60 + rng.random() * 30, rng)
        return rows

    def _run(self, rows: Rows, k: int, hour: int, start: float, rng: random.Random) -> None:
        status = outcome(self.shape, k, hour, self.newest, rng)
        machine = machines_of(k)[hour % len(machines_of(k))]
        duration = {"skipped": 0.0, "timed-out": 1800.0}.get(status, 1 + rng.random() * 60)
        running = status == "running"
        attempts = 2 if status not in ("skipped", "running") and rng.random() < 0.01 else None
        run_id, job_id = self.next_run, self.job_ids[k]
        self.next_run += 1
        rows.runs.append((run_id, job_id, machine, 1000 + k, status, stamp(start),
                          None if running else stamp(start + duration),
                          start + 7200 if running else start + duration + 60, None if running else duration,
                          ERRORS.get(status), 1 if status == "failed" and k % 2 else None, attempts))
        if attempts:
            rows.attempts += [(run_id, 1, "failed", stamp(start), stamp(start + 1), 1.0, ERRORS["failed"]),
                              (run_id, 2, status, stamp(start + 1), stamp(start + duration), duration - 1,
                               ERRORS.get(status))]
        if status != "skipped":
            self._logs(rows, run_id, job_id, machine, start, status, rng)

    def _logs(self, rows: Rows, run_id: int, job_id: int, machine: str, start: float, status: str,
              rng: random.Random) -> None:
        count = int(self.shape.logs_per_run * 2 * rng.random() + 0.5)
        for n in range(count):
            if n == count - 1 and status == "failed":
                kind, level = "ERROR", "ERROR"
                message = "Traceback (most recent call last):\n  File \"export.py\", line 88\n" + ERRORS["failed"]
            elif n == count - 1 and run_id % 3 == 0:
                kind, level = "GENERIC", "STDOUT"
                message = "\n".join(f"exported batch {b}: {rng.randrange(10_000)} rows" for b in range(12))
            elif rng.random() < 0.05:
                kind, level, message = "WARNING", "WARNING", f"slow response from api-{rng.randrange(8)}: 4.2s"
            else:
                kind, level = "GENERIC", "INFO"
                message = f"step {n}: processed {rng.randrange(100_000)} rows from source {rng.randrange(40)}"
            rows.logs.append((self.next_log, job_id, run_id, machine, kind, level, message,
                              stamp(start + 0.2 * (n + 1))))
            self.next_log += 1


class Loader:
    """Bulk inserts, each database's fastest: SQLite's executemany (`Backend.insert_many`), PostgreSQL's COPY,
    MySQL/MariaDB's LOAD DATA LOCAL INFILE (what ``mysqlimport`` uses)."""

    def __init__(self, db, kind: str, url: str, folder: str) -> None:
        self.db, self.kind, self.folder = db, kind, folder
        parts = urlsplit(url)
        if kind == "postgresql":
            import psycopg2

            self.conn = psycopg2.connect(url)
        elif kind == "mysql":
            import pymysql

            self.conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username,
                                        password=parts.password or "", database=parts.path.lstrip("/"),
                                        charset="utf8mb4", local_infile=True)

    def load(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        if self.kind == "sqlite":
            with self.db.transaction():
                self.db.backend.insert_many(table, columns, rows)
            return
        text = "".join("\t".join(_field(value) for value in row) + "\n" for row in rows)
        cursor = self.conn.cursor()
        if self.kind == "postgresql":
            from psycopg2.extensions import get_wait_callback, set_wait_callback

            waits = get_wait_callback()  # processcache's bounded waits: COPY refuses a wait callback
            set_wait_callback(None)
            try:
                cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text))
            finally:
                set_wait_callback(waits)
        else:
            path = os.path.join(self.folder, "rows.tsv")
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
            cursor.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4"
                           f" ({', '.join(columns)})")
        self.conn.commit()

    def load_rows(self, rows: Rows) -> None:
        self.load("process_job_runs", RUN_COLUMNS, rows.runs)
        self.load("process_job_logs", LOG_COLUMNS, rows.logs)
        self.load("process_job_attempts", ATTEMPT_COLUMNS, rows.attempts)

    def statement(self, sql: str) -> None:
        """A statement outside any transaction (VACUUM, ANALYZE, setval) on the loader's own connection."""
        if self.kind == "sqlite":
            self.db.backend.execute(sql)
            return
        if self.kind == "postgresql":
            self.conn.autocommit = True
        cursor = self.conn.cursor()
        cursor.execute(sql)
        if cursor.description:
            cursor.fetchall()
        if self.kind == "postgresql":
            self.conn.autocommit = False
        else:
            self.conn.commit()

    def close(self) -> None:
        if self.kind != "sqlite":
            self.conn.close()


def _field(value) -> str:
    """One value in the text format COPY and LOAD DATA both read: tab-separated, \\N for NULL, backslash escapes."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return repr(value) if isinstance(value, float) else str(value)


def fill_ledger(db, loader: Loader, shape: Shape) -> dict:
    """Fill an empty database with *shape*'s ledger, oldest hours first; return what `LEDGER_TABLE` records."""
    anchor = db.clock.now().timestamp() // 3600 * 3600  # on the hour: each run starts in its minute, as cron starts it
    job_ids = [db.store.job_id(*job_name(k)) for k in range(shape.jobs)]
    settings(db, job_ids)
    timeline = Timeline(shape, anchor, job_ids)
    started, step = time.perf_counter(), max(1, shape.hours // 20)
    old_logs, running = 0, []
    edges = sorted({*range(0, shape.hours, step), shape.old_hours, shape.hours})  # the old tenth ends on an edge
    for first, last in zip(edges, edges[1:]):
        rows = timeline.hours(first, last)
        loader.load_rows(rows)
        running += [run for run in rows.runs if run[4] == "running"]
        if last == shape.old_hours:
            old_logs = timeline.next_log - 1
        print(f"  filled {last}/{shape.hours} hours: {timeline.next_run - 1:,} runs, {timeline.next_log - 1:,} logs,"
              f" {time.perf_counter() - started:,.0f} s", flush=True)
    fill_cache_and_locks(db, loader, job_ids, running)
    next_ids(loader)
    return {"anchor": anchor, "runs": shape.runs, "logs": shape.logs, "jobs": shape.jobs,
            "old_runs": shape.old_hours * shape.jobs, "old_logs": old_logs, "job_ids": job_ids}


#: What every fifth job declares: a run an hour, 10 minutes' grace.
EXPECT_EVERY = 3600 + 600


def settings(db, job_ids: list[int]) -> None:
    """What jobs declare: every fifth expects a run an hour, every tenth a run under 10 minutes, every fourth
    alerts after 3 failures in a row (the schedules are set apart, by `set_schedules`)."""
    for every, column, value in ((5, "expect_every", EXPECT_EVERY), (10, "max_duration", 600), (4, "alert_after", 3)):
        ids = job_ids[1::every]
        db.backend.execute(f"UPDATE process_jobs SET {column} = {value} WHERE id IN ({id_list(ids)})")


def set_schedules(db, job_ids: list[int], on: bool) -> int:
    """Give every fifth job its hourly schedule (half of them in Europe/Berlin), or take them away; how many."""
    ids = job_ids[::5]
    if not on:
        db.backend.execute(f"UPDATE process_jobs SET schedule = NULL, timezone = NULL WHERE id IN ({id_list(ids)})")
        return 0
    for k in range(0, len(job_ids), 5):
        zone = "Europe/Berlin" if k % 10 == 0 else None
        db.backend.execute("UPDATE process_jobs SET schedule = $schedule, timezone = $zone WHERE id = $id",
                           {"schedule": f"{minute_of(k)} * * * *", "zone": zone, "id": job_ids[k]})
    return len(ids)


def make_overdue(db, job_ids: list[int], on: bool) -> int:
    """Make 300 jobs overdue (expect_every 1 s), or put back what `settings` gave them; how many.

    The report draws cards for the jobs failing or overdue, up to its cap:
    with 300 of 1,000 in trouble it draws as many as it ever does.
    """
    ids = job_ids[2::3][:300]
    declared = [job_id for job_id in job_ids[1::5] if job_id in ids]  # `settings`' expect_every
    db.backend.execute(f"UPDATE process_jobs SET expect_every = {1 if on else 'NULL'} WHERE id IN ({id_list(ids)})")
    if not on and declared:
        db.backend.execute(f"UPDATE process_jobs SET expect_every = {EXPECT_EVERY} WHERE id IN ({id_list(declared)})")
    return len(ids) if on else 0


def fill_cache_and_locks(db, loader: Loader, job_ids: list[int], running: list[tuple]) -> None:
    """100 cache entries per job, and each job's lock row: held by its running run, free otherwise."""
    for k in range(len(job_ids)):
        ctx = processcache.CacheContext(db, *job_name(k), machines_of(k)[0])
        ctx.create_cache_many([(f"key-{n % 20}", {"n": n, "source": f"s{n % 7}"}) for n in range(100)])
    loader.load("process_job_locks", LOCK_COLUMNS, [(lock_key(lock_name(*job_name(k))), None, None, None, None, None)
                                                    for k in range(len(job_ids))])
    hold_locks(db, job_ids, running)


def hold_locks(db, job_ids: list[int], running: list[tuple]) -> None:
    """Each job's lock held by its run running now (rows of `RUN_COLUMNS`), the others free."""
    db.backend.execute("UPDATE process_job_locks SET machine = NULL, pid = NULL, run_id = NULL, acquired_at = NULL,"
                       " expires_at = NULL WHERE name LIKE $teams", {"teams": "team-%"})  # a parameter: PyMySQL
    # and psycopg2 read a % written in the statement as theirs
    index = {job_id: k for k, job_id in enumerate(job_ids)}
    for run in running:
        db.backend.execute("UPDATE process_job_locks SET machine = $machine, pid = $pid, run_id = $run,"
                           " acquired_at = $expires - 7200, expires_at = $expires WHERE name = $name",
                           {"machine": run[2], "pid": run[3], "run": run[0], "expires": run[7],
                            "name": lock_key(lock_name(*job_name(index[run[1]])))})


def catch_up(db, loader: Loader, facts: dict) -> int:
    """Add the hours that passed since the ledger was filled, as a farm that kept running would have them (the
    runs running then ended, the newest hour's runs now): measured hours later, it is as fresh. How many."""
    shape = Shape(facts["runs"], facts["logs"], facts["jobs"])
    hours = facts.get("hours", shape.hours)
    due = shape.hours + int((db.clock.now().timestamp() - facts["anchor"]) // 3600)
    if due <= hours:
        return 0
    for run_id, started in db.backend.select("SELECT id, started_at FROM process_job_runs WHERE status = 'running'"
                                             f" AND job_id IN ({id_list(facts['job_ids'])})"):
        db.backend.execute("UPDATE process_job_runs SET status = 'succeeded', finished_at = $finished,"
                           " duration = 30 WHERE id = $id",
                           {"id": run_id, "finished": db_time(py_time(started) + timedelta(seconds=30))})
    timeline = Timeline(shape, facts["anchor"], facts["job_ids"], newest=due - 1,
                        next_run=db.backend.value("SELECT MAX(id) FROM process_job_runs") + 1,
                        next_log=db.backend.value("SELECT MAX(id) FROM process_job_logs") + 1)
    rows = timeline.hours(hours, due)
    loader.load_rows(rows)
    hold_locks(db, facts["job_ids"], [run for run in rows.runs if run[4] == "running"])
    next_ids(loader)
    facts["hours"] = due
    db.backend.execute(f"UPDATE {LEDGER_TABLE} SET value = $value WHERE name = 'ledger'",
                       {"value": json.dumps(facts)})
    return due - hours


def next_ids(loader: Loader) -> None:
    """PostgreSQL's sequences past the ids the loader gave (MariaDB's and SQLite's follow by themselves)."""
    if loader.kind == "postgresql":
        for table in ("process_job_runs", "process_job_logs"):
            loader.statement(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def analyze(loader: Loader) -> None:
    """Statistics, as a ledger that grew for months has them (autovacuum, InnoDB's own); SQLite gets none:
    processcache never runs ANALYZE there."""
    if loader.kind == "postgresql":
        loader.statement("VACUUM ANALYZE")
    elif loader.kind == "mysql":
        for table in ("process_job_runs", "process_job_logs", "process_cache", "process_jobs"):
            loader.statement(f"ANALYZE TABLE {table}")


def recorded(db) -> dict | None:
    """The ledger this database holds, as `fill_ledger` recorded it; None for a database without one."""
    try:
        found = db.backend.value(f"SELECT value FROM {LEDGER_TABLE} WHERE name = 'ledger'")
    except Exception:  # no such table: a database the benchmark never filled
        db.backend.drop_connection()
        return None
    return json.loads(found) if found else None


def record(db, facts: dict) -> None:
    db.backend.execute(f"CREATE TABLE {LEDGER_TABLE} (name VARCHAR(64) PRIMARY KEY, value TEXT)")
    db.backend.execute(f"INSERT INTO {LEDGER_TABLE} (name, value) VALUES ('ledger', $value)",
                       {"value": json.dumps(facts)})


def restore_old(db, loader: Loader, facts: dict) -> bool:
    """Put back the old tenth a previous prune deleted (the same rows: the timeline is the same); True if it did."""
    old_runs, old_logs = facts["old_runs"], facts["old_logs"]
    if db.backend.value(f"SELECT COUNT(*) FROM process_job_runs WHERE id <= {old_runs}") == old_runs:
        return False
    for table, column, last in (("process_job_attempts", "run_id", old_runs), ("process_job_logs", "id", old_logs),
                                ("process_job_runs", "id", old_runs)):
        db.backend.execute(f"DELETE FROM {table} WHERE {column} <= {last}")
    shape = Shape(facts["runs"], facts["logs"], facts["jobs"])
    loader.load_rows(Timeline(shape, facts["anchor"], facts["job_ids"]).hours(0, shape.old_hours))
    return True


def ledger_database(kind: str, url: str, shape: Shape, folder: str) -> dict:
    """The ledger at *url*: filled now if it holds none, else brought up to now (`catch_up`) and its old tenth put
    back if a prune took it."""
    with processcache.connect(url, upgrade=False) as db:  # an upgrade is measured apart (`measure_upgrade`)
        loader = Loader(db, kind, url, folder)
        try:
            facts = recorded(db)
            if facts is None:
                started = time.perf_counter()
                facts = fill_ledger(db, loader, shape)
                record(db, facts)
                analyze(loader)
                print(f"{kind}: filled in {time.perf_counter() - started:,.0f} s", flush=True)
            else:
                added, restored = catch_up(db, loader, facts), restore_old(db, loader, facts)
                if added or restored:
                    analyze(loader)
                print(f"{kind}: {added} hours added since the ledger was filled"
                      + ("; the old tenth a prune deleted put back" if restored else ""), flush=True)
        finally:
            loader.close()
        facts["counts"] = {table: db.backend.value(f"SELECT COUNT(*) FROM {table}") for table in (
            "process_job_runs", "process_job_logs", "process_cache", "process_jobs")}
    return facts


def median_and_spread(samples: list[float]) -> str:
    return f"{statistics.median(samples):>7.3f} s  ({min(samples):.3f}-{max(samples):.3f})"


def time_commands(commands: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float] | str]:
    """Each command *repeat* times, interleaved (one round of all, then the next), after one warm-up round.

    A command that fails (stopped by `limited`'s statement limit) is not tried again: its error is its result.
    """
    times: dict[str, list[float] | str] = {name: [] for name in commands}
    for round_ in range(repeat + 1):
        for name, command in commands.items():
            samples = times[name]
            if isinstance(samples, str):
                continue
            started = time.perf_counter()
            try:
                command()
            except Exception as exc:  # a statement the limit stopped, reported as the command's result
                times[name] = f"failed after {time.perf_counter() - started:.0f} s: {str(exc).splitlines()[0][:100]}"
                continue
            seconds = time.perf_counter() - started
            if round_:
                samples.append(seconds)
    return times


def limited(url: str, kind: str, seconds: float) -> str:
    """*url* with every statement stopped by the server after *seconds*, and processcache waiting that long.

    Before the ledger's queries were fixed, MariaDB worked on some of them
    for hours, and every retry after processcache's 15 s read timeout left
    one more behind: the server now stops them, and the command fails.
    """
    if kind == "sqlite":
        return url
    limit = (f"options=-c%20statement_timeout%3D{int(seconds * 1000)}" if kind == "postgresql" else
             f"init_command=SET%20SESSION%20max_statement_time%3D{seconds:g}")
    return f"{url}{'&' if '?' in url else '?'}read_timeout={seconds + 30:g}s&{limit}"


def operations(reader, writer, facts: dict) -> dict[str, Callable[[], object]]:
    """The operations commands, each as the CLI calls the library (`cli/jobs.py`, `cli/runs.py`, ...); the report
    where this processcache has it."""
    from processcache.cli.runs import COUNTED_LOGS
    from processcache.monitor.alerts import update_states
    from processcache.monitor.metrics import exposition

    group, job = job_name(facts["jobs"] // 2)
    run_id = facts["old_runs"] + (facts["runs"] - facts["old_runs"]) // 2  # a run halfway through the ledger

    def check_notify() -> None:  # as `check --notify` with no channel: judge, then change the alert states
        verdicts = judge(writer, 60)
        problems(writer, verdicts)
        update_states(writer, verdicts, [])

    def logs_page(name: str | None, **filters) -> None:
        found = reader.logs(name, **filters, limit=100)
        if len(found) == 100:  # a full page: `logs` counts what it leaves out, up to COUNTED_LOGS
            reader.count_logs(name, **filters, at_most=COUNTED_LOGS + 1)

    return {
        "check": lambda: reader.check(60),
        "check --notify": check_notify,
        "jobs": lambda: reader.jobs(include_retired=True),
        "runs": lambda: reader.list_runs(limit=20),
        "runs GROUP/JOB": lambda: reader.list_runs(f"{group}/{job}", limit=20),
        "runs GROUP": lambda: reader.list_runs(group, limit=20),
        "runs --status failed": lambda: reader.list_runs(status="failed", limit=20),
        "runs --status lost": lambda: reader.list_runs(status="lost", limit=20),
        "runs show ID": lambda: reader.run(run_id),
        "logs GROUP/JOB": lambda: logs_page(f"{group}/{job}"),
        "logs GROUP": lambda: logs_page(group),
        "logs --run ID": lambda: logs_page(None, run=run_id),
        "logs": lambda: logs_page(None),
        "locks": lambda: reader.locks(),
        "metrics": lambda: exposition(reader, 60),
        **report_command(reader),
    }


def report_command(reader) -> dict[str, Callable[[], object]]:
    """``report --html``'s page (issue 16), where this processcache has it."""
    try:
        from processcache.web.gather import gather
        from processcache.web.pages import overview_page
    except ImportError:
        return {}
    return {"report": lambda: overview_page(gather(reader))}


def report_shape(reader) -> str:
    """What the report drew: how many jobs, how many as cards (the others are lines), the page's size."""
    try:
        from processcache.web.gather import gather
        from processcache.web.pages import overview_page
    except ImportError:
        return "no report in this processcache"
    overview = gather(reader)
    cards = sum(getattr(job, "card", True) for job in overview.jobs)
    return (f"{len(overview.jobs):,} jobs ({overview.counts['failing']} failing, {overview.counts['overdue']} overdue),"
            f" {cards} drawn as cards, a page of {len(overview_page(overview).encode()) / 1e6:.1f} MB")


def print_times(times: dict[str, list[float] | str]) -> None:
    for name, samples in times.items():
        if isinstance(samples, str):
            print(f"  {name:<36} {samples}", flush=True)
            continue
        flag = "" if statistics.median(samples) < TARGET else f"  over {TARGET} s"
        print(f"  {name:<36} {median_and_spread(samples)}{flag}", flush=True)


def cli_times(url: str, facts: dict, repeat: int, folder: str, report: bool) -> None:
    """The real commands' wall time, less the interpreter's and the CLI's start-up (``--version``); a command
    that fails (the statement limit) is not run again."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    group, job = job_name(facts["jobs"] // 2)
    commands = {"--version": ["--version"], "check": ["check"], "jobs": ["jobs"], "runs": ["runs"],
                "logs GROUP/JOB": ["logs", f"{group}/{job}"], "logs": ["logs"], "locks": ["locks"],
                "metrics": ["metrics"]}
    if report:
        commands["report"] = ["report", "--html", os.path.join(folder, "report.html")]
    times: dict[str, list[float] | str] = {name: [] for name in commands}
    for round_ in range(repeat + 1):
        for name, words in commands.items():
            samples = times[name]
            if isinstance(samples, str):
                continue
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "processcache", *words] + ([] if name == "--version" else
                                  ["-d", url]), env=env, capture_output=True, text=True)
            if done.returncode not in (0, 1) or (done.returncode == 1 and name != "check"):
                times[name] = f"failed ({(done.stderr.strip().splitlines() or ['?'])[-1][:80]})"
            elif round_:
                samples.append(time.perf_counter() - started)
    start_up = statistics.median(times.pop("--version"))  # type: ignore[arg-type]  # never fails
    print(f"  the CLI (medians of {repeat}, wall time less `processcache --version`, {start_up:.3f} s):")
    print("  " + "; ".join(f"{name} {samples}" if isinstance(samples, str) else
                           f"{name} {statistics.median(samples) - start_up:.3f} s" for name, samples in times.items()))


def run_overhead(kind: str, url: str, folder: str, repeat: int) -> None:
    """A trivial recorded run beside an empty database and beside the ledger: its cost must not grow with it."""
    trivial = processcache.Registry().job("bench", "trivial")(lambda ctx: None)
    empty = Scratch(kind, tempfile.mkdtemp(dir=folder))
    try:
        seconds = {}
        for label, target in (("empty", empty.url), ("ledger", url)):
            with processcache.connect(target) as db:
                trivial.run(db, "m")
                seconds[label] = median_of(repeat * 4, trivial.run, db, "m")
    finally:
        empty.drop()
    print(f"  a recorded run of a trivial job: {seconds['empty'] * 1000:.1f} ms beside an empty database,"
          f" {seconds['ledger'] * 1000:.1f} ms beside the ledger ({seconds['ledger'] / seconds['empty']:.2f}x)")


class _OverBudget(Exception):
    """Raised from prune's progress callback to stop it after its time budget."""


def writing_job(url: str, ready, stop, out) -> None:
    """A recorded job writing an entry and a log every 10 ms until stopped, as any job of the farm would, on the
    schema as it finds it; sends (began, ended) of each write, and how its run ended."""
    writes: list[tuple[float, float]] = []

    def job(ctx) -> None:
        ready.set()
        steps = (lambda n: ctx.create_cache(f"key-{n % 10}", n), lambda n: ctx.create_log(f"write {n}"))
        n = 0
        while not stop.is_set():
            for write in steps:
                began = time.perf_counter()
                write(n)
                writes.append((began, time.perf_counter()))
            n += 1
            time.sleep(0.01)

    with processcache.connect(url, upgrade=False) as db:
        run = processcache.Registry().job("bench", "writer")(job).run(db, "writer")
    ready.set()  # a run that could not start says so here
    out.put((writes, f"{run.status}" + (f": {run.error.splitlines()[0][:100]}" if run.error else "")))


def while_a_job_writes(url: str, action: Callable[[], T]) -> tuple[T, str]:
    """*action*'s result, with a line on what a job writing meanwhile in another process saw: its longest write
    during *action* (its stall) and before it, and how its run ended."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    writer = spawn.Process(target=writing_job, args=(url, ready, stop, out))
    writer.start()
    try:
        ready.wait(120)
        time.sleep(2)
        began = time.perf_counter()
        result = action()
        ended = time.perf_counter()
        time.sleep(1)
    finally:
        stop.set()
        writes, ending = out.get(timeout=300)
        writer.join()
    during = [end - start for start, end in writes if end >= began and start <= ended]
    before = [end - start for start, end in writes if end < began]
    return result, (f"a job writing meanwhile: longest write {max(during, default=0):.3f} s"
                    f" ({len(during):,} writes, median {statistics.median(during or [0]) * 1000:.1f} ms); before:"
                    f" {max(before, default=0):.3f} s ({len(before):,} writes); its run {ending}")


def measure_prune(plain_url: str, url: str, facts: dict, budget: float) -> None:
    """`prune` of the old tenth, as the CLI runs it (a dry run counts first, for its progress bar), while a job
    writes in another process: prune's time, and the longest write that job saw (its stall)."""
    (counted, deleted), writes = while_a_job_writes(plain_url, lambda: prune_old(url, facts, budget))
    print(f"  prune of the old tenth: {counted}; {deleted}\n  {writes}", flush=True)


def measure_upgrade(plain_url: str, url: str) -> None:
    """The schema upgrade of the ledger, if it needs one, while a job writes (indexes built on every run and log)."""
    with processcache.connect(url, upgrade=False) as db:
        state = db.schema.state()
        if state is None or state >= CURRENT:
            return

        def upgrade() -> float:
            started = time.perf_counter()
            db.upgrade()
            return time.perf_counter() - started

        seconds, writes = while_a_job_writes(plain_url, upgrade)
    print(f"  upgraded from {describe(state)} to {describe(CURRENT)} in {seconds:.1f} s\n  {writes}", flush=True)


def prune_old(url: str, facts: dict, budget: float) -> tuple[str, str]:
    """Count, then delete, the runs and logs of the old tenth; what each step did."""
    deleted = {"runs": 0, "logs": 0}
    with processcache.connect(url) as db:
        shape = Shape(facts["runs"], facts["logs"], facts["jobs"])
        age = db.clock.now().timestamp() - Timeline(shape, facts["anchor"], []).boundary() + 15
        began = time.perf_counter()

        def progress(table: str, rows: int) -> None:
            deleted[table] += rows
            if time.perf_counter() - began > budget:
                raise _OverBudget

        try:
            counts = db.history.prune(runs_older_than=age, logs_older_than=age, dry_run=True)
            counted = f"counted {counts['runs']:,} runs and {counts['logs']:,} logs"
        except Exception as exc:  # stopped by the statement limit
            counted = f"the count failed ({str(exc).splitlines()[0][:80]})"
        counted += f" in {time.perf_counter() - began:.1f} s (the dry run the CLI makes for its progress bar)"
        began = time.perf_counter()
        try:
            db.history.prune(runs_older_than=age, logs_older_than=age, progress=progress)
            stopped = ""
        except _OverBudget:
            stopped = f", stopped at its budget of {budget:.0f} s"
        except Exception as exc:
            stopped = f", then failed ({str(exc).splitlines()[0][:80]})"
        ended = time.perf_counter()
    return counted, f"deleted {deleted['runs']:,} runs and {deleted['logs']:,} logs in {ended - began:.1f} s{stopped}"


#: The commands that judge every job, timed again once every fifth job has a schedule (missed due times).
JUDGING = ("check", "check --notify", "metrics", "report")


def time_operations(commands: dict[str, Callable[[], object]], reader, writer, job_ids: list[int],
                    repeat: int) -> tuple[dict[str, list[float] | str], list[str]]:
    """Every command; those that judge every job again with schedules (`set_schedules`), and the report with 300
    jobs overdue (`make_overdue`); what the report drew each time (`report_shape`)."""
    set_schedules(writer, job_ids, False)
    times = time_commands(commands, repeat)
    shapes = [report_shape(reader)]
    scheduled = set_schedules(writer, job_ids, True)
    try:
        with_schedules = time_commands({name: commands[name] for name in JUDGING if name in commands}, repeat)
        shapes.append(f"with schedules, {report_shape(reader)}")
    finally:
        set_schedules(writer, job_ids, False)
    times.update({f"{name}, {scheduled} jobs with schedules": samples for name, samples in with_schedules.items()})
    if "report" in commands:
        overdue = make_overdue(writer, job_ids, True)
        try:
            times[f"report, {overdue} jobs overdue"] = time_commands({"report": commands["report"]}, repeat)["report"]
            shapes.append(f"with {overdue} jobs overdue, {report_shape(reader)}")
        finally:
            make_overdue(writer, job_ids, False)
    return times, shapes


def measure_ledger(kind: str, url: str, shape: Shape, folder: str, repeat: int, budget: float,
                   limit: float) -> None:
    facts = ledger_database(kind, url, shape, folder)
    plain_url, url = url, limited(url, kind, limit)
    measure_upgrade(plain_url, limited(plain_url, kind, 3600))
    counts = facts["counts"]
    print(f"\n{kind} ledger: {counts['process_job_runs']:,} runs, {counts['process_job_logs']:,} logs,"
          f" {counts['process_jobs']:,} jobs on {len(MACHINES)} machines, {counts['process_cache']:,} cache entries;"
          f" medians of {repeat}", flush=True)
    with processcache.connect(url, read_only=True) as reader, processcache.connect(url) as writer:
        commands = operations(reader, writer, facts)
        times, shapes = time_operations(commands, reader, writer, facts["job_ids"], repeat)
    print_times(times)
    print(f"  the report: {'; '.join(shapes)}", flush=True)
    cli_times(url, facts, min(repeat, 3), folder, "report" in commands)
    run_overhead(kind, url, folder, repeat)
    measure_prune(plain_url, url, facts, budget)


def kind_of(url: str) -> str:
    scheme = urlsplit(url).scheme.split("+")[0]
    return "postgresql" if scheme.startswith("postgres") else scheme


def ledger(args: argparse.Namespace, folder: str) -> None:
    """``--ledger``: each database of --databases in a scratch database, dropped after, or the ledgers at --url."""
    shape = Shape(args.runs, args.logs, args.jobs)
    for url in args.url:
        measure_ledger(kind_of(url), url, shape, folder, args.repeat, args.prune_budget, args.limit)
    for kind in filter(None, [] if args.url else args.databases.split(",")):
        scratch = Scratch(kind, folder)
        try:
            measure_ledger(kind, scratch.url, shape, folder, args.repeat, args.prune_budget, args.limit)
        finally:
            scratch.drop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql,mysql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated job sizes to load; the one-key run reads the largest")
    ledger_options = parser.add_argument_group("the ledger (--ledger)")
    ledger_options.add_argument("--ledger", action="store_true", help="measure the operations commands over a ledger")
    ledger_options.add_argument("--runs", type=int, default=20_000)
    ledger_options.add_argument("--logs", type=int, default=100_000)
    ledger_options.add_argument("--jobs", type=int, default=100)
    ledger_options.add_argument("--url", action="append", default=[],
                                help="a ledger database to keep (filled if it holds none); repeatable")
    ledger_options.add_argument("--prune-budget", type=float, default=900.0, metavar="SECONDS",
                                help="stop prune after this long (what it deleted by then is reported)")
    ledger_options.add_argument("--limit", type=float, default=60.0, metavar="SECONDS",
                                help="the servers stop any statement that runs longer (its command fails)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.ledger:
            ledger(args, folder)
            return
        sizes = sorted(int(size) for size in args.sizes.split(","))
        for kind in args.databases.split(","):
            measure(kind, folder, args.repeat, sizes)


if __name__ == "__main__":
    main()
