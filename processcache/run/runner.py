"""Run one `JobSpec`: its hooks and function inside a recorded run.

The exit codes are those `processcache run` returns.
"""

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ..cache.context import CacheContext
from ..errors import DatabaseUnavailableError, InvalidNameError, JobSkippedError, LoadError, RunNotRecordedError
from ..names import normalize_name, split_job_name
from ..options import JobOptions
from ..records import LogRecord, RunRecord
from ..registry import Hook, JobSpec
from ..storage import Database, connect
from .attempts import run_attempts
from .catchup import missed_slots
from .session import cache_session, open_database, recorded_run
from .timeouts import TimedOut


def run_job(spec: JobSpec[..., Any], database: Database | str | None = None, machine: str | None = None,
            echo: Callable[[LogRecord], None] | None = None, **overrides: Any) -> RunRecord:
    """Run *spec* as one recorded run and return the run's final record.

    *overrides* replace the spec's options for this run (``overlap``,
    ``wait_timeout``, ...). The job's exception is recorded (status
    ``failed``, an ERROR log with the traceback), not raised; a run that
    could not have the lock is ``skipped``; one that lost its lock is ``lost``;
    one stopped by its ``timeout`` is ``timed-out``. With ``retries``, a
    failed or timed-out attempt runs again (`attempts`).
    KeyboardInterrupt and SystemExit are recorded and propagate. When the
    outcome cannot be stored, `RunNotRecordedError` says both what happened
    and why it was not stored: the record returned is always a finished one.
    """
    options = spec.options.replace(**overrides)
    return caught_up(spec.group, spec.name, options, lambda ctx: _attempt(spec, ctx), database, machine, echo)


def caught_up(group: str, job: str, options: JobOptions, attempt: Callable[[CacheContext], Any],
              database: Database | str | None = None, machine: str | None = None,
              echo: Callable[[LogRecord], None] | None = None, interrupt: bool = True) -> RunRecord:
    """`run_recorded`, first for each due time ``catch_up`` asks to run (`catchup`); the current run's record.

    Each run opens its database as any run does, so an unreachable one is
    what the job's ``if_database_down`` says: the due times to catch up
    are looked for within its ``down_wait`` (none found then), and the
    current run is left to say the rest.
    """
    missed: list[datetime] = []
    if options.catch_up:
        try:
            with looking(database, options) as db:
                missed = missed_slots(db, normalize_name(group), normalize_name(job), options)
        except DatabaseUnavailableError:
            pass  # the current run below meets the outage, as its if_database_down says
    for due in missed:
        run_recorded(group, job, options, attempt, database, machine, echo, interrupt, slot=due)
    return run_recorded(group, job, options, attempt, database, machine, echo, interrupt)


def looking(database: Database | str | None, options: JobOptions) -> contextlib.AbstractContextManager[Database]:
    """The database to look in before a run: as given, or connected for as long as the run itself would wait."""
    if isinstance(database, Database):
        return contextlib.nullcontext(database)
    return connect(database, wait=None if options.if_database_down == "fail" else options.down_wait)


def run_recorded(group: str, job: str, options: JobOptions, attempt: Callable[[CacheContext], Any],
                 database: Database | str | None = None, machine: str | None = None,
                 echo: Callable[[LogRecord], None] | None = None, interrupt: bool = True,
                 slot: datetime | None = None) -> RunRecord:
    """Run *attempt* (as often as ``retries`` allows) as one recorded run, and return the run's final record.

    What `run_job` does for a Python job, and `command.run_command` for a
    command (which stops its child itself: *interrupt* False).
    """
    ctx: CacheContext | None = None
    try:
        with recorded_run(group, job, machine, database, echo=echo, options=options, slot=slot) as ctx:
            result = run_attempts(ctx, lambda: attempt(ctx), interrupt)
            if ctx.result is None:
                ctx.result = result
    except RunNotRecordedError:
        raise  # never a record that still says running
    except (Exception, TimedOut) as exc:  # the job's, recorded: its record says how it ended
        if ctx is None:  # before the block: this run's skip, or the database's error or the names'
            if isinstance(exc, JobSkippedError):
                return exc.run
            raise
    return _final_record(ctx)


def _final_record(ctx: CacheContext) -> RunRecord:
    """The record a session that reached its block left in *ctx*: final once the block has ended."""
    assert ctx.run is not None, "cache_session records the run before its block starts"
    return ctx.run


def parse_job_name(text: str) -> tuple[str, str]:
    """``GROUP/JOB`` (``run --job``) as the normalised (group, job) a job is stored under.

    Raises LoadError when *text* is not of that form: the CLI reports it as
    a target that cannot be run, in one line.
    """
    try:
        group, job = split_job_name(text)
    except InvalidNameError as exc:
        raise LoadError(str(exc)) from None
    return normalize_name(group), normalize_name(job)


def select_job(target: str, found: JobSpec[..., Any] | list[JobSpec[..., Any]],
               job: str | None) -> JobSpec[..., Any] | list[JobSpec[..., Any]]:
    """The job *target* loaded (`loader.load_target`'s result), checked against the name the crontab gave.

    With *job* (``run --job``), a module of several jobs needs no ``:attr``,
    and a target holding another job is an error, not a run of the wrong job.
    """
    specs = found if isinstance(found, list) else [found]
    if job is None:
        return found
    wanted = parse_job_name(job)
    matching = [spec for spec in specs if (spec.group, spec.name) == wanted]
    if not matching:
        held = ", ".join(f"{spec.group}/{spec.name}" for spec in specs) or "no job"
        raise LoadError(f"{target} holds {held}, not {wanted[0]}/{wanted[1]}: fix the target or --job")
    return matching[0]


def record_load_failure(job: str, error: Exception, database: Database | str | None = None,
                        machine: str | None = None) -> RunRecord:
    """Record a failed run of *job* (``GROUP/JOB``) whose code could not be loaded, and return it.

    A job that no longer imports (a dependency missing after a deploy, a
    wrong path in the crontab) never runs, so nothing else would record it:
    this failed run is what `processcache check` reports. The job's stored
    expectations and scope are kept, since the code that declares them never ran.
    """
    group, name = parse_job_name(job)
    with open_database(database) as db:
        stored_scope = db.runs.scope_of(db.store.job_id(group, name))  # what the job's code declared
        options = JobOptions(overlap="allow", scope=stored_scope).replace(**db.history.expectations(group, name))
        ctx: CacheContext | None = None
        try:
            with cache_session(group, name, machine, db, options=options) as ctx:
                raise error
        except RunNotRecordedError:
            raise
        except Exception:
            if ctx is None:  # the database's error, not the job's
                raise
        return _final_record(ctx)



def _attempt(spec: JobSpec[..., Any], ctx: CacheContext) -> Any:
    """One attempt of a Python job: the load hook that applies, then the function."""
    hook = _load_hook(spec, ctx)
    if hook is not None:
        _call(hook, ctx)
    return _call(spec.func, ctx)


def _load_hook(spec: JobSpec[..., Any], ctx: CacheContext) -> Hook | None:
    """``on_cache_exist`` or ``on_cache_empty``, whichever applies: asked of the database, not of a loaded tree."""
    if spec.cache_exist_hook is None and spec.cache_empty_hook is None:
        return None  # no hook: not even one query
    return spec.cache_exist_hook if ctx.has_cache() else spec.cache_empty_hook


def _call(func: Callable[[CacheContext], Any], ctx: CacheContext) -> Any:
    """Call a job function or hook, plain or ``async def``."""
    result = func(ctx)
    if isinstance(result, Awaitable):
        import asyncio  # only async jobs pay for importing it (~20 ms)

        result, error = asyncio.run(_awaited(result))
        if error is not None:
            raise error  # here, not inside asyncio.run: its traceback starts at the job, not in the event loop
    return result


async def _awaited(awaitable: Awaitable[Any]) -> tuple[Any, Exception | None]:
    """The awaitable's (result, None), or (None, the exception it raised), for `_call` to raise."""
    try:
        return await awaitable, None
    # Not BaseException: asyncio.run turns the cancellation a Ctrl-C causes into KeyboardInterrupt.
    except Exception as error:  # noqa: BLE001  (the job's error, raised again by _call)
        return None, error
