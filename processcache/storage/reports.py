"""What operators ask of the database: every job at a glance, its runs and logs, what needs a look, and retention.

Read-mostly queries over jobs, runs, logs and entries, behind `Database`'s
report methods (``db.jobs()``, ``db.list_runs()``, ``db.run(id)``,
``db.logs()``, ``db.check()``), which the CLI calls. The writers are `prune`,
which deletes in bounded batches so it never holds a long lock on a busy
database, and `retirement` (retire, restore and delete a job), which shares
its batches.
"""

import difflib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from ..durations import format_duration
from ..errors import ProcessCacheError, RegistryError
from ..names import normalize, split_job_name
from ..options import flaky_threshold
from ..records import JobSummary, LogRecord, LogType, Problem, RunDetail, RunMark, RunRecord
from .backend import Backend, id_list
from .runs import ID_BATCH, LATE_COLUMN, MONITORING, status_at
from .schema import JOB_STATE_REVISION, JUDGEMENT_REVISION, MONITORING_REVISION, RUN_CONTROL_REVISION, SPOOL_REVISION
from .store import JOBS_FROM
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

#: Statuses of runs that went wrong: kept longer by `prune`, reported by `check`.
FAILED = ("failed", "timed-out", "lost", "terminated")
PRUNE_BATCH = 1000
#: Each job's machines, ``m (job_id, machine)``: a skip scan of the runs' (job, machine, id, status) index,
#: one probe per machine and one more per job, where ``GROUP BY job_id, machine`` read every run (seconds at
#: 2,000,000 runs). The row whose machine is NULL ends each job's list; a job that never ran has only that one.
#: One level of recursion per machine of a job (MariaDB stops at 1,000 levels).
_SKIP_SCAN = (
    "WITH RECURSIVE m (job_id, machine) AS ("
    "SELECT j.id, (SELECT r.machine FROM process_job_runs r WHERE r.job_id = j.id ORDER BY r.machine LIMIT 1)"
    " FROM process_jobs j UNION ALL SELECT m.job_id, (SELECT r.machine FROM process_job_runs r"
    " WHERE r.job_id = m.job_id AND r.machine > m.machine ORDER BY r.machine LIMIT 1)"
    " FROM m WHERE m.machine IS NOT NULL)")
#: The same on MySQL and MariaDB, which skip through the index by themselves for a GROUP BY ("Using index for
#: group-by": 40 ms at 200,000 runs) but not for the skip scan's ``machine > m.machine``, which they read as
#: every run of the job (0.5 s).
_GROUPED = "WITH m (job_id, machine) AS (SELECT job_id, machine FROM process_job_runs GROUP BY job_id, machine)"


def machines(backend: Backend) -> str:
    """The CTE ``m (job_id, machine)`` of each job's machines (rows whose machine is NULL are none)."""
    return _GROUPED if backend.dialect.name == "mysql" else _SKIP_SCAN


def newest_run(pair: str, condition: str = "") -> str:
    """The id of the newest run of *pair*'s job on its machine (``pair.job_id``, ``pair.machine``) that meets
    *condition* (``AND ...`` over ``r``), or NULL.

    A walk back from the newest end of the (job, machine, id, status)
    index, which holds the status: runs skipped or failed on the way cost no
    read of the table, so a machine whose every run a ``once_per`` slot
    skipped costs a pass over its index entries, not over its runs.
    """
    return (f"(SELECT r.id FROM process_job_runs r WHERE r.job_id = {pair}.job_id AND r.machine = {pair}.machine"
            f"{condition} ORDER BY r.id DESC LIMIT 1)")


NOT_SKIPPED = " AND r.status <> 'skipped'"
SUCCEEDED = " AND r.status = 'succeeded'"
#: A run that ended (how long it took is known), skipped copies aside.
ENDED = " AND r.status NOT IN ('skipped', 'running')"
#: How long a machine that ran a job locked per machine stays expected to run it again: a machine silent
#: longer is taken for one the job left (or that left the farm), unless the job's period is longer (see
#: `History._machine_window`). `jobs retire GROUP/JOB --machine NAME` says so at once.
MACHINE_WINDOW = 7 * 86400.0
#: A machine stays expected for at least this many of the job's periods (expect_every, or its schedule's).
MACHINE_PERIODS = 3


def last_runs(backend: Backend, *conditions: str) -> str:
    """Per job and machine: the id of the run to show (the newest not skipped; the newest of all when every one
    was), then for each of *conditions* (``AND ...`` over ``r``; "" for any) the id of the newest that meets it.

    Only ids: the runs themselves are read by id after (`runs_after`, `RunStore.select_runs`). Joined here,
    PostgreSQL, which guesses a skip scan a hundred times its size, hashed every run to join a few thousand.
    """
    extra = "".join(f", {newest_run('m', condition)}" for condition in conditions)
    return (f"{machines(backend)} SELECT m.job_id, m.machine,"
            f" COALESCE({newest_run('m', NOT_SKIPPED)}, {newest_run('m')})"
            f"{extra} FROM m WHERE m.machine IS NOT NULL")


#: Runs alive at ``$now`` per job and machine, from the (status, id) index: a running run whose heartbeat
#: stopped is not (it is lost).
RUNNING_NOW = ("SELECT job_id, machine, COUNT(*) FROM process_job_runs WHERE status = 'running'"
               " AND (expires_at IS NULL OR expires_at >= $now) GROUP BY job_id, machine")

#: Job and machine pairs one statement reads (`newest_marks`, `runs_after`): SQLite allows 500 SELECTs in one.
PAIRS_PER_READ = 100


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


def select_by_ids(backend: Backend, sql: str, ids: Iterable[int]) -> list[tuple]:
    """The rows of *sql* for *ids* (its ``{ids}`` an id list), `ID_BATCH` ids a statement: MariaDB turns a
    list of 1,000 or more into a derived table, which it then joins by reading every row."""
    ordered = sorted(set(ids))
    return [row for start in range(0, len(ordered), ID_BATCH)
            for row in backend.select(sql.format(ids=id_list(ordered[start:start + ID_BATCH])))]


def not_in(column: str, ids: Iterable[int]) -> str:
    """``column NOT IN (...)`` for *ids*, in lists of `ID_BATCH` (see `select_by_ids`); true for none."""
    ordered = sorted(set(ids))
    return " AND ".join(f"{column} NOT IN ({id_list(ordered[start:start + ID_BATCH])})"
                        for start in range(0, len(ordered), ID_BATCH)) or "1 = 1"


def runs_after(columns: str, pairs: Sequence[tuple[int, str, int | None]], condition: str = "") -> tuple[str, dict]:
    """A statement selecting *columns* (over ``r``) of the runs of each (job id, machine, run id) newer than that
    run (all of its runs for None) that meet *condition* (``AND ...``), with its parameters.

    One SELECT per pair in a UNION ALL, each a range of the (job, machine,
    id, status) index: as one OR of ranges, SQLite read every failed run by
    the (status, id) index instead (0.5 s at 2,000,000 runs). Callers pass
    `PAIRS_PER_READ` pairs at most (SQLite allows 500 SELECTs in one).
    """
    params = {f"m{n}": machine for n, (_, machine, _) in enumerate(pairs)}
    return " UNION ALL ".join(
        f"SELECT {columns} FROM process_job_runs r WHERE r.job_id = {int(job_id)} AND r.machine = $m{n}"
        f" AND r.id > {int(after or 0)}{condition}" for n, (job_id, _, after) in enumerate(pairs)), params


#: Runs `prune` keeps whatever their age: per job and machine, the latest run not skipped (what `jobs` and
#: `check` show and judge: the failure check reports, when copies were skipped since), the latest of all
#: (its start answers a schedule's due time) and the latest successful run (what ``ctx.last_success()``
#: returns, which incremental jobs start from): `last_runs`'s run to show, then these conditions.
_KEPT_RUNS = ("", SUCCEEDED)
#: Each job's newest start, skipped runs too (cron fired), from its (job, started_at) index.
LAST_START = "(SELECT r.started_at FROM process_job_runs r WHERE r.job_id = j.id ORDER BY r.started_at DESC LIMIT 1)"
#: The tables `delete_rows` deletes from, by the names its counts use.
TABLES = {"runs": "process_job_runs", "logs": "process_job_logs", "entries": "process_cache"}
#: The first run of a job that started at or after a moment (a schedule's due time, less the early allowance).
_FIRST_RUN_FROM = ("r.job_id = $job AND r.started_at = (SELECT MIN(x.started_at) FROM process_job_runs x"
                   " WHERE x.job_id = $job AND x.started_at >= $since)")


def plain_plans(backend: Backend) -> None:
    """Inside a transaction: PostgreSQL plans its statements without compiling them first.

    A skip scan's estimate counts each probe a hundred times, which puts
    its cost past ``jit_above_cost``: PostgreSQL then compiled the query
    with LLVM for 0.8 s before running it for 0.1 s. ``SET LOCAL`` lasts
    the transaction, so a pooled connection (pgbouncer) keeps nothing.
    """
    if backend.dialect.name == "postgres":
        backend.execute("SET LOCAL jit = off")


class _Machine(NamedTuple):
    """One machine of a job locked per machine, as `check` judges it: its last attempt (its newest run not
    skipped), its newest start (skipped runs too) and when it was retired from the job (None: it was not)."""

    attempt: RunRecord | None
    last_start: datetime | None
    retired_at: datetime | None


class _Judged(NamedTuple):
    """A job as `check` judges it: its summary, its last attempt, its id and its newest start, skipped runs too;
    read only for judging: its newest run that ended (too long?), its machines (a job locked per machine) and
    the statuses of its last runs not skipped, newest first (flaky?)."""

    summary: JobSummary
    attempt: RunRecord | None
    job_id: int
    last_start: datetime | None
    ended: RunRecord | None
    machines: dict[str, _Machine]
    recent: list[str]


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


class Verdict(NamedTuple):
    """A job as `History.judge` found it: its summary (its entries not counted), what `check` reports, its id."""

    summary: JobSummary
    problems: list[Problem]
    job_id: int


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
        return [judged.summary for judged in self._summaries() if include_retired or not judged.summary.retired]

    def _summaries(self, count_entries: bool = True, judging: bool = False) -> list[_Judged]:
        """Every job's summary, retired or not, with what `check` judges: its last attempt and newest start.

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
            jobs = self.backend.select(f"SELECT j.id, p.name, j.name, j.expect_every, j.max_duration,"
                                       f" {self._retired_at()}, {LAST_START}, {monitoring}, {judged} {JOBS_FROM}"
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
        for job_id, group, job, expect_every, max_duration, retired_at, started, *monitored in jobs:
            last_start = py_time(started)
            gone = retired.get(job_id, {})
            every = {row[1]: _Machine(runs.get(row[2]) if shown_runs[row[2]][0] != "skipped" else None,
                                      runs[row[3]].started_at if row[3] in runs else None, gone.get(row[1]))
                     for row in by_job.get(job_id, ())}
            serving = {machine: state for machine, state in every.items()
                       if still_retired(state.retired_at, state.last_start) is None}
            summary = JobSummary(group, job, runs.get(shown.get(job_id)), tuple(sorted(serving)),
                                 int(entries.get(job_id, 0)), expect_every, max_duration,
                                 still_retired(py_time(retired_at), last_start), *monitored)
            summaries.append(_Judged(summary, runs.get(attempted.get(job_id)), job_id, last_start,
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
            clauses.append("r.machine = $machine")
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
        return RunDetail(found, exit_code(found), self.database.store.logs(run_id=run_id), self.runs.attempts(run_id))

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

    def check(self, grace: float = 60.0, now: datetime | None = None) -> list[Problem]:
        """Jobs overdue, missed or late, whose last run failed, timed out, was terminated or lost, or ran too long.

        Retired jobs are not judged. A job's own ``grace`` replaces *grace*.
        A skipped run is not an attempt: a job skipped for hours is overdue.
        It is a start, though: cron fired on time, and the lock, a
        ``once_per`` slot or a recent success said the work was in hand, so
        its due time is not missed (see `_schedule_problems`). Runs are
        judged, not attempts: a run that succeeded on a retry is well, one
        whose every attempt failed is one problem.
        """
        return self.problems(self.judge(grace, now))

    def judge(self, grace: float = 60.0, now: datetime | None = None) -> list[Verdict]:
        """Every job that is not retired with what `check` finds wrong with it, from one read of the jobs.

        For what shows every job and its problems (``check --notify``, the
        report): `jobs` then `check` read every job's newest runs twice. The
        summaries' live cache entries are not counted (0).
        """
        now = now or self.database.clock.now()  # the server's, as the runs' stamps are: not this machine's
        return [Verdict(judged.summary, self._problems_of(judged, grace, now), judged.job_id)
                for judged in self._summaries(count_entries=False, judging=True) if not judged.summary.retired]

    def problems(self, verdicts: list[Verdict]) -> list[Problem]:
        """What `check` reports of *verdicts*: their problems, or ``no-jobs`` when there is no job at all."""
        if not verdicts and not self._names():  # a probe pointed at the wrong database must not pass
            return [Problem("-", "no-jobs", f"{self.database.url} holds no job: is --database right?"
                                            " A job's first run records it")]
        return [problem for verdict in verdicts for problem in verdict.problems]

    def _problems_of(self, judged: _Judged, grace: float, now: datetime) -> list[Problem]:
        """What is wrong with one job (see `check`), in the order an alert names the first of."""
        summary, run = judged.summary, judged.attempt
        grace = summary.grace if summary.grace is not None else grace
        expected = self._expected_machines(judged, now)
        problems = self._schedule_problems(judged, grace, now, expected) if summary.schedule else []
        if summary.expect_every is not None:
            for machine, last in (expected.items() if expected else [(None, run)]):
                problems += _overdue(summary, grace, last, now, machine)
        for machine, last in (expected.items() if expected else [(None, run)]):
            if last is not None and last.status in FAILED:
                problems.append(Problem(summary.name, last.status, _on(machine, _what_went_wrong(last)), last.id,
                                        last, machine))
        problems += _too_long(summary, run, judged.ended, now)
        problems += _flaky(summary, run, judged.recent)
        return problems

    def _expected_machines(self, judged: _Judged, now: datetime) -> dict[str, RunRecord | None]:
        """Of a job locked per machine, each machine expected to go on running it, with its last attempt: those
        that started a run of it (not skipped) within `_machine_window`, and were not retired from it since.
        {} for a job locked across machines, or with no machine expected (it is then judged as a whole)."""
        window = self._machine_window(judged.summary, now)
        return {machine: state.attempt for machine, state in sorted(judged.machines.items())
                if state.attempt is not None and (now - state.attempt.started_at).total_seconds() <= window}

    @staticmethod
    def _machine_window(summary: JobSummary, now: datetime) -> float:
        """Seconds a machine that ran a job locked per machine stays expected: `MACHINE_WINDOW`, or
        `MACHINE_PERIODS` of the job's period (expect_every, or the time between its schedule's due times)
        when longer, so a monthly job's machines are still expected on the next 1st."""
        from ..schedules import current_slot, next_due

        periods = [summary.expect_every or 0.0]
        if summary.schedule and _unreadable(summary.name, summary.schedule, summary.timezone or "UTC") is None:
            zone = summary.timezone or "UTC"
            slot, due = current_slot(summary.schedule, zone, now), next_due(summary.schedule, zone, now)
            if slot is not None and due is not None:
                periods.append((due - slot).total_seconds())
        return max(MACHINE_WINDOW, MACHINE_PERIODS * max(periods))

    def _schedule_problems(self, judged: _Judged, grace: float, now: datetime,
                           expected: dict[str, RunRecord | None]) -> list[Problem]:
        """``missed`` when no run started for a due time whose *grace* is over; ``late`` when its run started after.

        A run answers the due time it starts within *grace* after, or up to
        `schedules.early_allowance` before (a machine whose clock is ahead
        fires cron early). The newest start (skipped runs too: cron fired)
        answers one due time; the next one is missed once its grace is over.
        The detail names that first missed due time, which stays the same
        until a run starts. Otherwise, the first run after the due time the
        newest start answers is late if it started after its grace; not the
        job's very first run, though: the job was not declared when it was
        due. A job whose first due time has not come is not judged; one whose
        schedule this machine cannot read is ``bad-schedule``. Of a job
        locked per machine, each *expected* machine's newest start is judged
        for ``missed`` (a machine whose cron stopped), and ``late`` as a whole.
        """
        from ..schedules import current_slot

        summary, start = judged.summary, judged.last_start
        schedule, zone = summary.schedule, summary.timezone or "UTC"
        if schedule is None or start is None:
            return []
        unreadable = _unreadable(summary.name, schedule, zone)
        if unreadable is not None:
            return [unreadable]
        starts: list[tuple[str | None, datetime | None, RunRecord | None]] = [
            (machine, judged.machines[machine].last_start, last) for machine, last in expected.items()]
        missed = [problem for machine, begun, last in starts or [(None, start, judged.attempt)]
                  for problem in _missed_problem(summary, grace, now, begun, last, machine)]
        if missed:
            return missed
        slot = current_slot(schedule, zone, start)
        if slot is None or start <= slot + timedelta(seconds=grace):
            return []
        late = self._late_run(judged.job_id, schedule, zone, slot)
        if late is None or late.started_at <= slot + timedelta(seconds=grace):
            return []
        return [Problem(summary.name, "late", _late(slot, late, grace, zone), late.id, late)]

    def _late_run(self, job_id: int, schedule: str, zone: str, due: datetime) -> RunRecord | None:
        """The first run that started after *due*'s early allowance; None if it was the job's first run ever.

        By the runs still stored: a due time whose earlier runs `prune`
        deleted is not judged late.
        """
        from ..schedules import early_allowance, previous_due

        since = due - timedelta(seconds=early_allowance(due, previous_due(schedule, zone, due)))
        params = {"job": job_id, "since": db_time(since)}
        first = self.backend.value("SELECT MIN(started_at) FROM process_job_runs WHERE job_id = $job", params)
        if first is None or py_time(first) >= since:
            return None
        found = self.runs.select_runs(_FIRST_RUN_FROM, params)
        return found[-1] if found else None

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


def _on(machine: str | None, detail: str) -> str:
    """*detail*, said of *machine* when the problem is one machine's."""
    return detail if machine is None else f"on {machine}: {detail}"


def _overdue(summary: JobSummary, grace: float, run: RunRecord | None, now: datetime,
             machine: str | None) -> list[Problem]:
    """``overdue`` when *run* (the job's last attempt, or *machine*'s) did not start within expect_every + grace."""
    every = summary.expect_every
    assert every is not None, "judged for a job with expect_every only"
    if run is not None and run.started_at + timedelta(seconds=every + grace) >= now:
        return []
    since = "never ran" if run is None else f"last started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    return [Problem(summary.name, "overdue", _on(machine, f"expected every {every:g}s; {since}"), run and run.id,
                    run, machine)]


def _missed_problem(summary: JobSummary, grace: float, now: datetime, start: datetime | None,
                    attempt: RunRecord | None, machine: str | None) -> list[Problem]:
    """``missed`` when the due time after *start* (the job's newest start, or *machine*'s) is past its grace."""
    from ..schedules import current_slot, next_due

    schedule, zone = summary.schedule, summary.timezone or "UTC"
    assert schedule is not None, "judged for a job with a schedule only"
    if start is None:
        return []
    missed = next_due(schedule, zone, current_slot(schedule, zone, start) or start)
    if missed is None or now <= missed + timedelta(seconds=grace):
        return []
    detail = f"{_missed(missed, grace, zone)}; last started {start:%Y-%m-%d %H:%M:%S} UTC"
    return [Problem(summary.name, "missed", _on(machine, detail), attempt and attempt.id, attempt, machine)]


def _too_long(summary: JobSummary, run: RunRecord | None, ended: RunRecord | None, now: datetime) -> list[Problem]:
    """``too-long`` when the job's newest run that ended took longer than max_duration, or its last attempt has
    been at work longer (its lock wait aside), so a run still within the limit clears nothing: only a run that
    ended within it does. A dead run is only lost; one still waiting for its lock is not at work."""
    limit = summary.max_duration
    if limit is None:
        return []
    if run is not None and run.status == "running" and not run.waiting:
        took = (now - run.started_at).total_seconds() - max(run.waited or 0.0, 0.0)
        if took > limit:
            return [Problem(summary.name, "too-long", f"run {run.id} has been running for {took:.0f}s;"
                                                      f" the limit is {limit:g}s", run.id, run)]
    if run is not None and run.status == "lost":
        return []
    if ended is not None and ended.status != "lost" and ended.duration is not None and ended.duration > limit:
        return [Problem(summary.name, "too-long", f"run {ended.id} took {ended.duration:.0f}s;"
                                                  f" the limit is {limit:g}s", ended.id, ended)]
    return []


def _flaky(summary: JobSummary, run: RunRecord | None, recent: list[str]) -> list[Problem]:
    """``flaky`` when the last run succeeded but K of the job's last N runs failed (its ``flaky`` option, "K/N"),
    in two streaks or more: one streak that ended is an outage that recovered, not a flaky job."""
    threshold = flaky_threshold(summary.flaky)
    if threshold is None or run is None or run.status != "succeeded":
        return []
    failed = [status in FAILED for status in recent]
    streaks = sum(1 for k, bad in enumerate(failed) if bad and (k == 0 or not failed[k - 1]))
    if sum(failed) < threshold[0] or streaks < 2:
        return []
    return [Problem(summary.name, "flaky", f"failed {sum(failed)} of its last {len(recent)} runs"
                                           f" (flaky={threshold[0]}/{threshold[1]}); the last, run {run.id},"
                                           " succeeded", run.id, run)]


def _what_went_wrong(run: RunRecord) -> str:
    """A failed run's error ("timed out after 2h", "exit code 3"), and how many attempts it made when it retried.

    A run with retries is one run, however many attempts failed in it: `check` reports it once.
    """
    error = run.error or f"run {run.id} {run.status}"
    return f"{error} ({run.attempts} attempts)" if run.attempts and run.attempts > 1 else error


def _unreadable(job: str, schedule: str, zone: str) -> Problem | None:
    """``bad-schedule`` for a stored schedule this machine cannot read: reported, not a crash of every check.

    Its time zone may be one this machine's time zone database lacks (a
    slim container has none; the ``tzdata`` package brings one), or a newer
    processcache may have stored an expression this one does not know.
    """
    from ..schedules import check_schedule

    try:
        check_schedule(schedule, zone)
    except RegistryError as exc:
        return Problem(job, "bad-schedule", f"cannot tell when it is due on this machine: {exc}")
    return None


def _missed(due: datetime, grace: float, zone: str) -> str:
    """``due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); no run started by 03:15``."""
    return f"due {_due(due, zone)}; no run started by {_wall(due + timedelta(seconds=grace), due, zone)}"


def _late(due: datetime, run: RunRecord, grace: float, zone: str) -> str:
    """``due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); run 17 started 20m00s late, at 03:20 (grace 15m00s)``."""
    late = format_duration((run.started_at - due).total_seconds())
    return (f"due {_due(due, zone)}; run {run.id} started {late} late, at {_wall(run.started_at, due, zone)}"
            f" (grace {format_duration(grace)})")


def _due(moment: datetime, zone: str) -> str:
    """A due time as `check` shows it: ``2026-11-26 03:00 Europe/Berlin (02:00 UTC)``, or once in UTC."""
    from ..schedules import local_time

    if zone == "UTC":
        return f"{local_time(moment, zone)} UTC"
    return f"{local_time(moment, zone)} {zone} ({local_time(moment, 'UTC', date=False)} UTC)"


def _wall(moment: datetime, due: datetime, zone: str) -> str:
    """*moment*, a little after *due*, on the job's wall clock: the time alone when it is on the same day."""
    from ..schedules import local_time

    return local_time(moment, zone, date=local_time(moment, zone)[:10] != local_time(due, zone)[:10])


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


def exit_code(run: RunRecord) -> int | None:
    """The exit code `processcache run` gives *run* (`runner.exit_code`, or 128 + the signal that ended it).

    None while it runs, for a run whose process died before recording its
    end, and for one a SystemExit ended (it chose its own code).
    """
    if run.finished_at is None:
        return None
    if run.status == "terminated":
        return None if run.signal is None else 128 + run.signal
    from ..records import exit_code as runner_exit_code

    return runner_exit_code(run)
