"""A run whose database cannot be reached: what ``if_database_down`` says, and the run without the database.

``fail`` (the default) is what processcache always did: the first
connection is tried for the URL's ``retry_for``, then one line, exit 1.
``skip`` and ``run`` try it for ``down_wait`` from the run's start (10 s by
default: a server's connect timeout; `connect`'s *wait*), then ``skip``
exits 75 with one line and records nothing, and ``run`` runs the job
without the database (`spooled_run`):

- no lock is taken: nothing farm-wide can be, so a copy on another
  machine, or a second one here, may run at the same time;
- its record, logs, captured output and cache writes are kept in this
  machine's spool (`processcache.run.spool`), and stored in the database, once,
  by the next processcache command that reaches it, marked recorded late;
- its reads of the shared cache (``get_cache``, ``tree``, ``has_cache``,
  ``latest``...), ``last_success``, ``get_logs``, a ``batch`` and
  ``memoize``/``get_or_compute`` raise `DatabaseDownError`: the values it
  would read live in the database, and an old copy could be taken for the
  newest. A job that must read its cache to do its work keeps ``fail``.
  A job with ``on_cache_exist``/``on_cache_empty`` hooks asks whether its
  cache holds anything before it runs, so such a job fails too.

A run that reaches its database first stores what waits in the spool for
that database (`reached`), before it starts; a spool it cannot flush is
said in one line on stderr, and the run goes on.

A database that goes away while a ``run`` job is running (`Fallback`):
the write that finds it gone (after the URL's ``retry_for``) and every
write after it go to the spool under the run's ledger id, with a WARNING
log that says so; the job goes on, and the run ends as it would have,
exit code included. Its replay finishes the run's row (still ``running``
in the ledger), adds its logs and applies its cache writes under the rule
above, and frees its lock; a run whose lock another run took meanwhile
ends ``lost`` and its spooled cache writes are dropped (the other run's
are the newer). Reads after that point raise the database's error. A job
with ``fail`` keeps what it always did: the write raises, and the run's
end cannot be recorded (`RunNotRecordedError`).
"""

import contextlib
import os
import platform
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ..cache.codec import decode_value
from ..cache.context import CacheContext
from ..errors import DatabaseDownError, DatabaseUnavailableError, JobSkippedError, SpoolFullError
from ..names import check_machine, normalize_name
from ..options import JobOptions
from ..records import Entry, LogRecord, LogType, RunRecord
from ..storage import Database, Spool, connect, parse_url, resolve_url, result_summary
from .output import Captured
from .spool import flush_quietly
from .state import state_of

if TYPE_CHECKING:
    from ..storage import Fence

#: The id of a run that is not in the database (yet): skipped or spooled while the database was down.
UNRECORDED = 0


class Down(NamedTuple):
    """Why a run runs without its database: the database's safe URL, and the one line that says why."""

    url: str
    reason: str


@contextlib.contextmanager
def reached(database: "Database | str | None", options: JobOptions, group: str, job: str,
            machine: str | None) -> Iterator[tuple[Database | None, Down | None]]:
    """(the run's database, None), its spool flushed; or (None, why) when it is down and the run runs without it.

    Connects to a URL and closes it afterwards; a connected Database is used
    as it is. When it cannot be reached, ``fail`` raises the error, ``skip``
    raises `JobSkippedError` with a skipped run that is recorded nowhere.
    """
    if isinstance(database, Database):
        flush_quietly(database)
        yield database, None
        return
    wait = None if options.if_database_down == "fail" else options.down_wait
    db: Database | None = None
    why: Down | None = None
    try:
        db = connect(database, wait=wait)
    except DatabaseUnavailableError as unreachable:
        if options.if_database_down == "fail":
            raise
        why = Down(parse_url(resolve_url(database)).safe_url, str(unreachable))
        if options.if_database_down == "skip":
            raise JobSkippedError(*_skipped(why, group, job, machine)) from None
    if db is None:
        yield None, why
        return
    try:
        flush_quietly(db)
        yield db, None
    finally:
        db.close()


def _skipped(why: Down, group: str, job: str, machine: str | None) -> tuple[str, RunRecord]:
    """The one line and the record of a run skipped because its database is down (``if_database_down="skip"``)."""
    message = f"skipped, the database is down (if_database_down=skip): {why.reason}"
    now = datetime.now(UTC)
    return message, RunRecord(UNRECORDED, normalize_name(group), normalize_name(job),
                              check_machine(machine or platform.node()), os.getpid(), "skipped", now, now, 0.0,
                              message)


@contextlib.contextmanager
def spooled_run(group: str, job: str, machine: str | None, down: Down | None, *,
                echo: Callable[[LogRecord], None] | None, options: JobOptions) -> Iterator[CacheContext]:
    """The life of a run without its database: kept in the spool, as `session.recorded_run` records one."""
    from .session import _unechoed, at_work  # the life at work is the same with and without the database

    assert down is not None, "reached() says why the database is down"
    spool = Spool()
    url = down.url
    captured = Captured(options.output_tail) if options.output_tail else None
    ledger = SpooledLedger(spool, url)
    ctx = DownContext(cast(Database, ledger), group, job, machine, _unechoed(echo, captured), options)
    state_of(ctx).output = captured
    started_at = datetime.now(UTC)
    kept = f"it is kept in the spool {spool.path} until the database is back"
    try:
        ledger.spool_id = spool.start(url, ctx.group, ctx.job, ctx.machine, options.data_scope, started_at)
    except SpoolFullError as full:
        kept = f"{full}: this run is not recorded"
    except sqlite3.Error as broken:
        kept = f"the spool {spool.path} cannot be written ({broken}): this run is not recorded"
    ledger.names = (ctx.group, ctx.job)
    started = ctx.run = RunRecord(UNRECORDED, ctx.group, ctx.job, ctx.machine, os.getpid(), "running", started_at)
    ctx.create_log(f"{down.reason}; running without it (if_database_down=run): no lock is held, and {kept}",
                   LogType.WARNING)
    with at_work(ctx, started, captured, release=spool.close):
        yield ctx


class Fallback:
    """The database of a run with ``if_database_down="run"``: its writes go to the spool once it goes away mid-run.

    Every attribute but the three stores is the connected Database's; in
    those, the writes a spooled run keeps (`_WRITES`) are tried on the
    database until one finds it unreachable, then kept in the spool
    (`fall`) for the rest of the run. Reads always ask the database.
    """

    _WRITES = {"store": ("add_log",), "cache": ("add", "add_many", "replace"),
               "runs": ("finish", "record_attempt", "release")}

    def __init__(self, database: Database) -> None:
        self.database = database
        self.ctx: CacheContext | None = None  # the run's context, once it exists
        self.spooled: SpooledLedger | None = None
        self.store, self.cache, self.runs = (_Either(self, part) for part in ("store", "cache", "runs"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.database, name)

    def fall(self, down: DatabaseUnavailableError) -> "SpooledLedger":
        """Keep the rest of the run in the spool from now on; *down* again when the spool has no room for it."""
        ctx = self.ctx
        assert ctx is not None and ctx.run is not None, "a write of a run: its context and record exist"
        spool = Spool()
        ledger = SpooledLedger(spool, self.database.url)
        ledger.names = (ctx.group, ctx.job)
        lock = ctx.fence.holds[0][0] if ctx.fence else None
        try:
            ledger.spool_id = spool.start(self.database.url, ctx.group, ctx.job, ctx.machine, ctx.options.data_scope,
                                          ctx.run.started_at, run_id=ctx.run.id, lock=lock)
        except (SpoolFullError, sqlite3.Error):
            spool.close()
            raise down from None
        self.spooled = ledger
        ctx.create_log(f"{down}; the rest of run {ctx.run.id} is kept in the spool {spool.path} and stored once the"
                       " database is back (if_database_down=run)", LogType.WARNING)
        return ledger

    def end(self) -> None:
        if self.spooled is not None:
            self.spooled.spool.close()


def fallible(database: Database, options: JobOptions) -> Fallback | None:
    """For a ``run`` job, the `Fallback` its context writes to instead of *database*; None for the others."""
    return Fallback(database) if options.if_database_down == "run" else None


class _Either:
    """One of a `Fallback`'s stores: the database's, but for the writes kept in the spool once it fell."""

    def __init__(self, fallback: Fallback, part: str) -> None:
        self._fallback = fallback
        self._part = part

    def __getattr__(self, name: str) -> Any:
        real = getattr(getattr(self._fallback.database, self._part), name)
        if name not in Fallback._WRITES[self._part]:
            return real

        def write(*args: Any, **kwargs: Any) -> Any:
            spooled = self._fallback.spooled
            if spooled is None:
                try:
                    return real(*args, **kwargs)
                except DatabaseUnavailableError as down:
                    spooled = self._fallback.fall(down)
            return getattr(getattr(spooled, self._part), name)(*args, **kwargs)

        return write


class DownContext(CacheContext):
    """The context of a run without its database: writes are spooled, reads of the shared data raise."""

    def get_or_compute(self, *args: Any, **kwargs: Any) -> Any:
        raise _reading(self, "get_or_compute")

    def memoize(self, *args: Any, **kwargs: Any) -> Any:
        raise _reading(self, "memoize")

    def batch(self) -> Any:
        raise _reading(self, "batch")


def _reading(ctx: CacheContext, what: str) -> DatabaseDownError:
    return DatabaseDownError(
        f"{ctx.group}/{ctx.job} runs without its database (if_database_down=run): ctx.{what} needs the shared"
        " cache, which only the database holds; this run's writes (create_cache, set_cache, logs) are kept in the"
        " spool and stored once it is back. Read nothing shared in such a job, or give it if_database_down='fail'")


class SpooledLedger:
    """What `CacheContext` asks of its Database, answered from the spool: writes kept, reads refused."""

    def __init__(self, spool: Spool, url: str) -> None:
        self.spool = spool
        self.url = url
        self.spool_id: str | None = None  # None: the spool was full, nothing of the run is kept
        self.names = ("", "")
        self.store = _Store(self)
        self.cache = _Cache(self)
        self.runs = _Runs(self)
        self.clock = _LocalClock()
        self.backend = _NoBackend()
        self.read_only = False

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise DatabaseDownError(f"{self.names[0]}/{self.names[1]} runs without its database: no transaction")

    def refused(self, what: str) -> DatabaseDownError:
        group, job = self.names
        return DatabaseDownError(
            f"{group}/{job} runs without its database {self.url} (if_database_down=run): {what} reads the shared"
            " cache or the ledger, which only the database holds; this run's writes are kept in the spool and stored"
            " once it is back. Read nothing shared in such a job, or give it if_database_down='fail'")


class _Store:
    def __init__(self, ledger: SpooledLedger) -> None:
        self._ledger = ledger

    def job_id(self, group: str, job: str) -> int:
        return UNRECORDED

    def add_log(self, job_id: int, machine: str, log_type: LogType, message: str, run_id: int | None = None,
                level: str | None = None, created_at: datetime | None = None) -> LogRecord:
        ledger = self._ledger
        created_at = created_at or datetime.now(UTC)
        if ledger.spool_id is not None:
            ledger.spool.add_log(ledger.spool_id, log_type.value, level, message, created_at)
        return LogRecord(None, log_type, message, machine, created_at, None, level, ledger.names[1], ledger.names[0])

    def logs(self, *args: Any, **kwargs: Any) -> Any:
        raise self._ledger.refused("get_logs")

    def group_job_ids(self, *args: Any) -> Any:
        raise self._ledger.refused("get_logs")


class _Cache:
    def __init__(self, ledger: SpooledLedger) -> None:
        self._ledger = ledger

    def add(self, job_id: int, machine: str, key: str, text: str, ttl: float | None = None,
            fence: "Fence | None" = None) -> Entry:
        return self._keep(machine, key, text, ttl, False)

    def add_many(self, job_id: int, machine: str, items: list[tuple[str, str]], ttl: float | None = None,
                 fence: "Fence | None" = None) -> list[Entry]:
        return [self._keep(machine, key, text, ttl, False) for key, text in items]

    def replace(self, job_id: int, machine: str, key: str, text: str, ttl: float | None = None,
                fence: "Fence | None" = None, across_machines: bool = False) -> Entry:
        return self._keep(machine, key, text, ttl, True)

    def _keep(self, machine: str, key: str, text: str, ttl: float | None, replace: bool) -> Entry:
        ledger = self._ledger
        created_at = datetime.now(UTC)
        if ledger.spool_id is not None:
            ledger.spool.add_write(ledger.spool_id, key, text, ttl, replace, created_at)
        return Entry(UNRECORDED, key, decode_value(text), machine, created_at)

    def __getattr__(self, name: str) -> Any:  # every read, and delete: they need the database's rows
        raise self._ledger.refused("ctx.get_cache, latest, has_cache, tree, delete_cache or clear_cache")


class _Runs:
    def __init__(self, ledger: SpooledLedger) -> None:
        self._ledger = ledger

    def finish(self, run: RunRecord, status: str, error: str | None = None, traceback: str | None = None,
               result: Any = None, signal: int | None = None, fence: Any = None, exit_code: int | None = None,
               attempts: int | None = None) -> RunRecord:
        ledger = self._ledger
        finished_at = datetime.now(UTC)
        duration = (finished_at - run.started_at).total_seconds()
        if ledger.spool_id is not None:
            ledger.spool.finish(ledger.spool_id, status, finished_at, duration, error, traceback,
                                result_summary(result), exit_code, signal, attempts)
        return run._replace(status=cast(Any, status), finished_at=finished_at, duration=duration, error=error,
                            traceback=traceback, result=result, signal=signal, exit_code=exit_code, attempts=attempts)

    def record_attempt(self, *args: Any) -> None:
        """Attempts are not kept: the run's record says how many there were."""

    def release(self, *args: Any) -> None:
        """A lock held when the database went away stays held: its replay frees it, after the run's end."""

    def last_success(self, *args: Any) -> Any:
        raise self._ledger.refused("last_success")


class _LocalClock:
    """This machine's clock: with the server away, the only one there is (its runs are stamped by it)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sync(self) -> None:
        return None


class _NoBackend:
    in_transaction = False

    def is_disconnect(self, exc: BaseException) -> bool:
        return False
