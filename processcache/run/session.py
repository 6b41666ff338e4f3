"""The life of one run: record it, take the overlap lock, keep it alive, load, finish.

`cache_session` is that life as a ``with`` block; the runner calls the same
thing around a job's hooks and function, so both record runs the same way.
"""

import contextlib
import math
import os
import os.path
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from ..cache.context import CacheContext, using
from ..durations import format_duration
from ..errors import (
    CommandFailedError,
    JobLockedError,
    JobSkippedError,
    ProcessCacheError,
    RegistryError,
    RunNotRecordedError,
    SchemaError,
    one_line,
)
from ..names import lock_key, lock_name, normalize_name
from ..options import JobOptions
from ..records import LogRecord, LogType, RunRecord, RunStatus, exit_code
from ..storage import (
    JUDGED,
    MONITORING,
    Database,
    DriverError,
    Fence,
    RunStore,
    backoff,
    connect,
    paused,
    pool_locks,
    pool_size,
)
from .heartbeat import Heartbeat
from .output import Captured
from .signals import Terminated
from .state import state_of
from .timeouts import TimedOut, interrupt_after

if TYPE_CHECKING:
    from ..monitor.pings import Pinger


@contextlib.contextmanager
def open_database(database: "Database | str | None") -> Iterator[Database]:
    """Use a connected Database as it is, or connect to a URL and close it afterwards."""
    if isinstance(database, Database):
        yield database
        return
    db = connect(database)
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def cache_session(group: str, job: str, machine: str | None = None,
                  database: "Database | str | None" = None, *,
                  echo: Callable[[LogRecord], None] | None = None,
                  options: JobOptions | None = None, **job_options: Any) -> Iterator[CacheContext]:
    """Run a ``with`` block as a recorded run of *group*/*job*, and yield its `CacheContext`.

    ``database`` is a URL, a connected `Database`, or None for
    ``PROCESSCACHE_DATABASE_URL`` or the default SQLite file. Keywords are
    job options (see `JobOptions`); unlike ``@job``, a session takes no lock
    unless asked (``overlap="skip"`` or ``"wait"``), and raises
    `JobLockedError` when it cannot have it (`JobSkippedError` when
    ``once_per`` or ``skip_if_succeeded_within`` find the work done).
    ``ctx.tree`` is read on its first use, or before the block with
    ``load_cache="eager"``. ``timeout`` stops the block with `TimedOut`;
    ``retries`` is refused: a block cannot be run again (use ``@job``).

    An exception in the block marks the run `failed` (`TimedOut`:
    ``timed-out``; KeyboardInterrupt and SystemExit: `terminated`), stores
    its traceback as an ERROR log, keeps every write made before it, and
    propagates. ``ctx.run`` holds the final record after the block.
    """
    options = (options or JobOptions(overlap="allow")).replace(**job_options)
    if options.retries:
        raise RegistryError("retries apply to @job and `processcache exec`: a with block cannot be run again;"
                            " loop over cache_session yourself, or declare the work with @job")
    with recorded_run(group, job, machine, database, echo=echo, options=options) as ctx, \
            interrupt_after(options.timeout):
        yield ctx


@contextlib.contextmanager
def recorded_run(group: str, job: str, machine: str | None, database: "Database | str | None", *,
                 echo: Callable[[LogRecord], None] | None, options: JobOptions,
                 slot: datetime | None = None) -> Iterator[CacheContext]:
    """The life of one run around a block: record, lock, gate, capture, finish.

    `cache_session` is this with the block under its timeout; the runner
    and `command` run their attempts (each under its timeout) inside it.
    A database that cannot be reached is what ``if_database_down`` says
    (`downtime`): the one-line error, a skip, or the run without it, spooled.
    """
    from .downtime import fallible, reached, spooled_run

    options = _spread(options, group, job)
    with reached(database, options, group, job, machine) as (db, down):
        if db is None:
            with spooled_run(group, job, machine, down, echo=echo, options=options) as ctx:
                yield ctx
            return
        captured = Captured(options.output_tail) if options.output_tail else None
        fallback = fallible(db, options)
        ctx = CacheContext(cast(Database, fallback or db), group, job, machine, _unechoed(echo, captured), options)
        if fallback is not None:
            fallback.ctx = ctx
        state_of(ctx).output = captured
        runs = db.runs
        started = ctx.run = runs.start(ctx.group, ctx.job, ctx.machine, os.getpid(), options.lease,
                                       options.expect_every, options.max_duration, options.data_scope,
                                       {name: getattr(options, name)
                                        for name in (*MONITORING, *JUDGED.values(), "after")},
                                       waiting=options.overlap == "wait")
        lock: str | None = None  # the heartbeat renews it from the moment it is taken: the lambda reads it then
        pool: str | None = None  # the pool's lock it took, renewed as the job's
        heartbeat = Heartbeat(lambda: runs.heartbeat(started.id, options.lease, lock, pool), options.lease / 3,
                              f"run {started.id}", close=db.close)
        state_of(ctx).heartbeat = heartbeat

        def gates(started: RunRecord) -> RunRecord:
            nonlocal lock, pool
            _skip_if_paused(ctx, started)
            _wait_for_upstreams(ctx, started)
            lock, started = _take_lock(ctx, started)
            pool = _take_pool(ctx, started)
            started = ctx.run = _skip_if_done(ctx, started, slot)  # with its slot: ctx.slot
            return started

        def release() -> None:
            if pool is not None:
                _release(ctx.database.runs, pool, started.id)
            if lock is not None:
                _locks_here.held.discard((db.url, lock))
                _release(ctx.database.runs, lock, started.id)
            if fallback is not None:
                fallback.end()

        with heartbeat, at_work(ctx, started, captured, gates, release, eager=options.load_cache == "eager"):
            yield ctx


@contextlib.contextmanager
def at_work(ctx: CacheContext, started: RunRecord, captured: Captured | None,
            gates: Callable[[RunRecord], RunRecord] | None = None, release: Callable[[], None] | None = None, *,
            eager: bool = False) -> Iterator[CacheContext]:
    """A run at work, recorded or spooled alike: its *gates* (lock, slot), its ping, its captured output and
    logging, its end recorded (a failure as a failure), *release* (its lock) as soon as it ended, then its
    end pinged (a slow ping holds no lock)."""
    pinger = None
    try:
        try:
            if gates is not None:
                started = gates(started)
            pinger = _pinged(ctx.options.ping)
            with _captured_logging(ctx), using(ctx), _python_output(captured):
                if eager:
                    ctx.sync_cache()
                yield ctx
        except BaseException as exc:
            if isinstance(exc, JobSkippedError) and exc.run is ctx.run:
                raise  # this run's own skip, recorded already (a job's inner session's is the job's error)
            _store_output(ctx)
            _record_failure(ctx, started, exc)
            raise
        _store_output(ctx)
        ctx.run = _finish(ctx, started, "succeeded", None, result=ctx.result)
    finally:
        ctx._end()
        if release is not None:
            release()
        if pinger is not None:
            _ping_end(pinger, ctx)


def _spread(options: JobOptions, group: str, job: str) -> JobOptions:
    """*options* with their schedule's ``H`` resolved for this job (`schedules.spread`): what the run stores,
    claims its ``once_per`` slot by, and ``check`` judges it by."""
    if not options.schedule or "h" not in options.schedule.lower():
        return options
    from ..schedules import spread, spreads

    if not spreads(options.schedule):
        return options
    return options.replace(schedule=spread(options.schedule, f"{normalize_name(group)}/{normalize_name(job)}"))


def _pinged(url: str | None) -> "Pinger | None":
    """The run's pinger, its start sent, once the run does its work (a skipped run pings nothing)."""
    if url is None:
        return None
    from ..monitor.pings import Pinger

    pinger = Pinger(url)
    pinger.start()
    return pinger


def _ping_end(pinger: "Pinger", ctx: CacheContext) -> None:
    """Ping how the run ended, with its output's end; never raises (the run's ending is recorded already)."""
    run = ctx.run
    if run is None or run.status == "running":  # its end could not be recorded: nothing true to ping
        return
    captured = state_of(ctx).output
    output = "\n".join(text for _level, text in captured.tails()) if captured is not None else ""
    try:
        pinger.finish(run, exit_code(run), output)
    except Exception:  # noqa: BLE001  (a ping must never fail a run)
        pass


def _unechoed(echo: Callable[[LogRecord], None] | None,
              captured: Captured | None) -> Callable[[LogRecord], None] | None:
    """*echo*, writing what the run's output tail does not keep: the job's logs are stored once, as logs."""
    if echo is None or captured is None:
        return echo

    def muted_echo(record: LogRecord) -> None:
        with captured.muted():
            echo(record)

    return muted_echo


def _python_output(captured: Captured | None) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if captured is None else captured.python_streams()


def _store_output(ctx: CacheContext) -> None:
    """Store the end of what the run printed as its STDOUT and STDERR logs (never echoed: it was printed)."""
    output = state_of(ctx).output
    if output is None:
        return
    for level, text in output.tails():
        try:
            ctx.database.store.add_log(ctx.job_id, ctx.machine, LogType.GENERIC, text, ctx.run and ctx.run.id, level)
        except Exception:
            pass  # the run's own ending matters more: it is recorded next, or its failure reported


class _LocksHere(threading.local):
    """The locks runs of this thread hold, by (database, lock name): a job that
    runs itself with overlap="wait" would otherwise wait for itself. Per
    thread, so that a scheduler's threads running one job still take turns."""

    def __init__(self) -> None:
        self.held: set[tuple[str, str]] = set()


_locks_here = _LocksHere()


def _release(runs: RunStore, name: str, run_id: int) -> None:
    """Free the lock if the database lets us; if not, its lease frees it, and the error that matters is raised."""
    try:
        runs.release(name, run_id)
    except (ProcessCacheError, DriverError):
        pass


def lock_name_of(ctx: CacheContext) -> str:
    """The key of the run's lock: of ``group/job`` for a job-wide lock, ``group/job@machine`` per machine.

    The key, not the name, is what the lock row, the fence and the messages
    hold (`locknames`): a long name's key is the one that fits the row.
    """
    return lock_key(lock_name(ctx.group, ctx.job, ctx.machine if ctx.options.lock == "machine" else None))


def _skip_if_paused(ctx: CacheContext, started: RunRecord) -> None:
    """`JobSkippedError`, the run recorded skipped with the pause's reason, while the job is paused (`pauses`).

    Before the lock: a paused job's run neither waits for the lock nor takes it.
    """
    pause = paused(ctx.database, ctx.job_id)
    if pause is None:
        return
    until = "until resumed" if pause.until is None else f"until {pause.until:%Y-%m-%d %H:%M:%S} UTC"
    by = f" by {pause.by}" if pause.by else ""
    reason = f"skipped: {ctx.group}/{ctx.job} is paused {until}{by}" + (f": {pause.reason}" if pause.reason else "")
    skipped = ctx.run = ctx.database.runs.finish(started, "skipped", error=reason)
    raise JobSkippedError(reason, skipped)


#: How recent an upstream's success must be for a job with ``after`` and no schedule, by default.
AFTER_WITHIN = 86400.0


def _wait_for_upstreams(ctx: CacheContext, started: RunRecord) -> None:
    """Go on once every upstream (``after``) has done its work; wait for them (``overlap="wait"``, up to
    ``wait_timeout``) or `JobSkippedError`, the run recorded skipped, naming the first that has not.

    An upstream with a schedule has done its work when it succeeded since its own latest due time (a
    nightly upstream at 02:00 for a dependant at 03:00, or both at 03:00: the dependant waits for today's);
    one without, when it succeeded within the dependant's last period (since its schedule's previous due
    time) or ``after_within`` (1 day by default).
    """
    options = ctx.options
    if not options.after:
        return
    waiting = None
    for _ in backoff(time.monotonic() + (options.wait_timeout if options.overlap == "wait" else 0)):
        now = ctx.database.clock.now()
        waiting = next(filter(None, (_not_done(ctx, name, now) for name in options.after)), None)
        if waiting is None:
            return
    reason = f"skipped: waiting for {waiting}"
    skipped = ctx.run = ctx.database.runs.finish(started, "skipped", error=reason)
    raise JobSkippedError(reason, skipped)


def _upstream_since(ctx: CacheContext, name: str, now: datetime) -> datetime:
    """Since when a success of the upstream *name* counts (see `_wait_for_upstreams`)."""
    from ..schedules import current_slot, previous_due

    group, _, job = name.partition("/")
    stored = ctx.database.history.expectations(group, job)
    if stored.get("schedule"):
        slot = current_slot(stored["schedule"], stored.get("timezone") or "UTC", now)
        if slot is not None:
            return slot
    if ctx.options.schedule:
        slot = current_slot(ctx.options.schedule, ctx.options.timezone, now)
        before = slot and previous_due(ctx.options.schedule, ctx.options.timezone, slot)
        if before is not None:
            return before
    return now - timedelta(seconds=ctx.options.after_within or AFTER_WITHIN)


def _not_done(ctx: CacheContext, name: str, now: datetime) -> str | None:
    """Why the upstream *name* does not let this run go on (no success since it counts), or None when it does."""
    try:
        newest = ctx.database.list_runs(name, limit=1)
    except ProcessCacheError:  # no such job in the database yet
        return f"{name}, which has never run"
    since = _upstream_since(ctx, name, now)
    last = newest[0] if newest else None
    succeeded = ctx.database.list_runs(name, status="succeeded", limit=1)
    if succeeded and succeeded[0].finished_at is not None and succeeded[0].finished_at >= since:
        return None
    at = f"{since:%Y-%m-%d %H:%M:%S} UTC"
    if last is not None and last.status != "succeeded":
        return f"{name}, which has not succeeded since {at} (its last run, {last.id}, {last.status})"
    return f"{name}, which has not succeeded since {at}"


def _take_lock(ctx: CacheContext, started: RunRecord) -> tuple[str | None, RunRecord]:
    """The name of the lock the options ask for, once held, and the run with how long it waited for it (its
    duration leaves that out: see `RunStore.waited`); `JobLockedError` (the run recorded skipped) if not."""
    options = ctx.options
    if options.overlap == "allow":
        return None, started
    name = lock_name_of(ctx)
    runs = ctx.database.runs
    if options.overlap == "wait" and (ctx.database.url, name) in _locks_here.held:
        raise ProcessCacheError(f"a run of this process holds the lock {name} already: this run would wait for"
                                " itself; run the inner job with overlap='skip' or 'allow'")
    began = time.monotonic()
    deadline = began + (options.wait_timeout if options.overlap == "wait" else 0)
    for _ in backoff(deadline):
        if runs.acquire(name, ctx.machine, os.getpid(), started.id, options.lease):
            ctx.fence = Fence(((name, started.id),))
            _locks_here.held.add((ctx.database.url, name))
            if options.overlap == "wait":
                started = ctx.run = runs.waited(started, time.monotonic() - began)
            return name, started
    if options.overlap == "wait":
        started = runs.waited(started, time.monotonic() - began)
    message = _held_message(runs, name, options)
    skipped = ctx.run = runs.finish(started, "skipped", error=message)
    raise JobLockedError(message, skipped)


def _take_pool(ctx: CacheContext, started: RunRecord) -> str | None:
    """The lock of the job's pool this run took (`storage.pools`), its writes fenced by it too; None without a
    pool. A pool full past ``wait_timeout`` (``overlap="wait"``), or at once otherwise: `JobLockedError`,
    the run recorded skipped, naming who runs."""
    options = ctx.options
    if options.pool is None:
        return None
    names = pool_locks(options.pool, pool_size(ctx.database, options.pool, options.pool_size))
    runs = ctx.database.runs
    for _ in backoff(time.monotonic() + (options.wait_timeout if options.overlap == "wait" else 0)):
        for name in names:
            if runs.acquire(name, ctx.machine, os.getpid(), started.id, options.lease):
                ctx.fence = ctx.fence.plus(lock_key(name), started.id)
                return name
    holders = [holder for name in names for holder in runs.locks(name) if holder.held]
    who = ", ".join(f"run {holder.run_id} on {holder.machine}" for holder in holders) or "runs that just ended"
    waited = f" after waiting {options.wait_timeout:g}s" if options.overlap == "wait" else ""
    message = f"skipped{waited}: the pool {options.pool} is full ({len(names)} at once: {who})"
    skipped = ctx.run = runs.finish(started, "skipped", error=message)
    raise JobLockedError(message, skipped)


def _held_message(runs: RunStore, name: str, options: JobOptions) -> str:
    holders = runs.locks(name)
    holder = holders[0] if holders else None
    who = f"run {holder.run_id} on {holder.machine} (pid {holder.pid})" if holder and holder.held else "another run"
    waited = f" after waiting {options.wait_timeout:g}s" if options.overlap == "wait" else ""
    return f"skipped{waited}: {who} holds the lock {name}"


#: A run that starts up to this many seconds (at most a tenth of the slot) before a ``once_per`` slot's
#: start counts in that slot: cron on a machine whose clock is ahead fires a little before the hour.
SLOT_EARLY = 30.0


def _skip_if_done(ctx: CacheContext, started: RunRecord, slot: datetime | None = None) -> RunRecord:
    """*started*, with the ``once_per`` slot it claimed (*slot*, a due time being caught up, else the current
    one); if its work is done already, `JobSkippedError` (recorded)."""
    options = ctx.options
    reason = _succeeded_within(ctx, options.skip_if_succeeded_within) if options.skip_if_succeeded_within else None
    if reason is None and options.once_per:
        started, reason = _claim_slot(ctx, started, options.once_per, slot)
    if reason is None:
        return started
    skipped = ctx.run = ctx.database.runs.finish(started, "skipped", error=reason)
    raise JobSkippedError(reason, skipped)


def _succeeded_within(ctx: CacheContext, within: float) -> str | None:
    """Why to skip a job that succeeded less than *within* seconds ago (in its scope), by the server's clock."""
    last = ctx.last_success()
    if last is None or last.finished_at is None:
        return None
    ago = (ctx.database.clock.now() - last.finished_at).total_seconds()
    if ago > within:
        return None
    return (f"skipped: succeeded {format_duration(max(ago, 0))} ago on {last.machine} (run {last.id}),"
            f" within skip_if_succeeded_within={format_duration(within)}")


def _claim_slot(ctx: CacheContext, started: RunRecord, period: float | str,
                given: datetime | None = None) -> tuple[RunRecord, str | None]:
    """Claim the run's ``once_per`` slot (*given*, else cut by the server's clock): (the run with its slot,
    None) or why not."""
    runs = ctx.database.runs
    slot = int(given.timestamp()) if given is not None else _slot_start(ctx, period, ctx.database.backend.now())
    if slot is None:  # before the schedule's first due time: no slot to keep it to
        return started, None
    began = datetime.fromtimestamp(slot, UTC)
    holder = runs.claim_slot(ctx.job_id, slot, started.id, ctx.options.reopen_failed_slot)
    if holder is None:
        return started._replace(slot=began), None
    held = runs.get(holder)
    where = f"run {holder}" if held is None else f"{held.machine} (run {holder}" + (
        ", " + held.status if held.status not in ("succeeded", "running") else "") + ")"
    verb = "already running" if held is not None and held.status == "running" else "already ran"
    per = "the schedule's due time" if period == "schedule" else f"once_per={format_duration(float(period))}"
    return started, f"skipped: {verb} in this slot on {where}; the slot began {began:%Y-%m-%d %H:%M:%S} UTC ({per})"


def _slot_start(ctx: CacheContext, period: float | str, now: float) -> int | None:
    """The start of the slot a run starting at *now* (server epoch seconds) is in, in whole seconds.

    A run that starts a little before a slot's start (`SLOT_EARLY`: a
    machine whose clock is ahead fires cron early) counts in that slot.
    """
    if period == "schedule":
        from ..schedules import current_slot

        assert ctx.options.schedule is not None, "JobOptions refuses once_per='schedule' without a schedule"
        due = current_slot(ctx.options.schedule, ctx.options.timezone, datetime.fromtimestamp(now, UTC))
        return None if due is None else int(due.timestamp())
    seconds = float(period)
    return int(math.floor((now + min(SLOT_EARLY, seconds / 10)) / seconds) * seconds)


@contextlib.contextmanager
def _captured_logging(ctx: CacheContext) -> Iterator[None]:
    """With ``capture_logging``, store every logger's records during the run."""
    level = ctx.options.capture_logging
    if level is None:
        yield
        return
    import logging

    from ..cache.loghandler import DatabaseHandler

    root = logging.getLogger()
    handler = DatabaseHandler(ctx, level)
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(min(saved_level, level) if saved_level else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)


def _record_failure(ctx: CacheContext, started: RunRecord, exc: BaseException) -> None:
    """Record how the run failed; if even that fails, raise one error that tells both.

    A SchemaError (a table dropped by hand) is the database's state, not the
    job's: its one line, in the run's error and on stderr, says it all. Its
    traceback is not stored as a log, which `run` would echo above that line.
    """
    status = status_of(exc)
    trace = python_traceback(ctx, exc)
    if trace is not None and not isinstance(exc, SchemaError):
        try:
            ctx.create_log(trace, LogType.ERROR)
        except Exception:
            pass  # the run's record below holds the traceback too; its failure is the one reported
    ctx.run = _finish(ctx, started, status, exc, trace)
    if isinstance(exc, Terminated):
        exc.run = ctx.run


def _finish(ctx: CacheContext, started: RunRecord, status: RunStatus, exc: BaseException | None,
            trace: str | None = None, result: Any = None) -> RunRecord:
    """The final record of *started*; if it cannot be stored, `RunNotRecordedError` naming outcome and storage error."""
    error = None if exc is None else error_line(exc, ctx.options)
    signum = exc.signum if isinstance(exc, Terminated) else getattr(exc, "signal", None)  # a command's, if any
    state = state_of(ctx)
    try:
        return ctx.database.runs.finish(started, status, error, trace, result=result, signal=signum, fence=ctx.fence,
                                        exit_code=state.exit_code, attempts=state.attempts)
    except Exception as storage:
        outcome = f"the job {status}" + (f" ({error})" if error else "")
        raise RunNotRecordedError(f"run {started.id} of {ctx.group}/{ctx.job}: {outcome}, but recording that failed:"
                                  f" {one_line(storage)}", started, exc) from exc


def python_traceback(ctx: CacheContext, exc: BaseException) -> str | None:
    """*exc*'s traceback as a run stores it; None for a command's run (`processcache exec`): its output says why."""
    if state_of(ctx).exit_code is not None or isinstance(exc, CommandFailedError):
        return None
    return user_traceback(exc)


def status_of(exc: BaseException) -> RunStatus:
    """The status of a run (or attempt) *exc* ended: ``timed-out``, ``failed`` or ``terminated``."""
    if isinstance(exc, TimedOut):
        return "timed-out"
    return "failed" if isinstance(exc, Exception) else "terminated"


def error_line(exc: BaseException, options: JobOptions) -> str:
    """The error a run (or attempt) records for *exc*: a command's and a timeout's in words, others as raised."""
    if isinstance(exc, TimedOut):
        return f"timed out after {format_duration(options.timeout)}" + (f"; {exc.detail}" if exc.detail else "")
    if isinstance(exc, CommandFailedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


#: processcache's own folder: its frames are not the user's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_traceback(exc: BaseException) -> str | None:
    """*exc*'s traceback from the user's code on: what a run stores and ``run`` prints.

    processcache's own frames (the runner or loader above the job, the
    store below a ``ctx`` call that raised) and Python's import machinery
    (above a module that raised while it was imported) are noise there.
    None for processcache's own one-line error raised where no frame is
    the user's (a typo'd target's `LoadError` listing the file's jobs): the
    run's error line says it all, and what is stored, echoed and sent in
    an alert's log tail is that line, not processcache's frames. Other
    errors keep all their frames when none is the user's (a bug of
    processcache's own), except for a SyntaxError: its file and line,
    printed after the frames, are the user's code.
    """
    importing = ("<frozen importlib.", os.path.join(os.path.dirname(os.__file__), "importlib", "__init__.py"))
    trace = traceback.TracebackException.from_exception(exc)
    users = [frame for frame in trace.stack if not frame.filename.startswith((_PACKAGE_DIR, *importing))]
    if not users and isinstance(exc, ProcessCacheError):
        return None
    if users or isinstance(exc, SyntaxError):
        trace.stack = traceback.StackSummary.from_list(users)
    return "".join(trace.format())
