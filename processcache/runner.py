"""Run one `JobSpec`: load its cache, call the right hook, call it, record the run.

The exit codes are those `processcache run` returns: `EXIT_OK` for a run that
succeeded, `EXIT_FAILED` for one that raised.
"""

import asyncio
import inspect

from .context import cache_session
from .records import RunRecord

EXIT_OK = 0
EXIT_FAILED = 1


def run_job(spec, database=None, machine: str | None = None, echo=None) -> RunRecord:
    """Run *spec* as one recorded run and return the run's final record.

    The job's exception is recorded (status ``failed``, an ERROR log with the
    traceback), not raised. KeyboardInterrupt and SystemExit are recorded and
    propagate.
    """
    session = cache_session(spec.group, spec.name, machine=machine, database=database, echo=echo)
    ctx = None
    try:
        with session as ctx:
            hook = spec.cache_exist_hook if ctx.tree else spec.cache_empty_hook
            if hook is not None:
                _call(hook, ctx)
            _call(spec.func, ctx)
    except Exception:
        if ctx is None:  # the database or the names, not the job: the caller's to see
            raise
    return ctx.run


def exit_code(run: RunRecord) -> int:
    """The process exit code that reports *run*."""
    return EXIT_OK if run.ok else EXIT_FAILED


def _call(func, ctx):
    """Call a job function or hook, plain or ``async def``."""
    result = func(ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable):
    return await awaitable
