"""`connect()` and `Database`: one processcache database, its schema, and its stores.

A `Database` is cheap to keep and safe to share between threads; open it
once per program and hand it to every `cache_session`, `spec.run` or job.
"""

import functools
import getpass
import platform
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import ProcessCacheError, SchemaError
from ..options import DEFAULT_GRACE
from ..records import GroupRecord, JobRecord, JobSummary, LockRecord, LogRecord, LogType, Problem, RunDetail, RunRecord
from . import config
from .backend import Backend
from .cache import CacheStore
from .clock import Clock
from .runs import RunStore
from .schema import CURRENT, SCHEMA_REVISION, SCHEMA_VERSION, Schema, declare
from .store import Store

if TYPE_CHECKING:
    from .alerts import AlertStore
    from .history import History

SYNC_MODES = ("create", "check", "new")


class Database:
    """A processcache database: connect with a URL, use, then `close()`.

    ``Database(url)`` creates any missing table on first use (``create=False``
    leaves the schema alone) and upgrades a database written by an older
    processcache. With ``upgrade=False`` an older schema version is refused
    and an older revision (an index, say) is used as it is, both left to
    ``processcache db upgrade``. Usable as a context manager, which closes it.
    The URL's password never appears in its repr or in any error.
    """

    def __init__(self, url: str | None = None, *, create: bool = True, upgrade: bool = True,
                 read_only: bool = False, wait: float | None = None) -> None:
        self.config = config.parse_url(config.resolve_url(url))
        self.read_only = read_only
        create = create and not read_only
        self.url = self.config.safe_url
        #: The executor every store runs its SQL through (`backend.py`).
        self.backend = Backend(self.config, read_only, declare, wait)
        #: A transaction of processcache's own (`Backend.transaction`): a `CacheContext.batch` is one.
        self.transaction = self.backend.transaction
        self.schema = Schema(self.backend, self.url)
        self.clock = Clock(self.backend.now)
        self.store = Store(self)
        self.cache = CacheStore(self)
        self.runs = RunStore(self)
        # At every start-up one query finds the current version's markers; only
        # a new or older database gets more. A newer one is refused before
        # anything else, with create=False too (`Schema.refuse_newer`).
        try:
            state = self.backend.retrying(self.schema.state)
            self.schema.refuse_newer(state)
            #: The (version, revision) of the tables as this Database uses them: what the runs may write.
            self.schema_state = state
            if not create:
                return
            if state is None:
                self.sync("create")
            elif state[0] < SCHEMA_VERSION:
                if not upgrade:
                    raise SchemaError(f"this database has schema version {state[0]}; this processcache needs"
                                      f" {SCHEMA_VERSION}: run `processcache db upgrade` (it keeps every row)")
                self.upgrade()
            elif state[1] < SCHEMA_REVISION and upgrade:  # usable as it is: with upgrade=False, left to `db upgrade`
                self.upgrade()
        except BaseException:
            self.close()  # refused: a caller that tries again later must not pile up open connections
            raise

    def has_revision(self, revision: tuple[int, int]) -> bool:
        """Whether the tables, as this Database found or made them, have *revision*'s columns and indexes.

        A database opened read-only, or with upgrade=False, may be older than this release.
        """
        return (self.schema_state or (0, 0)) >= revision

    def __repr__(self) -> str:
        return f"<processcache.Database {self.url}>"

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @functools.cached_property
    def history(self) -> "History":
        """Reports and retention (`history.History`), imported when first used: `run` never needs it."""
        from .history import History

        return History(self)

    @functools.cached_property
    def alerts(self) -> "AlertStore":
        """Alert states and the delivery queue (`storage.alerts`), imported when first used: `run` never needs it."""
        from .alerts import AlertStore

        return AlertStore(self)

    # -- lookups that create nothing ----------------------------------------------------------------

    def find_group(self, group: str) -> GroupRecord | None:
        """The group named *group* (normalised as a job's is), or None; read only, as the original's ``getProcess``.

        Running a job or opening a `cache_session` creates its group and job.
        """
        return self.store.find_group(group)

    def find_job(self, group: str, job: str) -> JobRecord | None:
        """The job *group*/*job* (names normalised), or None; read only, as the original's ``getJob``."""
        return self.store.find_job(group, job)

    # -- reports: what the operations commands show, for programs (the commands call these) ------

    def jobs(self, *, include_retired: bool = False) -> list[JobSummary]:
        """Every job as ``processcache jobs`` shows it: its last run, machines, live entries and expectations.

        Retired jobs (`retire_job`) only with *include_retired*, as ``jobs --all``.
        """
        return self.history.jobs(include_retired)

    def list_runs(self, job: str | None = None, *, status: str | None = None, machine: str | None = None,
                  since: datetime | timedelta | None = None, limit: int | None = 20,
                  skipped: bool = True) -> list[RunRecord]:
        """Runs, newest first, as ``processcache runs`` lists them (None: no limit).

        *job* is ``"group/job"`` or a whole ``"group"``. *status* is one of
        running, succeeded, failed, skipped, lost, terminated (``lost``
        includes running runs whose heartbeat stopped). *since* is a time (a
        naive one is UTC) or a ``timedelta`` back from the database server's
        clock. Skipped copies (a held lock, a once_per slot taken, a recent
        success) are listed unless *skipped* is false, as ``runs`` without
        ``--skipped``. (``db.runs`` is the run store the runner uses, hence the name.)
        """
        return self.history.list_runs(job, status, machine, limit, since, skipped)

    def run(self, run_id: int) -> RunDetail:
        """One run whole, as ``processcache runs show ID`` prints it: record, exit code and logs.

        An id that is not there is a `ProcessCacheError`.
        """
        return self.history.run(run_id)

    def logs(self, job: str | None = None, *, run: int | None = None, type: LogType | str | None = None,
             machine: str | None = None, since: datetime | timedelta | None = None, after: int | None = None,
             limit: int | None = 100, offset: int = 0) -> list[LogRecord]:
        """Logs as ``processcache logs`` shows them: the newest *limit* that match (None: all), oldest first.

        *job* is ``"group/job"`` or a whole ``"group"``; *run* a run's id;
        *type* GENERIC, WARNING or ERROR; *since* as in `list_runs`; *after*
        a log id, to read only what came since (as ``logs --follow`` does);
        *offset* pages back from the newest.
        """
        return self.history.logs(job, run=run, type=type, machine=machine, since=since, after=after,
                                 limit=limit, offset=offset)

    def count_logs(self, job: str | None = None, *, run: int | None = None, type: LogType | str | None = None,
                   machine: str | None = None, since: datetime | timedelta | None = None,
                   after: int | None = None, at_most: int | None = None) -> int:
        """How many logs match the filters of `logs`: what ``logs`` says it leaves out of a page.

        With *at_most*, counting stops there (the count is then at most
        that): a count of every log of a farm's ledger reads millions.
        """
        return self.history.count_logs(job, run=run, type=type, machine=machine, since=since, after=after,
                                       at_most=at_most)

    def check(self, grace: float | str = DEFAULT_GRACE) -> list[Problem]:
        """What ``processcache check`` reports ([] when all is well); *grace* in seconds or as ``"5m"``.

        A job is reported when overdue (no run started within its
        ``expect_every`` plus *grace*), missed (its ``schedule`` was due and no
        run started within *grace* after), late (the run for its last due
        time started after *grace*), when its last run failed, timed out, was
        terminated or was lost, or when it ran past ``max_duration``; retired
        jobs are not. A job's own ``grace`` replaces *grace*. Judged by the
        database server's clock. A database without any job is a ``no-jobs``
        problem.

        The verdicts are `processcache.monitor.check`'s, as for the CLI:
        this is the user's one call for them (``db.check()`` since the first
        release), the one place storage reaches above itself, on call only.
        """
        from ..durations import parse_duration
        from ..monitor.check import check  # the verdicts are monitor's: storage returns rows (see the docstring)

        return check(self, parse_duration(grace, "grace"))

    def replay_lag(self) -> float | None:
        """Seconds this database, a PostgreSQL standby, is behind its primary; None when it is no standby.

        0 when it has replayed all it received, else the time since the last
        transaction it replayed was committed (`processcache.storage.standby`).
        """
        from .standby import replay_lag

        return replay_lag(self.backend)

    def locks(self) -> list[LockRecord]:
        """The locks held now, as ``processcache locks`` lists them: holder, run, and lease left."""
        return [lock for lock in self.runs.locks() if lock.held]

    def retire_job(self, job: str, *, machine: str | None = None) -> datetime:
        """Hide ``"group/job"`` from `check` and `jobs`, keeping its history; return when (the server's time).

        A run of the job that starts later brings it back by itself: cron
        still runs it. `restore_job` brings it back at once. With *machine*,
        only that machine is retired from the job (a job locked per machine
        expects each machine that runs it to go on): a run of it there
        brings the machine back.
        """
        from .retirement import retire, retire_machine

        return retire(self.history, job) if machine is None else retire_machine(self.history, job, machine)

    def mute_job(self, job: str, seconds: float | None) -> None:
        """Send no alert about ``"group/job"`` for *seconds* (None: unmute now), by the database server's clock.

        A job that has not run yet is recorded, so that it can be muted before its first run.
        """
        from ..names import normalize_name, split_job_name

        group, name = split_job_name(job)
        self.alerts.mute(self.store.job_id(normalize_name(group), normalize_name(name)), seconds)

    def pause_job(self, job: str, seconds: float | None = None, reason: str | None = None,
                  by: str | None = None) -> datetime | None:
        """Pause ``"group/job"`` (or every job of ``"group"``) for *seconds* (None: until `resume_job`): its
        runs skip on every machine (exit 75, recorded skipped with *reason*) and ``check`` judges nothing of it.

        Returns until when, by the database server's clock (None: until resumed). *by* says who paused it
        (``user@machine`` by default). A job that has not run yet is recorded, so that it can be paused
        before its first run; a group names the jobs it has.
        """
        from .pauses import FOREVER, pause

        until = pause(self, self._job_ids(job), seconds, reason, by or _who())
        return None if until >= FOREVER else until

    def resume_job(self, job: str) -> int:
        """End the pause of ``"group/job"`` (or of every job of ``"group"``) now; return how many were paused."""
        from .pauses import resume

        return resume(self, self._job_ids(job))

    def set_window(self, job: str, schedule: str | None, seconds: float = 0.0, timezone: str = "UTC",
                   reason: str | None = None) -> None:
        """Give ``"group/job"`` (or every job of ``"group"``) a maintenance window: from each time the cron
        expression *schedule* is due in *timezone*, for *seconds*, the job is paused as by `pause_job`.
        None takes the window away.
        """
        from .pauses import set_window

        if schedule is not None:
            from ..schedules import check_schedule

            schedule, timezone = check_schedule(schedule, timezone)
            if not seconds or seconds <= 0:
                raise ProcessCacheError(f"a maintenance window needs a length: {schedule!r} for 2h, say")
        set_window(self, self._job_ids(job), schedule, timezone, seconds, reason)

    def _job_ids(self, job: str) -> list[int]:
        """A job's id (recorded if new) for ``group/job``, or the ids of a group's jobs for ``group``."""
        from ..names import normalize_name, split_job_name

        if "/" not in job.strip("/"):
            return self.history.job_ids(job)
        group, name = split_job_name(job)
        return [self.store.job_id(normalize_name(group), normalize_name(name))]

    def restore_job(self, job: str, *, machine: str | None = None) -> bool:
        """Undo `retire_job` (of *machine* only, when given); False when it was not retired."""
        from .retirement import restore, restore_machine

        return restore(self.history, job) if machine is None else restore_machine(self.history, job, machine)

    def delete_job(self, job: str, *, dry_run: bool = False,
                   progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
        """Delete ``"group/job"`` for good: its logs, runs and cache entries, and the job.

        Returns how many logs, runs and entries went (would go, with
        *dry_run*). Refused with a `ProcessCacheError` while a run of it is
        alive. *progress* is called with (table, rows) after every batch.
        This Database, or a new process, records the job anew if it runs
        again; another process that ran it before must be restarted first.
        """
        from .retirement import delete

        return delete(self.history, job, dry_run, progress)

    def close(self) -> None:
        """Close this thread's connection; the object must not be used afterwards."""
        self.backend.close()

    def sync(self, mode: str = "create") -> list[str]:
        """Bring the schema in line with this version, and report what differs.

        ``create`` makes what is missing (upgrading an older database) and
        keeps all data; ``check`` changes nothing and returns the differences
        (an empty list when none);
        ``new`` drops every processcache table with its data and recreates them.
        Every mode reads the schema version first and refuses a database a
        newer processcache wrote, changing nothing (SchemaError): ``new`` too,
        as this release knows only its own tables and would leave a newer
        one's behind; recreate such a database with the newer processcache.
        """
        if mode not in SYNC_MODES:
            raise SchemaError(f"unknown sync mode {mode!r}: use create, check or new")
        if mode == "new":
            self.schema.drop()
        elif mode == "create" and (self.schema.state() or CURRENT) < CURRENT:
            self.upgrade()
        differences = self.schema.differences()
        if mode == "check":
            return differences
        if differences:
            self.schema.create()
        # Read again even when nothing was missing: another process may have created the tables since this
        # one found none, and what this Database writes follows the state it holds (`has_revision`).
        self.schema_state = self.schema.state()
        return differences

    def upgrade(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Upgrade a database written by an older processcache in place; return ((version, revision) before, after).

        Runs on first use unless ``connect(url, upgrade=False)``; keeps every row.
        """
        before, self.schema_state = self.schema.upgrade()
        return before, self.schema_state


def connect(url: str | None = None, *, create: bool = True, upgrade: bool = True,
            read_only: bool = False, wait: float | None = None) -> Database:
    """Open the processcache database at *url* (see `processcache.storage.config` for the forms).

    *wait* bounds how long the first connection is tried, in seconds from
    now, in place of the URL's ``retry_for`` (counted from the first
    failure): a run with ``if_database_down`` gives its ``down_wait``.

    ``read_only=True`` is for looking, as the read commands do: it creates
    and changes nothing (no schema, no upgrade), refuses a SQLite file that
    does not exist, and opens one read-only, so a user who may only read the
    file (or its folder) can use it.

    >>> with connect("sqlite://:memory:") as db:
    ...     db.sync("check")
    []
    """
    return Database(url, create=create, upgrade=upgrade, read_only=read_only, wait=wait)


def _who() -> str:
    """``user@machine``, who a pause says paused a job."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in this environment: the machine still says where)
        user = "?"
    return f"{user}@{platform.node()}"
