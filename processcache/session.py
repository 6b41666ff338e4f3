"""The life of one run: record it, take the overlap lock, keep it alive, load, finish.

`cache_session` is that life as a ``with`` block; the runner calls the same
thing around a job's hooks and function, so both record runs the same way.
"""

import contextlib
import os
import os.path
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from .context import CacheContext, using
from .errors import JobLockedError, ProcessCacheError, RunNotRecordedError, SchemaError
from .heartbeat import Heartbeat
from .locknames import lock_key, lock_name
from .logs import LogType
from .options import JobOptions
from .records import LogRecord, RunRecord
from .signals import Terminated
from .storage.backend import DriverError
from .storage.database import Database, connect
from .storage.fence import Fence
from .storage.runs import RunStore
from .timeutil import backoff


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
    `JobLockedError` when it cannot have it. ``ctx.tree`` is read on its
    first use, or before the block with ``load_cache="eager"``.

    An exception in the block marks the run `failed` (KeyboardInterrupt and
    SystemExit: `terminated`), stores its traceback as an ERROR log, keeps
    every write made before it, and propagates. ``ctx.run`` holds the final
    record after the block.
    """
    options = (options or JobOptions(overlap="allow")).replace(**job_options)
    with open_database(database) as db:
        ctx = CacheContext(db, group, job, machine, echo, options)
        runs = db.runs
        started = ctx.run = runs.start(ctx.group, ctx.job, ctx.machine, os.getpid(), options.lease,
                                       options.expect_every, options.max_duration, options.data_scope)
        lock: str | None = None  # the heartbeat renews it from the moment it is taken: the lambda reads it then
        heartbeat = Heartbeat(lambda: runs.heartbeat(started.id, options.lease, lock), options.lease / 3,
                              f"run {started.id}", close=db.close)
        with heartbeat:
            try:
                try:
                    lock = _take_lock(ctx, started)
                    with _captured_logging(ctx), using(ctx):
                        if options.load_cache == "eager":
                            ctx.sync_cache()
                        yield ctx
                except JobLockedError:
                    raise  # recorded as skipped already
                except BaseException as exc:
                    _record_failure(ctx, started, exc)
                    raise
                ctx.run = _finish(ctx, started, "succeeded", None, result=ctx.result)
            finally:
                ctx.end()
                if lock is not None:
                    _locks_here.held.discard((db.url, lock))
                    _release(runs, lock, started.id)


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


def _take_lock(ctx: CacheContext, started: RunRecord) -> str | None:
    """The name of the lock the options ask for, once held; `JobLockedError` (the run recorded skipped) if not."""
    options = ctx.options
    if options.overlap == "allow":
        return None
    name = lock_name_of(ctx)
    runs = ctx.database.runs
    if options.overlap == "wait" and (ctx.database.url, name) in _locks_here.held:
        raise ProcessCacheError(f"a run of this process holds the lock {name} already: this run would wait for"
                                " itself; run the inner job with overlap='skip' or 'allow'")
    deadline = time.monotonic() + (options.wait_timeout if options.overlap == "wait" else 0)
    for _ in backoff(deadline):
        if runs.acquire(name, ctx.machine, os.getpid(), started.id, options.lease):
            ctx.fence = Fence(((name, started.id),))
            _locks_here.held.add((ctx.database.url, name))
            return name
    message = _held_message(runs, name, options)
    skipped = ctx.run = runs.finish(started, "skipped", error=message)
    raise JobLockedError(message, skipped)


def _held_message(runs: RunStore, name: str, options: JobOptions) -> str:
    holders = runs.locks(name)
    holder = holders[0] if holders else None
    who = f"run {holder.run_id} on {holder.machine} (pid {holder.pid})" if holder and holder.held else "another run"
    waited = f" after waiting {options.wait_timeout:g}s" if options.overlap == "wait" else ""
    return f"skipped{waited}: {who} holds the lock {name}"


@contextlib.contextmanager
def _captured_logging(ctx: CacheContext) -> Iterator[None]:
    """With ``capture_logging``, store every logger's records during the run."""
    level = ctx.options.capture_logging
    if level is None:
        yield
        return
    import logging

    from .loghandler import DatabaseHandler

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
    status = "failed" if isinstance(exc, Exception) else "terminated"
    trace = user_traceback(exc)
    if not isinstance(exc, SchemaError):
        try:
            ctx.create_log(trace, LogType.ERROR)
        except Exception:
            pass  # the run's record below holds the traceback too; its failure is the one reported
    ctx.run = _finish(ctx, started, status, exc, trace)
    if isinstance(exc, Terminated):
        exc.run = ctx.run


def _finish(ctx: CacheContext, started: RunRecord, status: str, exc: BaseException | None,
            trace: str | None = None, result: Any = None) -> RunRecord:
    """The final record of *started*; if it cannot be stored, `RunNotRecordedError` naming outcome and storage error."""
    error = None if exc is None else f"{type(exc).__name__}: {exc}"
    signum = exc.signum if isinstance(exc, Terminated) else None
    try:
        return ctx.database.runs.finish(started, status, error, trace, result=result, signal=signum, fence=ctx.fence)
    except Exception as storage:
        outcome = f"the job {status}" + (f" ({error})" if error else "")
        raise RunNotRecordedError(f"run {started.id} of {ctx.group}/{ctx.job}: {outcome}, but recording that failed:"
                                  f" {_one_line(storage)}", started, exc) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_traceback(exc: BaseException) -> str:
    """*exc*'s traceback from the user's code on: what a run stores and ``run`` prints.

    processcache's own frames (the runner or loader above the job, the
    store below a ``ctx`` call that raised) and Python's import machinery
    (above a module that raised while it was imported) are noise there.
    All frames are kept when none is the user's, except for a SyntaxError:
    its file and line, printed after the frames, are the user's code.
    """
    importing = ("<frozen importlib.", os.path.join(os.path.dirname(os.__file__), "importlib", "__init__.py"))
    trace = traceback.TracebackException.from_exception(exc)
    users = [frame for frame in trace.stack if not frame.filename.startswith((_PACKAGE_DIR, *importing))]
    if users or isinstance(exc, SyntaxError):
        trace.stack = traceback.StackSummary.from_list(users)
    return "".join(trace.format())
