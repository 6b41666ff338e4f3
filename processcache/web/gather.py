"""What the report and the dashboard show of the farm: jobs, their recent runs per machine, problems,
next due times, held locks and cache sizes.

What is read grows with the jobs shown, not with the ledger (a farm's
ledger holds millions of runs), in one read transaction that sees one
moment, so a run that ends meanwhile shows the same in the counts and in
its card: the jobs and their problems (`monitor.check.judge`, one read for
both), the runs alive now, the locks, the cache sizes and, for each job
drawn as a card, each machine's newest `RECENT_RUNS` by a walk back along
an index and its last failure by id. A page of more than `CARDS` jobs
draws half as many cards at most, for the jobs failing, then overdue, and
lists the rest one line each: 1,000 jobs' strips are 60,000 runs, a second
or more to read and 7 MB to load, and a person looks at the ones in
trouble (100 cards of a 1,000-job farm read 6,000 runs: 0.2 s on each
database). Errors and tracebacks are masked with the database URL's
password, which a job that failed to connect may have printed.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import ProcessCacheError
from ..monitor.check import Verdict, judge
from ..options import DEFAULT_GRACE
from ..records import FAILED, JobSummary, LockRecord, Problem, RunMark, RunRecord
from ..schedules import next_due as scheduled

if TYPE_CHECKING:
    from ..storage import Database

#: Runs shown per job and machine: a strip a person reads at a glance, and a page that stays small.
RECENT_RUNS = 30
#: Jobs drawn as cards (strips, charts, the last failure): every job of a page of this many or fewer; of a
#: bigger one, those failing, then overdue, half this many at most, and the others one line each.
CARDS = 200
#: The problems `check` reports that say a job did not start when it should have.
LATE_KINDS = ("overdue", "missed", "late")


@dataclass(frozen=True)
class MachineRuns:
    """One job's newest runs on one machine, newest first."""

    machine: str
    runs: list[RunMark]


@dataclass(frozen=True)
class JobView:
    """Everything the report shows of one job; of a job not drawn as a card (*card* false), no runs but the
    summary's last one."""

    summary: JobSummary
    machines: list[MachineRuns]
    problems: list[Problem]
    next_due: datetime | None
    last_failure: RunRecord | None
    locks: list[LockRecord]
    cache_entries: int = 0
    cache_bytes: int = 0
    running: bool = False  # a run of it is alive now (heartbeat on time)
    card: bool = True

    @property
    def name(self) -> str:
        return self.summary.name

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


#: The order jobs are listed in: what needs a look first.
SEVERITY = {"failing": 0, "overdue": 1, "running": 2, "healthy": 3}


@dataclass(frozen=True)
class Overview:
    """The snapshot: when it was read (the database server's clock), the jobs (what needs a look first: see
    `SEVERITY`) and the locks held."""

    now: datetime
    database: str
    jobs: list[JobView]
    locks: list[LockRecord]
    group: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cards: int = CARDS  # every job drawn as a card up to this many; at most half as many on a bigger page
    lag: float | None = None  # read from a standby: seconds behind its primary (`Database.replay_lag`)


def gather(db: "Database", group: str | None = None, grace: float = DEFAULT_GRACE, *, job: str | None = None,
           cards: int = CARDS, skipped: bool = False) -> Overview:
    """The snapshot of every job not retired (of *group*, or the job ``group/job`` *job*, only when given);
    *grace* as ``check``'s, in seconds; *cards*: see `CARDS`; skipped copies in the strips only with *skipped*.
    One read transaction that sees one moment (`Backend.snapshot`), read again whole after a lost connection,
    within the URL's retry budget."""

    def read() -> Overview:
        with db.backend.snapshot():
            return _gather(db, group, grace, job, cards, skipped)

    return db.backend.retrying(read)


def _gather(db: "Database", group: str | None, grace: float, job: str | None, cards: int,
            skipped: bool) -> Overview:
    now = db.clock.now()
    verdicts = [verdict for verdict in judge(db, grace, now)
                if (group is None or verdict.summary.group == group) and (job is None or verdict.summary.name == job)]
    if group is not None and job is None and not verdicts:
        raise ProcessCacheError(f"no group {group} in this database: `processcache jobs` lists the jobs")
    locks, sizes, running = db.locks(), cache_sizes(db), running_jobs(db)
    held: dict[str, list[LockRecord]] = {}
    for lock in locks:  # a job's lock is named group/job, or group/job@machine for a lock per machine
        held.setdefault(lock.name.split("@", 1)[0], []).append(lock)
    views = sorted((_job_view(verdict, held.get(verdict.summary.name, []), sizes.get(_key(verdict.summary), (0, 0)),
                              _key(verdict.summary) in running, now) for verdict in verdicts),
                   key=lambda view: (SEVERITY[view.state], view.name))
    drawn = views if len(views) <= cards else [view for view in views if view.failing or view.overdue][:cards // 2]
    ids = {verdict.summary.name: verdict.job_id for verdict in verdicts}
    runs = recent_runs(db, [(ids[view.name], machine) for view in drawn for machine in view.summary.machines], skipped)
    failures = last_failures(db, runs)
    chosen = {view.name for view in drawn}
    jobs = [_drawn(view, runs.get(_key(view.summary), []), failures.get(_key(view.summary)))
            if view.name in chosen else view for view in views]
    counts = {"jobs": len(jobs), "healthy": sum(not job.problems for job in jobs),
              "failing": sum(job.failing for job in jobs), "overdue": sum(job.overdue for job in jobs),
              "running": sum(job.running for job in jobs)}
    return Overview(now, db.url, jobs, locks, group, counts, cards, db.replay_lag())


def _key(summary: JobSummary) -> tuple[str, str]:
    return summary.group, summary.job


def recent_runs(db: "Database", pairs: Sequence[tuple[int, str]],
                skipped: bool = False) -> dict[tuple[str, str], list[RunMark]]:
    """The newest `RECENT_RUNS` runs of each (job id, machine), newest first, by (group, job), skipped copies
    only with *skipped*: what is read grows with the jobs shown, not with their history (`newest_marks`)."""
    found: dict[tuple[str, str], list[RunMark]] = {}
    for mark in db.history.newest_marks(pairs, RECENT_RUNS, skipped):
        found.setdefault((mark.group, mark.job), []).append(mark)
    return found


def running_jobs(db: "Database") -> set[tuple[str, str]]:
    """(group, job) of every job with a run alive now (`History.running_jobs`)."""
    return db.history.running_jobs()


def cache_sizes(db: "Database") -> dict[tuple[str, str], tuple[int, int]]:
    """Each job's live cache entries and their stored size in bytes, by (group, job) (`History.cache_sizes`)."""
    return db.history.cache_sizes()


def last_failures(db: "Database", runs: dict[tuple[str, str], list[RunMark]]) -> dict[tuple[str, str], RunRecord]:
    """Each job's newest run among *runs* that went wrong, whole (its error and traceback masked with the
    database URL's password), by (group, job)."""
    newest = {key: max(mark.id for mark in marks if mark.status in FAILED)
              for key, marks in runs.items() if any(mark.status in FAILED for mark in marks)}
    mask = db.config.mask
    return {(run.group, run.job): run._replace(error=run.error and mask(run.error),
                                               traceback=run.traceback and mask(run.traceback))
            for run in db.runs.runs_by_id(list(newest.values()))}


def _job_view(verdict: Verdict, held: list[LockRecord], cache: tuple[int, int], running: bool,
              now: datetime) -> JobView:
    """A job as a line: what every job shows, without its runs (`_drawn` adds them)."""
    summary = verdict.summary
    return JobView(summary, [], verdict.problems, next_due(summary, now), None, held, *cache, running=running,
                   card=False)


def _drawn(view: JobView, runs: list[RunMark], failure: RunRecord | None) -> JobView:
    """*view* as a card: its newest runs per machine and its last failure."""
    by_machine: dict[str, list[RunMark]] = {}
    for run in runs:
        by_machine.setdefault(run.machine, []).append(run)
    return replace(view, machines=[MachineRuns(machine, by_machine[machine]) for machine in sorted(by_machine)],
                   last_failure=failure, card=True)


def next_due(summary: JobSummary, now: datetime) -> datetime | None:
    """When the job should next start: its schedule's next due time, else its last start plus expect_every."""
    if summary.schedule:
        try:
            return scheduled(summary.schedule, summary.timezone or "UTC", now)
        except ProcessCacheError:  # a schedule this machine cannot read: check says bad-schedule
            return None
    if summary.expect_every and summary.last_run is not None:
        return summary.last_run.started_at + timedelta(seconds=summary.expect_every)
    return None
