"""What operators ask of the database: every job at a glance, what needs a look, and retention.

Read-mostly queries over runs, logs and entries; `prune` is the only writer,
and it deletes in bounded batches so it never holds a long lock on a busy
database.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pony import orm

from .errors import ProcessCacheError
from .names import normalize
from .records import RunRecord
from .timeutil import db_time

#: Statuses of runs that went wrong: kept longer by `prune`, reported by `check`.
FAILED = ("failed", "lost", "terminated")
PRUNE_BATCH = 1000
#: Runs `prune` keeps whatever their age: per job and machine, the latest run
#: (what `jobs` and `check` show) and the latest successful run (what
#: ``ctx.last_success()`` returns, which incremental jobs start from).
_KEPT_RUNS = ("SELECT MAX(k.id) FROM process_job_runs k GROUP BY k.job_id, k.machine"
              " UNION SELECT MAX(k.id) FROM process_job_runs k WHERE k.status = 'succeeded'"
              " GROUP BY k.job_id, k.machine")


@dataclass(frozen=True)
class JobSummary:
    """One job as `processcache jobs` shows it."""

    group: str
    job: str
    last_run: RunRecord | None
    machines: tuple[str, ...]
    entries: int
    expect_every: float | None
    max_duration: float | None

    @property
    def name(self) -> str:
        return f"{self.group}/{self.job}"


@dataclass(frozen=True)
class Problem:
    """Something `processcache check` reports about a job."""

    job: str
    kind: str  # overdue, failed, lost, terminated, too-long; no-jobs for a database that holds none
    detail: str
    run_id: int | None = None


class History:
    """Reports and retention over one database."""

    def __init__(self, database) -> None:
        self.db = database.pony
        self.database = database
        self.runs = database.runs
        self.cache = database.cache

    def job_id(self, name: str) -> int:
        """The id of an existing ``group/job``; a one-line error naming the fix otherwise."""
        group, slash, job = name.partition("/")
        if not slash or not group or not job:
            raise ProcessCacheError(f"{name!r} is not GROUP/JOB: write it as example/hello-world")
        # the original's rule only: a job an older release stored under a name now refused stays findable
        params = {"group": normalize(group), "job": normalize(job)}
        with orm.db_session:
            found = self.db.select("SELECT j.id FROM process_jobs j JOIN processes p ON p.id = j.process_id"
                                   " WHERE p.name = $group AND j.name = $job", params)
        if not found:
            raise ProcessCacheError(f"no job {params['group']}/{params['job']} in this database:"
                                    f" `processcache jobs` lists them{self._did_you_mean(params)}")
        return found[0]

    def _did_you_mean(self, params: dict) -> str:
        import difflib

        with orm.db_session:
            names = [f"{group}/{job}" for group, job in self.db.select(
                "SELECT p.name, j.name FROM process_jobs j JOIN processes p ON p.id = j.process_id", {})]
        close = difflib.get_close_matches(f"{params['group']}/{params['job']}", names, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""

    def expectations(self, group: str, job: str) -> dict[str, float]:
        """The stored ``expect_every`` and ``max_duration`` of a job (normalised names), those set; {} for a new job."""
        with orm.db_session:
            found = self.db.select("SELECT j.expect_every, j.max_duration FROM process_jobs j"
                                   " JOIN processes p ON p.id = j.process_id WHERE p.name = $group AND j.name = $job",
                                   {"group": group, "job": job})
        names = ("expect_every", "max_duration")
        return {name: value for name, value in zip(names, found[0] if found else ()) if value is not None}

    def jobs(self) -> list[JobSummary]:
        """Every job with its last run, the machines it ran on and its number of entries."""
        with orm.db_session:
            jobs = self.db.select("SELECT j.id, p.name, j.name, j.expect_every, j.max_duration"
                                  " FROM process_jobs j JOIN processes p ON p.id = j.process_id"
                                  " ORDER BY p.name, j.name", {})
            entries = dict(self.db.select("SELECT job_id, COUNT(*) FROM process_cache WHERE expires_at IS NULL"
                                          f" OR expires_at > {self.runs.now} GROUP BY job_id", {}))
            machines: dict[int, set[str]] = {}
            for job_id, machine in self.db.select("SELECT DISTINCT job_id, machine FROM process_job_runs", {}):
                machines.setdefault(job_id, set()).add(machine)
        last = {(run.group, run.job): run for run in self.runs.select_runs(
            "r.id IN (SELECT MAX(id) FROM process_job_runs GROUP BY job_id)", {})}
        return [
            JobSummary(group, job, last.get((group, job)), tuple(sorted(machines.get(job_id, ()))),
                       int(entries.get(job_id, 0)), expect_every, max_duration)
            for job_id, group, job, expect_every, max_duration in jobs
        ]

    def list_runs(self, job: str | None = None, status: str | None = None, machine: str | None = None,
                  limit: int = 20) -> list[RunRecord]:
        """Runs, newest first; ``status="lost"`` finds running runs whose heartbeat stopped."""
        clauses, params = ["1 = 1"], {"machine": machine, "status": status}
        if job is not None:
            clauses.append("r.job_id = $job_id")
            params["job_id"] = self.job_id(job)
        if machine is not None:
            clauses.append("r.machine = $machine")
        now = self.runs.now
        if status == "lost":  # recorded as lost, or still `running` past its lease
            clauses.append(f"(r.status = 'lost' OR (r.status = 'running' AND r.expires_at < {now}))")
        elif status == "running":
            clauses.append(f"r.status = 'running' AND (r.expires_at IS NULL OR r.expires_at >= {now})")
        elif status is not None:
            clauses.append("r.status = $status")
        return self.runs.select_runs(" AND ".join(clauses), params, limit)

    def check(self, grace: float = 60.0, now: datetime | None = None) -> list[Problem]:
        """Jobs that are overdue, whose last run failed or was lost, or that ran too long."""
        now = now or self.database.clock.now()  # the server's, as the runs' stamps are: not this machine's
        summaries = self.jobs()
        if not summaries:  # a probe pointed at the wrong database must not pass
            return [Problem("-", "no-jobs", f"{self.database.url} holds no job: is --database right?"
                                            " A job's first run records it")]
        problems = []
        for summary in summaries:
            problems += self._problems_of(summary, self._last_attempt(summary), grace, now)
        return problems

    def _last_attempt(self, summary: JobSummary) -> RunRecord | None:
        # A skipped run is not an attempt: a job skipped for hours is overdue.
        if summary.last_run is None or summary.last_run.status != "skipped":
            return summary.last_run
        found = self.runs.select_runs("p.name = $group AND j.name = $job AND r.status <> 'skipped'",
                                      {"group": summary.group, "job": summary.job}, limit=1)
        return found[0] if found else None

    @staticmethod
    def _problems_of(summary: JobSummary, run: RunRecord | None, grace: float, now: datetime) -> list[Problem]:
        problems = []
        name = summary.name
        if summary.expect_every is not None:
            due = None if run is None else run.started_at + timedelta(seconds=summary.expect_every + grace)
            if due is None or due < now:
                since = "never ran" if run is None else f"last started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
                problems.append(Problem(name, "overdue", f"expected every {summary.expect_every:g}s; {since}",
                                        run and run.id))
        if run is not None and run.status in FAILED:
            problems.append(Problem(name, run.status, run.error or f"run {run.id} {run.status}", run.id))
        if run is not None and summary.max_duration is not None and run.status != "lost":  # a dead run is only lost
            took = run.duration if run.duration is not None else (now - run.started_at).total_seconds()
            if took > summary.max_duration:
                verb = "took" if run.duration is not None else "has been running for"
                problems.append(Problem(name, "too-long", f"run {run.id} {verb} {took:.0f}s;"
                                        f" the limit is {summary.max_duration:g}s", run.id))
        return problems

    # -- retention ----------------------------------------------------------------

    def prune(self, runs_older_than: float | None = None, logs_older_than: float | None = None,
              keep_failed_for: float | None = None, dry_run: bool = False, expired: bool = False,
              progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
        """Delete old runs and logs; failures are kept for *keep_failed_for* (seconds).

        Returns how many runs and logs went (or would go, with *dry_run*).
        Cache entries are touched only with *expired*, which deletes the
        expired ones for good. *progress* is called with ("runs", "logs" or
        "entries", rows deleted) after every batch.
        """
        now = self.database.clock.now()
        counts = {}
        if expired:
            counts["entries"] = self.cache.prune_expired(dry_run, PRUNE_BATCH, progress)
        for table, older_than, select in (("runs", runs_older_than, self._old_runs),
                                          ("logs", logs_older_than, self._old_logs)):
            if older_than is None:
                continue
            kept_failed = max(older_than, keep_failed_for or 0)
            params = {"cut": db_time(now - timedelta(seconds=older_than)),
                      "failcut": db_time(now - timedelta(seconds=kept_failed))}
            counts[table] = self._delete(table, select(), params, dry_run, progress)
        return counts

    def _old_runs(self) -> str:
        failed = ", ".join(f"'{status}'" for status in FAILED)
        return ("FROM process_job_runs r WHERE r.started_at < $cut AND ("
                f"(r.status NOT IN ({failed}, 'running')) OR (r.status IN ({failed}) AND r.started_at < $failcut)"
                f" OR (r.status = 'running' AND r.expires_at < {self.runs.now} AND r.started_at < $failcut))"
                f" AND r.id NOT IN ({_KEPT_RUNS})")

    @staticmethod
    def _old_logs() -> str:
        failed = ", ".join(f"'{status}'" for status in FAILED)
        return ("FROM process_job_logs r LEFT JOIN process_job_runs x ON x.id = r.run_id"
                " WHERE r.created_at < $cut AND (x.status IS NULL"
                f" OR x.status NOT IN ({failed}, 'running') OR r.created_at < $failcut)"
                f" AND (r.run_id IS NULL OR r.run_id NOT IN ({_KEPT_RUNS}))")

    def _delete(self, table: str, where: str, params: dict, dry_run: bool, progress) -> int:
        if dry_run:
            with orm.db_session:
                return int(self.db.select(f"SELECT COUNT(*) {where}", params)[0])
        deleted = 0
        while True:
            with orm.db_session:
                ids = self.db.select(f"SELECT r.id {where} ORDER BY r.id LIMIT {PRUNE_BATCH}", params)
                if not ids:
                    return deleted
                id_list = ", ".join(str(int(i)) for i in ids)
                if table == "runs":
                    # Logs outlive their runs when kept longer: unlink them first.
                    self.db.execute(f"UPDATE process_job_logs SET run_id = NULL WHERE run_id IN ({id_list})", {})
                    self.db.execute(f"DELETE FROM process_job_runs WHERE id IN ({id_list})", {})
                else:
                    self.db.execute(f"DELETE FROM process_job_logs WHERE id IN ({id_list})", {})
            deleted += len(ids)
            if progress is not None:
                progress(table, len(ids))
