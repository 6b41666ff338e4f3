"""A run's attempts: ``retries``, ``retry_delay``, ``retry_backoff`` and the ``timeout`` of each attempt.

A failed or timed-out attempt is tried again inside the same invocation,
while the run keeps its lock (the heartbeat goes on during the delay), so
no other machine starts the job between two attempts and ``check`` sees one
run, whose status is its last attempt's. Each attempt of a run with retries
is a row of its own (``processcache runs show`` lists them), and each
failed one leaves its traceback and a WARNING saying when the next begins.

Not tried again: a run stopped by a signal (the operator's decision), one
that lost its lock (another run holds it now), or one skipped.
"""

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ..cache.context import CacheContext
from ..durations import format_duration
from ..errors import JobSkippedError, LeaseLostError
from ..records import AttemptRecord, LogType, RunStatus
from .session import error_line, python_traceback, status_of
from .state import state_of
from .timeouts import TimedOut, interrupt_after

T = TypeVar("T")


def run_attempts(ctx: CacheContext, attempt: Callable[[], T], interrupt: bool = True) -> T:
    """The result of the first attempt that succeeds; the last one's exception when none does.

    *interrupt* puts each attempt of a Python job under `interrupt_after`;
    a command is stopped by its own supervisor (`command`), which raises `TimedOut`.
    """
    options = ctx.options
    timeout = options.timeout if interrupt else None
    if not options.retries:
        with interrupt_after(timeout):
            return attempt()
    total, delay, state = options.retries + 1, options.retry_delay, state_of(ctx)
    for number in range(1, total + 1):
        state.attempts, state.exit_code = number, None
        began = ctx.database.clock.now()
        try:
            with interrupt_after(timeout):
                result = attempt()
        except BaseException as exc:
            _record(ctx, number, began, status_of(exc), error_line(exc, options), getattr(exc, "signal", None))
            if number == total or not _retryable(exc):
                raise
            _say_retrying(ctx, exc, number, total, delay)
            time.sleep(delay)  # a signal ends the wait as it would the job: the run ends terminated
            delay *= options.retry_backoff
        else:
            _record(ctx, number, began, "succeeded", None, None)
            return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (Exception, TimedOut)) and not isinstance(exc, (LeaseLostError, JobSkippedError))


def _record(ctx: CacheContext, number: int, began: datetime, status: RunStatus, error: str | None,
            signal: int | None) -> None:
    """Store the attempt; a database that cannot take it fails the run's own ending, which reports it."""
    finished = ctx.database.clock.now()
    assert ctx.run is not None, "attempts run inside a recorded run"
    with contextlib.suppress(Exception):
        ctx.database.runs.record_attempt(ctx.run.id, AttemptRecord(
            number, status, began, finished, (finished - began).total_seconds(), error,
            state_of(ctx).exit_code, signal))


def _say_retrying(ctx: CacheContext, exc: BaseException, number: int, total: int, delay: float) -> None:
    """The failed attempt's traceback (a Python job's) and a WARNING saying what comes next, as the run's logs."""
    with contextlib.suppress(Exception):
        trace = python_traceback(ctx, exc)
        if trace is not None:
            ctx.create_log(trace, LogType.ERROR)
        wait = f"in {format_duration(delay)}" if delay else "now"
        error = error_line(exc, ctx.options)
        ended = error if isinstance(exc, TimedOut) else f"failed: {error}"  # "timed out after 2h" says it all
        ctx.create_log(f"attempt {number} of {total} {ended}; trying again {wait}", LogType.WARNING)
    output = state_of(ctx).output
    if output is not None:  # each attempt's output under its own heading in the stored tails
        output.mark(f"[processcache: attempt {number + 1} of {total}]\n")
