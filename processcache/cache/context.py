"""`CacheContext`, the object a job receives, and `cache_session` for scripts.

A job's cache, ``last_success`` and logs are read in its scope (the job
option ``scope``, by default the lock's): ``job`` reads every machine's, so a
job that moves host keeps its cache; ``machine`` reads this machine's alone,
as the original process-cache scoped them. Every entry and log still records
the machine that wrote it, and reads can name a scope of their own:
``machine=ANY`` or a machine's name.

``ctx.tree`` and ``ctx.results`` are a snapshot of the job's whole cache,
read from the database on their first use (or when the run starts, with the
job option ``load_cache="eager"``) and by `sync_cache`, then kept in step with
every write made through this context. A run that reads only a few keys
never pays for the whole cache: ``get_cache``, ``latest``, ``has_cache``,
``has_cache_key`` and ``get_full_cache`` read the database, so they also see
what other processes wrote since.

A context is made by `cache_session` (``session.py``) or by the runner, and
shows the user's API alone (``help(ctx)``): the run's machinery (heartbeat,
output, exit code, attempts) is ``run/``'s (`processcache.run.state`), and
the few calls only processcache's own modules make are private by name:
``_store_log`` (the log handler), ``_set_cache_fenced`` and
``_delete_everywhere`` (memo), ``_end`` (``run/``, as a run's block ends).
"""

import contextlib
import contextvars
import platform
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from ..durations import parse_duration
from ..errors import ProcessCacheError
from ..names import check_key, check_keys, check_machine, normalize_name
from ..options import DEFAULT_LEASE, DEFAULT_WAIT_TIMEOUT, JobOptions
from ..records import Entry, LogRecord, LogType, RunRecord
from ..storage import NO_FENCE, Database, Fence, one_line_when_lost
from .codec import encode_value

if TYPE_CHECKING:
    import logging

    from .memo import Memoised

P = ParamSpec("P")
R = TypeVar("R")


class _AnyMachine:
    """The `ANY` marker: read across every machine."""

    def __repr__(self) -> str:
        return "ANY"


class _JobScope:
    """The default of every read: the job's scope (`JobOptions.scope`)."""

    def __repr__(self) -> str:
        return "JOB_SCOPE"


ANY = _AnyMachine()
_THIS = _JobScope()
#: The default of every read's ``machine=``: the job's scope (for `reader`, which reads as a context).
JOB_SCOPE = _THIS

_current: contextvars.ContextVar["CacheContext | None"] = contextvars.ContextVar(
    "processcache_context", default=None)


def current_context() -> "CacheContext":
    """The context of the job running in this thread or task, for helpers deep in a job."""
    ctx = _current.get()
    if ctx is None:
        raise ProcessCacheError("no processcache job is running here: call this inside a job or cache_session")
    return ctx


@contextlib.contextmanager
def using(ctx: "CacheContext") -> Iterator[None]:
    """Make *ctx* what `current_context` returns inside the block (`cache_session` runs the job in one)."""
    token = _current.set(ctx)
    try:
        yield
    finally:
        _current.reset(token)


class CacheContext:
    """What a job sees: its names, its run, its cache and its logs.

    >>> from processcache import cache_session
    >>> with cache_session("example", "doc", database="sqlite://:memory:", machine="m1") as ctx:
    ...     _ = ctx.create_cache("foo", {"n": 1})
    ...     [e.value for e in ctx.tree["foo"]]
    [{'n': 1}]
    """

    def __init__(self, database: Database, group: str, job: str, machine: str | None = None,
                 echo: Callable[[LogRecord], None] | None = None, options: JobOptions | None = None) -> None:
        self.database = database
        self.group = normalize_name(group)
        self.job = normalize_name(job)
        self.machine = check_machine(machine or platform.node())
        self.options = options or JobOptions()
        self.run: RunRecord | None = None
        #: The run's result summary: set it (a JSON value) or return it from the job.
        self.result: Any = None
        self._store = database.store
        self._cache = database.cache
        #: The job's id in the database: what the stores' methods (``database.cache.key_stats(...)``) take.
        self.job_id: int = self._store.job_id(self.group, self.job)
        self._loaded: _Loaded | None = None  # None until `tree` or `results` is first used
        self._echo = echo
        self._logger: logging.Logger | None = None
        #: The lock this run's writes need held (`fence.py`); set once the run takes its lock.
        self.fence = NO_FENCE
        self._ended = False

    def __repr__(self) -> str:
        return f"<CacheContext {self.group}/{self.job} on {self.machine}>"

    # -- the cache --------------------------------------------------------------

    def create_cache(self, key: str, value: Any, ttl: "float | str | None" = None) -> Entry:
        """Append *value* under *key* (keys hold lists) and return the stored entry.

        The entry is committed when this returns. *value* must be a JSON value
        (a TypeError names the type otherwise). With *ttl* (seconds or
        ``"6h"``; default: the job's ``cache_ttl``) the entry expires: every
        read then acts as if it were gone.
        """
        text = encode_value(value)
        entry = self._cache.add(self._live_job(), self.machine, check_key(key), text, self._ttl(ttl), self.fence)
        self._remember([entry])
        return entry

    def create_cache_many(self, items: "Iterable[tuple[str, Any]] | dict[str, Any]",
                          ttl: "float | str | None" = None) -> list[Entry]:
        """Append many ``(key, value)`` entries (or a dict's items) in one transaction.

        All are stored or none: a bad key or value refuses the whole lot first.
        """
        pairs = list(items.items() if isinstance(items, dict) else items)
        keys = check_keys([key for key, _ in pairs])
        encoded = list(zip(keys, map(encode_value, [value for _, value in pairs])))
        entries = self._cache.add_many(self._live_job(), self.machine, encoded, self._ttl(ttl), self.fence)
        self._remember(entries)
        return entries

    def set_cache(self, key: str, value: Any, ttl: "float | str | None" = None) -> Entry:
        """Make *value* the only entry under *key*, atomically.

        A concurrent reader sees the old list or the new value, never an empty
        or doubled key.
        """
        return self._set_cache_fenced(key, value, self._ttl(ttl), self.fence)

    def _set_cache_fenced(self, key: str, value: Any, ttl: float | None, fence: Fence) -> Entry:
        """`set_cache` with its *ttl* in seconds as given, stored only while *fence* holds.

        For `processcache.cache.memo`, whose write needs the call's own lease held
        as well as the run's lock (``ctx.fence.plus(...)``).
        """
        text = encode_value(value)
        entry = self._cache.replace(self._live_job(), self.machine, check_key(key), text, ttl, fence,
                                    across_machines=self._machine(_THIS) is None)
        self._forget(key)
        self._remember([entry])
        return entry

    def delete_cache(self, key: str) -> int:
        """Delete every entry under *key* in the job's scope; return how many there were."""
        count = self._cache.delete(self._live_job(), self._machine(_THIS), check_key(key), self.fence)
        self._forget(key)
        return count

    def clear_cache(self) -> int:
        """Delete every entry of this job in its scope; return how many there were."""
        count = self._cache.delete(self._live_job(), self._machine(_THIS), fence=self.fence)
        self._loaded = _Loaded({}, {})
        return count

    def _delete_everywhere(self, keys: Iterable[str]) -> int:
        """Delete the entries under *keys* on every machine, in one transaction; return how many there were.

        For `processcache.cache.memo`: a memoised value is shared by every machine,
        whatever the job's scope.
        """
        with self.batch():
            count = 0
            for key in keys:
                count += self._cache.delete(self._live_job(), None, check_key(key), self.fence)
                self._forget(key)
        return count

    def latest(self, key: str, default: Any = None, machine: Any = _THIS) -> Any:
        """The newest value under *key*, read from the database, or *default*."""
        entry = self._cache.latest(self._live_job(), self._machine(machine), check_key(key))
        return default if entry is None else entry.value

    def get_cache(self, key: str, machine: Any = _THIS) -> list[Entry]:
        """The entries under *key*, oldest first, read from the database now."""
        return self._cache.entries(self._live_job(), self._machine(machine), check_key(key))

    def has_cache(self, machine: Any = _THIS) -> bool:
        """Whether this job holds any entry (in its scope unless told otherwise)."""
        return self._cache.has(self._live_job(), self._machine(machine))

    def has_cache_key(self, key: str, machine: Any = _THIS) -> bool:
        """Whether *key* holds any entry."""
        return self._cache.has(self._live_job(), self._machine(machine), check_key(key))

    def get_full_cache(self, machine: Any = _THIS) -> dict[str, list[Entry]]:
        """Every key with its entries, oldest first, read from the database now."""
        return _tree_of(self._cache.entries(self._live_job(), self._machine(machine)))

    def sync_cache(self) -> dict[str, list[Entry]]:
        """Rebuild `tree` and `results` from the database, and return the tree."""
        return self._load().tree

    def _load(self) -> "_Loaded":
        entries = self._cache.entries(self._live_job(), self._machine(_THIS))
        self._loaded = _Loaded(_tree_of(entries), {entry.id: entry for entry in entries})
        return self._loaded

    @property
    def tree(self) -> dict[str, list[Entry]]:
        """Every key of the job's scope with its entries, oldest first.

        Read from the database on first use (one query), or when the run
        starts with the job option ``load_cache="eager"``; then a snapshot
        kept in step with this context's writes until `sync_cache`. Once
        the run has ended, only a tree loaded during it is there.
        """
        return (self._loaded or self._load()).tree

    @property
    def results(self) -> dict[int, Entry]:
        """The entries of `tree` by id, loaded with it."""
        return (self._loaded or self._load()).results

    @contextlib.contextmanager
    def batch(self) -> Iterator["CacheContext"]:
        """Make every write inside the block one transaction.

        It is committed at the end of the block and rolled back entirely on
        an exception, and `tree` and `results` return to what they were. A
        batch inside a batch is a savepoint: when the inner block raises, its
        writes alone are undone, and the outer batch goes on if the exception
        is caught. Logs written inside a batch are stored when the outermost
        batch ends, committed or not, so the warnings that explain a failed
        batch are kept (the records returned meanwhile have no id yet). On
        SQLite, other writers wait while the block runs: keep it short; on
        every database, a batch longer than the lease can lose the lock.
        """
        self._live_job()
        loaded = self._loaded
        saved = None if loaded is None else _Loaded({key: list(entries) for key, entries in loaded.tree.items()},
                                                    dict(loaded.results))
        try:
            with one_line_when_lost(self.database, "a batch"), self.database.transaction(immediate=True,
                                                                                          savepoint=True):
                yield self
        except BaseException:
            # Not loaded before the block: unloaded again, so a tree read inside it is read again after the rollback.
            self._loaded = saved
            raise

    def get_or_compute(self, key: str, compute: Callable[[], Any], ttl: "float | str | None" = None,
                       lease: "float | str" = DEFAULT_LEASE, timeout: "float | str" = DEFAULT_WAIT_TIMEOUT) -> Any:
        """The value under *key* from any machine, or ``compute()``'s, computed once for all.

        See `processcache.cache.memo`: one process computes while the others wait.
        """
        from . import memo

        return memo.get_or_compute(self, check_key(key), compute, self._ttl(ttl),
                                   parse_duration(lease, "lease"), parse_duration(timeout, "timeout"))

    def memoize(self, ttl: "float | str | None" = None, lease: "float | str" = DEFAULT_LEASE,
                timeout: "float | str" = DEFAULT_WAIT_TIMEOUT,
                name: str | None = None) -> "Callable[[Callable[P, R]], Memoised[P, R]]":
        """Decorator: memoise a function by its arguments, across processes and machines.

        >>> from processcache import cache_session
        >>> with cache_session("example", "memo", database="sqlite://:memory:") as ctx:
        ...     @ctx.memoize(ttl="1h")
        ...     def square(n, power=2):
        ...         return n ** power
        ...     square(12), square(n=12), square(12, power=2), square.forget(12)
        (144, 144, 144, 1)

        Arguments are bound to the signature first, defaults applied: the
        three calls above are one. An ``async def`` function gets an async
        wrapper. ``square.forget(12)`` deletes one value, ``square.cache_clear()``
        every value of the function, on every machine. Keys hold
        ``<file>.<qualified name>`` of the function, or *name*: see
        `processcache.cache.memo` for the keys, the waits and the leases.
        """
        if callable(ttl):
            raise TypeError("ctx.memoize needs its parentheses: write @ctx.memoize() or @ctx.memoize(ttl=...)")
        from . import memo

        return memo.memoizer(lambda: self, self._ttl(ttl), parse_duration(lease, "lease"),
                             parse_duration(timeout, "timeout"), name)

    def _ttl(self, ttl: "float | str | None") -> float | None:
        if ttl is None:
            return self.options.cache_ttl
        return parse_duration(ttl, "ttl")

    def _remember(self, entries: list[Entry]) -> None:
        if self._loaded is None:
            return  # not loaded: its first use reads these from the database
        for entry in entries:
            self._loaded.tree.setdefault(entry.key, []).append(entry)
            self._loaded.results[entry.id] = entry

    def _forget(self, key: str) -> None:
        if self._loaded is None:
            return
        for entry in self._loaded.tree.pop(key, []):
            self._loaded.results.pop(entry.id, None)

    # -- logs -------------------------------------------------------------------

    def create_log(self, message: str, type: LogType | str = LogType.GENERIC) -> LogRecord:
        """Store one log message of this job, linked to the current run."""
        return self._store_log(str(message), LogType.parse(type))

    def _store_log(self, message: str, log_type: LogType, level: str | None = None) -> LogRecord:
        """`create_log` with the `logging` level name kept: what ``ctx.logger``'s handler (`loghandler`) stores."""
        job_id, run_id = self._live_job(), self.run and self.run.id
        backend = self.database.backend
        if backend.in_transaction:  # a batch: stored once it ends, so that its rollback cannot take the log
            record = LogRecord(None, log_type, message, self.machine, self.database.clock.now(), run_id, level,
                               self.job, self.group)
            backend.after(lambda: self._store_later(job_id, log_type, message, run_id, level, record.created_at))
        else:
            record = self._store.add_log(job_id, self.machine, log_type, message, run_id, level)
        if self._echo is not None:
            self._echo(record)
        return record

    def _store_later(self, job_id: int, log_type: LogType, message: str, run_id: int | None, level: str | None,
                     created_at: datetime) -> None:
        """Store a log written inside a batch, once the batch has ended."""
        self._store.add_log(job_id, self.machine, log_type, message, run_id, level, created_at)

    def _live_job(self) -> int:
        """This context's job id, or a clear error once its session has ended (no write may land on a finished run)."""
        if self._ended:
            run = f"the run {self.run.id}" if self.run is not None else "the session"
            raise ProcessCacheError(f"{run} of {self.group}/{self.job} has ended: use its context"
                                    " only inside its job or its cache_session block")
        return self.job_id

    @property
    def slot(self) -> datetime | None:
        """The due time this run runs for (UTC): its ``once_per`` slot's start, a missed due time being caught
        up (``catch_up``), or the current one; None for a run without ``once_per``."""
        return None if self.run is None else self.run.slot

    @property
    def record(self) -> RunRecord:
        """The run's final record, once it has ended (after its ``with cache_session`` block, or its job).

        ``ctx.run`` is Optional (a context may record no run) and changes
        from the running record to the final one; ``ctx.record`` is the final
        one alone, never None, and its ``status`` one of `RunStatus`. Read
        before the run ended, or when its end could not be recorded, it is a
        `ProcessCacheError` that says so.
        """
        run = self.run
        if run is None:
            raise ProcessCacheError(f"this context of {self.group}/{self.job} records no run: it has no record")
        if not self._ended:
            raise ProcessCacheError(f"run {run.id} of {self.group}/{self.job} has not ended: ctx.record is its final"
                                    " record, read after the with block (ctx.run is the running one meanwhile)")
        if run.status == "running":
            raise ProcessCacheError(f"run {run.id} of {self.group}/{self.job} ended but its end could not be"
                                    " recorded (RunNotRecordedError said why): it has no final record")
        return run

    def _end(self) -> None:
        """Mark the run over (``run/`` does as its block ends): every later call raises, so no write lands on it."""
        self._ended = True

    @property
    def logger(self) -> "logging.Logger":
        """A `logging.Logger` whose records land in this job's logs, linked to the run.

        DEBUG and INFO are stored as GENERIC, WARNING as WARNING, ERROR and
        CRITICAL as ERROR; the level name is kept. Records also propagate to
        the ``processcache.jobs`` logger, for handlers of your own.
        """
        if self._logger is None:
            import logging

            from .loghandler import DatabaseHandler

            logger = logging.Logger(f"processcache.jobs.{self.group}.{self.job}", logging.DEBUG)
            logger.parent = logging.getLogger("processcache.jobs")
            logger.addHandler(DatabaseHandler(self))
            self._logger = logger
        return self._logger

    def last_success(self, machine: Any = _THIS) -> RunRecord | None:
        """The previous successful run of this job (in its scope unless told otherwise: on any machine
        for ``scope="job"``, so a job that moved host goes on from where it stopped).

        Incremental jobs fetch only what is new since ``ctx.last_success().started_at``.
        """
        before = self.run.id if self.run is not None else None
        return self.database.runs.last_success(self._live_job(), self._machine(machine), before)

    def get_logs(self, offset: int = 0, limit: int | None = None, type: LogType | str | None = None,
                 machine: Any = _THIS, whole_group: bool = False, output: bool = False) -> list[LogRecord]:
        """This job's logs, oldest first, paged by *offset* and *limit*.

        ``machine=ANY`` reads every machine's; ``whole_group=True`` reads the
        logs of every job of this group (the original's per-process logs).
        The job's own logs only, as the original's ``getJobLogs`` returned:
        ``output=True`` adds what its runs printed (the logs of levels
        ``STDOUT`` and ``STDERR``, one each a run that printed).
        """
        job_ids = self._store.group_job_ids(self.group) if whole_group else [self._live_job()]
        log_type = None if type is None else LogType.parse(type)
        return self._store.logs(job_ids, self._machine(machine), log_type, offset, limit, output=output)

    @property
    def scope_machine(self) -> str | None:
        """The machine whose data the job's scope covers: this context's, or None for every machine's."""
        return self._machine(_THIS)

    def _machine(self, machine: Any) -> str | None:
        if machine is _THIS:
            return self.machine if self.options.data_scope == "machine" else None
        if machine is ANY:
            return None
        return check_machine(machine)


class _Loaded(NamedTuple):
    """`CacheContext.tree` and `CacheContext.results`, loaded together."""

    tree: dict[str, list[Entry]]
    results: dict[int, Entry]


def _tree_of(entries: list[Entry]) -> dict[str, list[Entry]]:
    tree: dict[str, list[Entry]] = {}
    for entry in entries:
        tree.setdefault(entry.key, []).append(entry)
    return tree
