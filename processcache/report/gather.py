"""What the report and the dashboard show of the farm: jobs, their recent runs per machine, problems,
next due times, held locks and cache sizes.

What is read grows with the jobs shown, not with the ledger (200 jobs of
1,000 runs each must render in seconds, and a farm's ledger holds
millions): the jobs, ``check``, the locks, each job and machine's newest
`RECENT_RUNS` by a walk back along an index, each job's last failure by
id, and the cache sizes. These are several reads, not one snapshot: a run
that ends meanwhile may show in the counts and not yet in its card.
Errors and tracebacks are masked with the database URL's password, which
a job that failed to connect may have printed.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import ProcessCacheError
from ..records import JobSummary, Problem, RunMark, RunRecord
from ..storage.reports import FAILED, job_machines, newest_marks
from ..storage.runs import LockRecord
from ..storage.store import JOBS_FROM

if TYPE_CHECKING:
    from ..storage.database import Database

#: Runs shown per job and machine: a strip a person reads at a glance, and a page that stays small.
RECENT_RUNS = 30
#: The problems `check` reports that say a job did not start when it should have.
LATE_KINDS = ("overdue", "missed", "late")


@dataclass(frozen=True)
class MachineRuns:
    """One job's newest runs on one machine, newest first."""

    machine: str
    runs: list[RunMark]


@dataclass(frozen=True)
class JobView:
    """Everything the report shows of one job."""

    summary: JobSummary
    machines: list[MachineRuns]
    problems: list[Problem]
    next_due: datetime | None
    last_failure: RunRecord | None
    locks: list[LockRecord]
    cache_entries: int = 0
    cache_bytes: int = 0

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def running(self) -> bool:
        return any(run.status == "running" for machine in self.machines for run in machine.runs[:1])

    @property
    def failing(self) -> bool:
        return any(problem.kind not in LATE_KINDS for problem in self.problems)

    @property
    def overdue(self) -> bool:
        return any(problem.kind in LATE_KINDS for problem in self.problems)

    @property
    def state(self) -> str:
        """One word for the job's card: failing, overdue, running or healthy (the first that holds)."""
        if self.failing:
            return "failing"
        if self.overdue:
            return "overdue"
        return "running" if self.running else "healthy"


@dataclass(frozen=True)
class Overview:
    """The snapshot: when it was read (the database server's clock), the jobs and the locks held."""

    now: datetime
    database: str
    jobs: list[JobView]
    locks: list[LockRecord]
    group: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def gather(db: "Database", group: str | None = None, grace: float = 60.0) -> Overview:
    """The snapshot of every job not retired (of *group* only when given); *grace* as ``check``'s, in seconds."""
    now = db.clock.now()
    summaries = [summary for summary in db.history.jobs() if group is None or summary.group == group]
    if group is not None and not summaries:
        raise ProcessCacheError(f"no group {group} in this database: `processcache jobs` lists the jobs")
    problems: dict[str, list[Problem]] = {}
    for problem in db.check(grace):
        problems.setdefault(problem.job, []).append(problem)
    locks = db.locks()
    runs = recent_runs(db, group)
    failures = last_failures(db, runs)
    sizes = cache_sizes(db)
    jobs = []
    for summary in summaries:
        key = (summary.group, summary.job)
        jobs.append(_job_view(summary, runs.get(key, []), failures.get(key), problems.get(summary.name, []), locks,
                              sizes.get(key, (0, 0)), now))
    counts = {"jobs": len(jobs), "healthy": sum(not job.problems for job in jobs),
              "failing": sum(job.failing for job in jobs), "overdue": sum(job.overdue for job in jobs),
              "running": sum(job.running for job in jobs)}
    return Overview(now, db.url, jobs, locks, group, counts)


def recent_runs(db: "Database", group: str | None = None) -> dict[tuple[str, str], list[RunMark]]:
    """Each job's newest `RECENT_RUNS` runs per machine, newest first, by (group, job): what is read grows
    with the jobs shown, not with their history (`newest_marks`)."""
    wanted = None if group is None else set(db.store.group_job_ids(group))
    pairs = [pair for pair in job_machines(db.backend) if wanted is None or pair[0] in wanted]
    found: dict[tuple[str, str], list[RunMark]] = {}
    for mark in newest_marks(db, pairs, RECENT_RUNS):
        found.setdefault((mark.group, mark.job), []).append(mark)
    return found


def cache_sizes(db: "Database") -> dict[tuple[str, str], tuple[int, int]]:
    """Each job's live cache entries and their stored size in bytes, by (group, job)."""
    rows = db.backend.select(
        f"SELECT p.name, j.name, COUNT(c.id), SUM(LENGTH(c.entry_value)) {JOBS_FROM}"
        f" JOIN process_cache c ON c.job_id = j.id WHERE c.expires_at IS NULL OR c.expires_at > {db.runs.now}"
        " GROUP BY p.name, j.name")
    return {(group, job): (int(count), int(size or 0)) for group, job, count, size in rows}


def last_failures(db: "Database", runs: dict[tuple[str, str], list[RunMark]]) -> dict[tuple[str, str], RunRecord]:
    """Each job's newest run among *runs* that went wrong, whole (its error and traceback masked with the
    database URL's password), by (group, job)."""
    newest = {key: max(mark.id for mark in marks if mark.status in FAILED)
              for key, marks in runs.items() if any(mark.status in FAILED for mark in marks)}
    mask = db.config.mask
    return {(run.group, run.job): run._replace(error=run.error and mask(run.error),
                                               traceback=run.traceback and mask(run.traceback))
            for run in db.runs.runs_by_id(list(newest.values()))}


def _job_view(summary: JobSummary, runs: list[RunMark], failure: RunRecord | None, problems: list[Problem],
              locks: list[LockRecord], cache: tuple[int, int], now: datetime) -> JobView:
    by_machine: dict[str, list[RunMark]] = {}
    for run in runs:
        by_machine.setdefault(run.machine, []).append(run)
    held = [lock for lock in locks if lock.name.split("@", 1)[0] == summary.name]
    return JobView(summary, [MachineRuns(machine, by_machine[machine]) for machine in sorted(by_machine)],
                   problems, next_due(summary, now), failure, held, *cache)


def next_due(summary: JobSummary, now: datetime) -> datetime | None:
    """When the job should next start: its schedule's next due time, else its last start plus expect_every."""
    if summary.schedule:
        from ..schedules import next_due as scheduled

        try:
            return scheduled(summary.schedule, summary.timezone or "UTC", now)
        except ProcessCacheError:  # a schedule this machine cannot read: check says bad-schedule
            return None
    if summary.expect_every and summary.last_run is not None:
        return summary.last_run.started_at + timedelta(seconds=summary.expect_every)
    return None
