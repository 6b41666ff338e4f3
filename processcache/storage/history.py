"""What operators ask of the ledger: every job at a glance, its runs and logs, and retention.

Read-mostly queries over jobs, runs, logs and entries, behind `Database`'s
methods (``db.jobs()``, ``db.list_runs()``, ``db.run(id)``, ``db.logs()``),
which the CLI calls, and the rows ``check`` judges (`History.states`; the
verdicts are `processcache.monitor.check`'s: storage returns rows, never
judgements). The writers are `prune`, which deletes in bounded batches so
it never holds a long lock on a busy database, and `retirement` (retire,
restore and delete a job), which shares its batches.
"""

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..errors import ProcessCacheError
from ..names import normalize, split_job_name
from ..options import flaky_threshold
from ..records import (
    FAILED,
    JobState,
    JobSummary,
    LogRecord,
    LogType,
    MachineRuns,
    RunDetail,
    RunMark,
    RunRecord,
)
from ..records import exit_code as runner_exit_code
from .backend import Backend, id_list
from .pauses import COLUMNS as PAUSE_COLUMNS
from .pauses import active
from .queries import (
    ENDED,
    FIRST_RUN_FROM,
    LAST_START,
    NOT_SKIPPED,
    PAIRS_PER_READ,
    RUNNING_NOW,
    SUCCEEDED,
    last_runs,
    not_in,
    plain_plans,
    select_by_ids,
)
from .runs import LATE_COLUMN, MONITORING, status_at
from .schema import (
    JOB_STATE_REVISION,
    JUDGEMENT_REVISION,
    MONITORING_REVISION,
    PAUSE_REVISION,
    RUN_CONTROL_REVISION,
    SPOOL_REVISION,
)
from .store import JOBS_FROM
from .texts import same_text
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

PRUNE_BATCH = 1000

#: Runs `prune` keeps whatever their age: per job and machine, the latest run not skipped (what `jobs` and
#: `check` show and judge: the failure check reports, when copies were skipped since), the latest of all
#: (its start answers a schedule's due time) and the latest successful run (what ``ctx.last_success()``
#: returns, which incremental jobs start from): `last_runs`'s run to show, then these conditions.
_KEPT_RUNS = ("", SUCCEEDED)
#: The tables `delete_rows` deletes from, by the names its counts use.
TABLES = {"runs": "process_job_runs", "logs": "process_job_logs", "entries": "process_cache"}


def newest_marks(database: "Database", pairs: Sequence[tuple[int, str]], count: int,
                 skipped: bool = False) -> list[RunMark]:
    """Each (job id, machine)'s newest *count* runs as a strip shows them, newest first: per pair a walk back
    from the newest end of the (job, machine, id, status) index, `PAIRS_PER_READ` pairs a statement. Skipped
    copies only with *skipped*: a farm's once_per slots skip one copy per machine, which would crowd the real runs
    out of a strip (the index holds the status: they cost no read of the table).

    Each pair a statement of its own in a UNION ALL: as one condition (an
    OR of ranges) MariaDB read the runs by id from the oldest range's
    start, and a window over the runs numbered every run (seconds at
    2,000,000 runs). Only the columns a strip shows: a report reads tens
    of thousands of runs (0.35 s where whole runs took 0.7 s).
    """
    backend = database.backend
    late = LATE_COLUMN[0 if database.has_revision(SPOOL_REVISION) else 1]
    marks: list[RunMark] = []
    for start in range(0, len(pairs), PAIRS_PER_READ):
        chunk = pairs[start:start + PAIRS_PER_READ]
        sql = " UNION ALL ".join(
            f"SELECT * FROM (SELECT r.id, r.job_id, r.machine, r.status, r.started_at, r.duration, r.expires_at{late}"
            f" FROM process_job_runs r WHERE r.job_id = {int(job_id)} AND r.machine = $m{k}"
            f"{'' if skipped else NOT_SKIPPED} ORDER BY r.id DESC LIMIT {int(count)}) n{k}"
            for k, (job_id, _) in enumerate(chunk))
        with backend.transaction():
            plain_plans(backend)
            rows = backend.select(sql, {f"m{k}": machine for k, (_, machine) in enumerate(chunk)})
            now, names = backend.now(), database.store.names_of({row[1] for row in rows})
        marks += [RunMark(run_id, names[job_id][1], names[job_id][0], machine, status_at(status, expires, now),
                          py_time(started), duration, bool(recorded_late))
                  for run_id, job_id, machine, status, started, duration, expires, recorded_late in rows]
    return marks


def _shown_runs(pairs: list[tuple], runs: dict[int, tuple[str, Any]]) -> tuple[dict[int, list[str]], dict[int, int],
                                                                           dict[int, int]]:
    """By job id: its machines, the run to show and its last attempt, from each machine's run to show (`last_runs`
    rows) and their (status, started_at).

    Copies skipped by the lock, a once_per slot or a recent success are
    newer, but the run that did the work (running, or how it ended) is the
    news; "skipped" only for a job that was never run. Across machines the
    newest is the one that started last, not the highest id: a run another
    machine kept in its spool while the database was down is stored later,
    under a higher id, than runs that started after it.
    """
    machines: dict[int, list[str]] = {}
    attempted: dict[int, int] = {}
    shown: dict[int, int] = {}

    def newest(run_id: int, other: int | None) -> int:
        return run_id if other is None or (runs[run_id][1], run_id) > (runs[other][1], other) else other

    for job_id, machine, run_id in pairs:
        machines.setdefault(job_id, []).append(machine)
        shown[job_id] = newest(run_id, shown.get(job_id))
        if runs[run_id][0] != "skipped":
            attempted[job_id] = newest(run_id, attempted.get(job_id))
    return machines, {**shown, **attempted}, attempted


def _newest_by_job(pairs: Iterable[tuple[int, int | None]]) -> dict[int, int]:
    """By job id, the newest of the run ids given per (job id, run id or None)."""
    newest: dict[int, int] = {}
    for job_id, run_id in pairs:
        if run_id is not None:
            newest[job_id] = max(run_id, newest.get(job_id, run_id))
    return newest


class History:
    """Reports and retention over one database."""

    def __init__(self, database: "Database") -> None:
        self.backend: Backend = database.backend
        self.database = database
        self.runs = database.runs
        self.cache = database.cache

    def job_id(self, name: str) -> int:
        """The id of an existing ``group/job``; a one-line error naming the fix otherwise."""
        group, job = split_job_name(name)
        # the original's rule only: a job an older release stored under a name now refused stays findable
        params = {"group": normalize(group), "job": normalize(job)}
        found = self.backend.value(f"SELECT j.id {JOBS_FROM} WHERE p.name = $group AND j.name = $job", params)
        if found is None:
            wanted = f"{params['group']}/{params['job']}"
            known = [f"{group}/{job}" for group, job in self._names()]
            raise ProcessCacheError(f"no job {wanted} in this database: `processcache jobs` lists them"
                                    + _did_you_mean(wanted, known))
        return found

    def job_ids(self, name: str) -> list[int]:
        """The ids of ``group/job``, or of every job of ``group`` (also written ``group/``: a group named show)."""
        group, _, job = name.partition("/")
        if job:
            return [self.job_id(name)]
        if not group:
            raise ProcessCacheError(f"{name!r} is not GROUP or GROUP/JOB: write it as example or example/hello-world")
        ids = self.database.store.group_job_ids(normalize(group))
        if not ids:
            known = sorted({group for group, _ in self._names()})
            raise ProcessCacheError(f"no group {normalize(group)} in this database: `processcache jobs` lists"
                                    f" the jobs{_did_you_mean(normalize(group), known)}")
        return ids

    def has_jobs(self) -> bool:
        """Whether the database holds any job: ``check`` fails a probe pointed at an empty one."""
        return bool(self._names())

    def first_run_from(self, job_id: int, since: datetime) -> RunRecord | None:
        """The first run of the job that started at or after *since*; None if none did, or if no run started
        before it (the job's very first run: it was not declared when an earlier due time came).

        By the runs still stored: a due time whose earlier runs `prune` deleted is not judged late.
        """
        params = {"job": job_id, "since": db_time(since)}
        first = self.backend.value("SELECT MIN(started_at) FROM process_job_runs WHERE job_id = $job", params)
        if first is None or py_time(first) >= since:
            return None
        found = self.runs.select_runs(FIRST_RUN_FROM, params)
        return found[-1] if found else None

    def running_jobs(self) -> set[tuple[str, str]]:
        """(group, job) of every job with a run alive now (its heartbeat on time), from the (status, id) index."""
        job_ids = {row[0] for row in self.backend.select(RUNNING_NOW, {"now": self.backend.now()})}
        names = self.database.store.names_of(job_ids)
        return {names[job_id][::-1] for job_id in job_ids if job_id in names}


    def cache_sizes(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Each job's live cache entries and their stored size in bytes, by (group, job).

        Grouped by ``job_id + 0`` and named after: grouped by the job's names,
        or by job_id in the order of an index of the cache, MariaDB took 0.1 s
        for 100,000 entries; so, 0.035 s.
        """
        rows = self.backend.select(
            "SELECT job_id + 0, COUNT(*), SUM(LENGTH(entry_value)) FROM process_cache"
            f" WHERE expires_at IS NULL OR expires_at > {self.runs.now} GROUP BY job_id + 0")
        names = self.database.store.names_of({int(row[0]) for row in rows})
        return {names[int(job_id)][::-1]: (int(count), int(size or 0)) for job_id, count, size in rows
                if int(job_id) in names}

    def newest_marks(self, pairs: Sequence[tuple[int, str]], count: int, skipped: bool = False) -> list[RunMark]:
        """Each (job id, machine)'s newest *count* runs as a strip shows them (`newest_marks`)."""
        return newest_marks(self.database, pairs, count, skipped)

    def _names(self) -> list[tuple[str, str]]:
        """(group, job) of every job, for suggestions."""
        return [(group, job) for group, job in self.backend.select(f"SELECT p.name, j.name {JOBS_FROM}")]

    def expectations(self, group: str, job: str) -> dict[str, Any]:
        """The stored ``expect_every``, ``max_duration`` and monitoring settings of a job, those set ({} if none)."""
        names = ("expect_every", "max_duration") + (MONITORING if self._monitored else ())
        found = self.backend.select(f"SELECT {', '.join('j.' + name for name in names)} {JOBS_FROM}"
                                    " WHERE p.name = $group AND j.name = $job", {"group": group, "job": job})
        return {name: value for name, value in zip(names, found[0] if found else ()) if value is not None}

    @property
    def _monitored(self) -> bool:
        """Whether the database has the monitoring columns (a read-only command never upgrades)."""
        return self.database.has_revision(MONITORING_REVISION)

    def jobs(self, include_retired: bool = False) -> list[JobSummary]:
        """Every job with the run to show for it, the machines it ran on and its number of live entries.

        Retired jobs only with *include_retired*.
        """
        return [judged.summary for judged in self.states() if include_retired or not judged.summary.retired]

    def states(self, count_entries: bool = True, judging: bool = False) -> list[JobState]:
        """Every job's summary, retired or not, with what `check` judges (`monitor.check`): its last attempt and
        newest start.

        Each job's machines and the run to show on each (`last_runs`), their statuses, then the runs shown,
        all read at one moment (`Backend.snapshot`). Live cache entries are counted with *count_entries* only
        (`check` shows none: a pass over the cache). With *judging*, what only `check` needs too: each job's
        newest run that ended (of a job with max_duration), each machine's attempt and newest start (of a
        job locked per machine), the machines retired from a job, and the last runs of a job whose last run
        succeeded (flaky?): index probes per job and machine, a few runs read by id.
        """
        with self.backend.snapshot():
            plain_plans(self.backend)
            monitoring = ", ".join(f"j.{name}" if self._monitored else "NULL" for name in MONITORING)
            judged = "j.lock_scope, j.flaky" if self._judged else "NULL, NULL"
            paused = (", ".join(f"j.{column.strip()}" for column in PAUSE_COLUMNS.split(",")) + ", j.after_jobs"
                      if self.database.has_revision(PAUSE_REVISION) else ", ".join(["NULL"] * 8))
            jobs = self.backend.select(f"SELECT j.id, p.name, j.name, j.expect_every, j.max_duration,"
                                       f" {self._retired_at()}, {LAST_START}, {monitoring}, {judged}, {paused}"
                                       f" {JOBS_FROM}"
                                       " ORDER BY p.name, j.name")
            # "job_id + 0": MariaDB grouped by job_id in the order of an index of the cache, reading each entry's
            # row from there to test its expiry (0.65 s for 100,000 entries); by the expression, a pass (0.18 s).
            entries = dict(self.backend.select(
                "SELECT job_id + 0, COUNT(*) FROM process_cache WHERE expires_at IS NULL"
                f" OR expires_at > {self.runs.now} GROUP BY job_id + 0")) if count_entries else {}
            pairs = self.backend.select(last_runs(self.backend, "", ENDED))
            shown_runs = {row[0]: row[1:] for row in select_by_ids(
                self.backend, "SELECT id, status, started_at FROM process_job_runs WHERE id IN ({ids})",
                (row[2] for row in pairs))}
            _, shown, attempted = _shown_runs([row[:3] for row in pairs], shown_runs)
            retired = self._retired_machines()
            settings = {row[0]: (row[4], row[11]) for row in jobs}  # max_duration, lock_scope
            wanted = set(shown.values()) | {row[3] for row in pairs if row[1] in retired.get(row[0], ())}
            ended: dict[int, int] = {}
            if judging:
                wanted |= {run_id for row in pairs if settings[row[0]][1] == "machine" for run_id in row[2:4]}
                ended = _newest_by_job((row[0], row[4]) for row in pairs if settings[row[0]][0] is not None)
                wanted |= set(ended.values())
            runs: dict[int | None, RunRecord] = {run.id: run for run in self.runs.runs_by_id(list(wanted))}
            recent = self._recent_statuses(jobs, pairs, runs, attempted) if judging else {}
        by_job: dict[int, list[tuple]] = {}
        for row in pairs:
            by_job.setdefault(row[0], []).append(row)
        summaries = []
        now = self.database.clock.now()
        for job_id, group, job, expect_every, max_duration, retired_at, started, *monitored in jobs:
            pause, after = active(monitored[-8:-1], now), tuple(filter(None, (monitored[-1] or "").split(",")))
            monitored = monitored[:-8]
            last_start = py_time(started)
            gone = retired.get(job_id, {})
            every = {row[1]: MachineRuns(runs.get(row[2]) if shown_runs[row[2]][0] != "skipped" else None,
                                      runs[row[3]].started_at if row[3] in runs else None, gone.get(row[1]))
                     for row in by_job.get(job_id, ())}
            serving = {machine: state for machine, state in every.items()
                       if still_retired(state.retired_at, state.last_start) is None}
            summary = JobSummary(group, job, runs.get(shown.get(job_id)), tuple(sorted(serving)),
                                 int(entries.get(job_id, 0)), expect_every, max_duration,
                                 still_retired(py_time(retired_at), last_start), *monitored)
            if pause is not None or after:
                summary = replace(summary, pause=pause, after=after)
            summaries.append(JobState(summary, runs.get(attempted.get(job_id)), job_id, last_start,
                                     runs.get(ended.get(job_id)), serving if monitored[-2] == "machine" else {},
                                     recent.get(job_id, [])))
        return summaries

    @property
    def _judged(self) -> bool:
        """Whether the database has revision 7's columns and table (a read-only command never upgrades)."""
        return self.database.has_revision(JUDGEMENT_REVISION)

    def _retired_machines(self) -> dict[int, dict[str, datetime]]:
        """By job id: the machines retired from it (`jobs retire --machine`), with when."""
        if not self._judged:
            return {}
        found: dict[int, dict[str, datetime]] = {}
        for job_id, machine, retired_at in self.backend.select(
                "SELECT job_id, machine, retired_at FROM process_job_machines"):
            found.setdefault(int(job_id), {})[machine] = py_time(retired_at)
        return found

    def _recent_statuses(self, jobs: list[tuple], pairs: list[tuple], runs: dict[int | None, RunRecord],
                         attempted: dict[int, int]) -> dict[int, list[str]]:
        """By job id, of each job whose last attempt succeeded and whose ``flaky`` is on: the statuses of its
        last N runs not skipped on any machine, newest first (a walk back along each machine's index entries,
        N per machine at most, `PAIRS_PER_READ` machines a statement)."""
        window = {}
        for row in jobs:
            threshold = flaky_threshold(row[12])
            last = runs.get(attempted.get(row[0]))
            if threshold is not None and last is not None and last.status == "succeeded":
                window[row[0]] = threshold[1]
        chosen = [(job_id, machine) for job_id, machine, *_ in pairs if job_id in window]
        found: dict[int, list[tuple[int, str]]] = {}
        now = self.backend.now()
        for start in range(0, len(chosen), PAIRS_PER_READ):
            chunk = chosen[start:start + PAIRS_PER_READ]
            sql = " UNION ALL ".join(
                f"SELECT * FROM (SELECT r.id, r.job_id, r.status, r.expires_at FROM process_job_runs r"
                f" WHERE r.job_id = {int(job_id)} AND r.machine = $m{k}{NOT_SKIPPED}"
                f" ORDER BY r.id DESC LIMIT {int(window[job_id])}) n{k}" for k, (job_id, _) in enumerate(chunk))
            for run_id, job_id, status, expires in self.backend.select(
                    sql, {f"m{k}": machine for k, (_, machine) in enumerate(chunk)}):
                found.setdefault(int(job_id), []).append((int(run_id), status_at(status, expires, now)))
        return {job_id: [status for _, status in sorted(marks, reverse=True)[:window[job_id]]]
                for job_id, marks in found.items()}

    def _retired_at(self) -> str:
        """``j.retired_at`` where the schema has it; NULL on an older revision (a read-only command leaves it so)."""
        return "j.retired_at" if self.database.has_revision(JOB_STATE_REVISION) else "NULL"

    def list_runs(self, job: str | None = None, status: str | None = None, machine: str | None = None,
                  limit: int | None = 20, since: datetime | timedelta | None = None,
                  skipped: bool = True) -> list[RunRecord]:
        """Runs, newest first; *job* is ``group/job`` or a whole ``group``; ``status="lost"`` finds running
        runs whose heartbeat stopped; *since* is a time, or a duration back by the database server's clock.
        Skipped copies are left out unless *skipped* (or *status* asks for them)."""
        clauses, params = ["1 = 1"], {"machine": machine, "status": status, "since": None}
        if not skipped and status is None:
            clauses.append("r.status <> 'skipped'")
        if job is not None:
            clauses.append(f"r.job_id IN ({id_list(self.job_ids(job))})")
        if machine is not None:
            clauses.append(same_text("r.machine", "$machine"))
        if since is not None:
            clauses.append("r.started_at >= $since")
            params["since"] = db_time(self._moment(since))  # type: ignore[arg-type]  # not None: since is not
        now = self.runs.now
        if status == "lost":  # recorded as lost, or still `running` past its lease
            return self._lost_runs(clauses, params, limit)
        if status == "running":
            clauses.append(f"r.status = 'running' AND (r.expires_at IS NULL OR r.expires_at >= {now})")
        elif status is not None:
            clauses.append("r.status = $status")
        return self.runs.select_runs(" AND ".join(clauses), params, limit)

    def _lost_runs(self, clauses: list[str], params: dict, limit: int | None) -> list[RunRecord]:
        """Runs recorded as lost and runs still `running` past their lease, newest first: each kind read from
        the newest end of the (status, id) index, then merged. As one condition (an OR), MariaDB read every
        lost run and sorted them (0.45 s at 2,000,000 runs). The running first: one that a taker marks lost
        between the two reads is then read twice, and shown once, not missed."""
        found = {run.id: run for kind in (f"r.status = 'running' AND r.expires_at < {self.runs.now}",
                                          "r.status = 'lost'")
                 for run in self.runs.select_runs(" AND ".join([*clauses, kind]), params, limit)}
        return sorted(found.values(), key=lambda run: run.id, reverse=True)[:limit]

    def run(self, run_id: int) -> RunDetail:
        """One run whole: its record, the exit code `processcache run` gives it, and all its logs."""
        found = self.runs.get(run_id)
        if found is None:
            raise ProcessCacheError(f"no run {run_id} in this database: `processcache runs` lists them")
        return RunDetail(found, _exit_code(found), self.database.store.logs(run_id=run_id), self.runs.attempts(run_id))

    def logs(self, job: str | None = None, *, run: int | None = None, type: LogType | str | None = None,
             machine: str | None = None, since: datetime | timedelta | None = None, after: int | None = None,
             limit: int | None = 100, offset: int = 0) -> list[LogRecord]:
        """The newest *limit* logs that match (every one with None), oldest first; *offset* pages back."""
        return self.database.store.logs(**self._log_filter(job, run, type, machine, since, after),
                                        offset=offset, limit=limit, newest=True)

    def count_logs(self, job: str | None = None, *, run: int | None = None, type: LogType | str | None = None,
                   machine: str | None = None, since: datetime | timedelta | None = None,
                   after: int | None = None, at_most: int | None = None) -> int:
        """How many logs match, up to *at_most*: what `logs` would return without a limit."""
        return self.database.store.count_logs(**self._log_filter(job, run, type, machine, since, after),
                                              at_most=at_most)

    def _log_filter(self, job: str | None, run: int | None, type: LogType | str | None, machine: str | None,
                    since: datetime | timedelta | None, after: int | None) -> dict:
        return {"job_ids": None if job is None else self.job_ids(job), "machine": machine,
                "log_type": None if type is None else LogType.parse(type), "run_id": run,
                "since": self._moment(since), "after_id": after}

    def _moment(self, since: datetime | timedelta | None) -> datetime | None:
        """*since* as a time: a duration counts back from the database server's clock, the one runs and logs
        are stamped by (this machine's may be hours off); a naive datetime is UTC."""
        if isinstance(since, timedelta):
            return self.database.clock.now() - since
        if since is not None and since.tzinfo is None:
            return since.replace(tzinfo=timezone.utc)
        return since

    # -- retention ----------------------------------------------------------------

    def prune(self, runs_older_than: float | None = None, logs_older_than: float | None = None,
              keep_failed_for: float | None = None, dry_run: bool = False, expired: bool = False,
              progress: Callable[[str, int], None] | None = None,
              skipped_older_than: float | None = None) -> dict[str, int]:
        """Delete old runs and logs; failures are kept for *keep_failed_for* (seconds), skipped copies only for
        *skipped_older_than* when it is given (a farm's once_per slots and held locks skip a copy per machine
        and firing: gone sooner, they leave the budget to the runs that did the work).

        Returns how many runs and logs went (or would go, with *dry_run*).
        Cache entries are touched only with *expired*, which deletes the
        expired ones for good. *progress* is called with ("runs", "logs" or
        "entries", rows deleted) after every batch. What `check` and the
        report judge by is kept whatever its age (`_kept_runs`).
        """
        now = self.database.clock.now()
        counts = {}
        if expired:
            counts["entries"] = self.cache.prune_expired(dry_run, PRUNE_BATCH, progress)
        ages = {"runs": runs_older_than, "logs": logs_older_than}
        if runs_older_than is None and skipped_older_than is not None:
            ages["runs"] = float("inf")  # the skipped copies alone
        kept = self._kept_runs() if ages["runs"] is not None or logs_older_than is not None else []
        for table, older_than in ages.items():
            if older_than is None:
                continue
            cut = _before(now, older_than)
            failcut = _before(now, max(older_than, keep_failed_for or 0))
            skipcut = _before(now, min(older_than, skipped_older_than if skipped_older_than is not None
                                       else older_than))
            params = {"cut": db_time(cut), "failcut": db_time(failcut), "skipcut": db_time(skipcut)}
            # Only the kept runs that started before the cut matter: a later run, and its logs, are young.
            old_kept = [run_id for run_id, started in kept if started < max(cut, skipcut)]
            where = (self._old_runs(old_kept, skipcut > cut) if table == "runs"
                     else self._old_logs(old_kept, failcut < cut))
            counts[table] = self.delete_rows(table, where, params, dry_run, progress)
        if runs_older_than is not None and not dry_run:
            self._prune_bookkeeping(runs_older_than)
        return counts

    def _prune_bookkeeping(self, older_than: float) -> None:
        """Slots and delivered (or given up) alert messages older than the runs pruned: nothing reads them again."""
        params = {"age": older_than}
        if self.database.has_revision(RUN_CONTROL_REVISION):
            self.backend.execute(f"DELETE FROM process_job_slots WHERE slot < {self.runs.now} - $age", params)
        if self.database.has_revision(MONITORING_REVISION):
            self.backend.execute("DELETE FROM process_alert_deliveries WHERE status IN ('sent', 'failed')"
                                 " AND created_at < $cut", {"cut": db_time(self.database.clock.now()
                                                                          - timedelta(seconds=older_than))})

    def _kept_runs(self) -> list[tuple[int, datetime]]:
        """The runs prune keeps, with their starts: read once, as a list for ``NOT IN`` (a subquery there ran
        per row on MariaDB, and per batch everywhere)."""
        with self.backend.transaction():
            plain_plans(self.backend)
            kept = {run_id for row in self.backend.select(last_runs(self.backend, *_KEPT_RUNS))
                    for run_id in row[2:] if run_id is not None}
            return [(run_id, py_time(started)) for run_id, started in select_by_ids(
                self.backend, "SELECT id, started_at FROM process_job_runs WHERE id IN ({ids})", kept)]

    def _old_runs(self, kept: list[int], skipped_sooner: bool) -> str:
        """The runs older than the cut (failures: than the failures' cut), and skipped copies older than theirs."""
        failed = ", ".join(f"'{status}'" for status in FAILED)
        skipped = " OR (r.status = 'skipped' AND r.started_at < $skipcut)" if skipped_sooner else ""
        return ("FROM process_job_runs r WHERE ((r.started_at < $cut AND ("
                f"(r.status NOT IN ({failed}, 'running')) OR (r.status IN ({failed}) AND r.started_at < $failcut)"
                f" OR (r.status = 'running' AND r.expires_at < {self.runs.now} AND r.started_at < $failcut))){skipped})"
                f" AND {not_in('r.id', kept)}")

    @staticmethod
    def _old_logs(kept: list[int], failed_kept_longer: bool) -> str:
        """The logs older than the cut, but those of failed runs younger than the failures' cut.

        Without ``--keep-failed-for`` both cuts are the same, and the logs
        are not joined to their runs: counting 10,000,000 logs then reads
        the logs alone.
        """
        failed = ", ".join(f"'{status}'" for status in FAILED)
        kept_runs = f" AND (r.run_id IS NULL OR {not_in('r.run_id', kept)})"
        if not failed_kept_longer:
            return f"FROM process_job_logs r WHERE r.created_at < $cut{kept_runs}"
        return ("FROM process_job_logs r LEFT JOIN process_job_runs x ON x.id = r.run_id"
                " WHERE r.created_at < $cut AND (x.status IS NULL"
                f" OR x.status NOT IN ({failed}, 'running') OR r.created_at < $failcut){kept_runs}")

    def delete_rows(self, table: str, where: str, params: dict, dry_run: bool = False,
                    progress: Callable[[str, int], None] | None = None) -> int:
        """Delete the rows of *table* (a key of `TABLES`) that ``SELECT r.id {where}`` finds, in batches.

        Each batch is its own short transaction, so a busy database is never
        locked for long; *dry_run* only counts. Logs outlive their runs when
        kept longer: a batch of runs is unlinked from its logs first, and its
        attempts go with it.
        """
        attempts = self.database.has_revision(RUN_CONTROL_REVISION)

        def unlink_logs(ids: str) -> None:
            self.backend.execute(f"UPDATE process_job_logs SET run_id = NULL WHERE run_id IN ({ids})")
            if attempts:
                self.backend.execute(f"DELETE FROM process_job_attempts WHERE run_id IN ({ids})")

        return self.backend.delete_in_batches(TABLES[table], where, params, PRUNE_BATCH, dry_run,
                                              progress and (lambda rows: progress(table, rows)),
                                              unlink_logs if table == "runs" else None)


def _before(now: datetime, seconds: float) -> datetime:
    """*seconds* before *now*; the start of time for an infinite age (nothing is that old)."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) if seconds == float("inf") else now - timedelta(seconds=seconds)


def _did_you_mean(wanted: str, known: list[str]) -> str:
    close = difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def still_retired(retired_at: datetime | None, last_started: datetime | None) -> datetime | None:
    """When a job was retired, or None when it is not: never retired, restored, or run since.

    A run that starts after the job was retired means cron still runs it,
    so it is not retired any more; no write on the run's path says so.
    Both times are the database server's.
    """
    if retired_at is None or (last_started is not None and last_started >= retired_at):
        return None
    return retired_at


def _exit_code(run: RunRecord) -> int | None:
    """The exit code `processcache run` gives *run* (`runner.exit_code`, or 128 + the signal that ended it).

    None while it runs, for a run whose process died before recording its
    end, and for one a SystemExit ended (it chose its own code).
    """
    if run.finished_at is None:
        return None
    if run.status == "terminated":
        return None if run.signal is None else 128 + run.signal
    return runner_exit_code(run)
