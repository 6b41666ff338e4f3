"""Run one `JobSpec`: its hooks and function inside a recorded run.

The exit codes are those `processcache run` returns.
"""

from collections.abc import Awaitable

from .errors import RunNotRecordedError
from .records import RunRecord
from .session import JobLockedError, cache_session

EXIT_OK = 0
#: The job raised; its traceback is in the run's record and an ERROR log.
EXIT_FAILED = 1
#: Another run held the job's lock (``EX_TEMPFAIL``): this run was skipped.
EXIT_SKIPPED = 75
_EXIT_CODES = {"succeeded": EXIT_OK, "skipped": EXIT_SKIPPED}


def run_job(spec, database=None, machine: str | None = None, echo=None, **overrides) -> RunRecord:
    """Run *spec* as one recorded run and return the run's final record.

    *overrides* replace the spec's options for this run (``overlap``,
    ``wait_timeout``, ...). The job's exception is recorded (status
    ``failed``, an ERROR log with the traceback), not raised; a run that
    could not have the lock is ``skipped``; one that lost its lock is ``lost``.
    KeyboardInterrupt and SystemExit are recorded and propagate. When the
    outcome cannot be stored, `RunNotRecordedError` says both what happened
    and why it was not stored: the record returned is always a finished one.
    """
    options = spec.options.replace(**overrides)
    ctx = None
    try:
        with cache_session(spec.group, spec.name, machine, database, echo=echo, options=options) as ctx:
            hook = spec.cache_exist_hook if ctx.tree else spec.cache_empty_hook
            if hook is not None:
                _call(hook, ctx)
            result = _call(spec.func, ctx)
            if ctx.result is None:
                ctx.result = result
    except JobLockedError as exc:
        return exc.run
    except RunNotRecordedError:
        raise  # never a record that still says running
    except Exception:
        if ctx is None:  # the database or the names, not the job: the caller's to see
            raise
    return ctx.run


def exit_code(run: RunRecord) -> int:
    """The process exit code that reports *run*."""
    return _EXIT_CODES.get(run.status, EXIT_FAILED)


def _call(func, ctx):
    """Call a job function or hook, plain or ``async def``."""
    result = func(ctx)
    if isinstance(result, Awaitable):
        import asyncio  # only async jobs pay for importing it (~20 ms)

        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable):
    return await awaitable
