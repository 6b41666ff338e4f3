"""Memoised calls: compute a value once across every process and machine.

The key of a call is its name and the JSON of its arguments, hashed::

    memo:<qualified name>:<sha256 of JSON [args, kwargs]>[:32]

The JSON has sorted keys and no spaces, so the key is the same in every
process, on every machine, for every Python hash seed; tuples and lists give
the same key, and an argument that is not a JSON value is a TypeError.

A value is read across machines: once one process computed it, every other
reuses it. When several processes miss the same key at once, one takes a
lease on it and computes; the others wait (up to *timeout*) and read its
result. If the computing process dies, its lease runs out and another takes
over. An exception is not cached: it propagates, and the next call computes
again.
"""

import functools
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .codec import encode_value
from .errors import InvalidValueError, LeaseLostError, ProcessCacheError
from .heartbeat import Heartbeat
from .timeutil import backoff

DEFAULT_LEASE = 60.0
DEFAULT_TIMEOUT = 600.0
_MISSING = object()


class MemoTimeoutError(ProcessCacheError, TimeoutError):
    """Another process kept computing a memoised value for longer than the timeout."""


def memo_key(name: str, args: tuple, kwargs: dict) -> str:
    """The cache key of the call ``name(*args, **kwargs)``; see the module docstring."""
    try:
        text = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"the arguments of a memoised call must be JSON values: {exc}") from None
    import hashlib  # here, not at import: `processcache run` starts faster without it

    digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:32]
    return f"memo:{name[:200]}:{digest}"


def get_or_compute(ctx, key: str, compute: Callable[[], Any], ttl: float | None = None,
                   lease: float = DEFAULT_LEASE, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The value under *key* from any machine, or ``compute()``'s, stored once for all."""
    found = _cached(ctx, key)
    if found is not _MISSING:
        return found
    runs = ctx.database.runs
    name = f"memo/{ctx.group}/{ctx.job}/{key}"  # the lock table keys a long one by its digest (`locknames`)
    owner = random.getrandbits(62)
    for _ in backoff(time.monotonic() + timeout):
        if runs.acquire(name, ctx.machine, os.getpid(), owner, lease):
            try:
                found = _cached(ctx, key)  # computed by the previous holder?
                if found is not _MISSING:
                    return found
                with Heartbeat(lambda: runs.renew_lock(name, owner, lease), lease / 3, f"memoised {key}",
                               close=ctx.database.pony.disconnect):
                    value = compute()
                encode_value(value)  # a value that cannot be stored fails before anything is written
                return _store(ctx, key, value, ttl, ctx.fence.plus(name, owner))
            finally:
                runs.release(name, owner)
        found = _cached(ctx, key)
        if found is not _MISSING:
            return found
    raise MemoTimeoutError(f"waited {timeout:g}s for another process computing {key}: try again later, or raise"
                           " the timeout")


def _store(ctx, key: str, value: Any, ttl: float | None, fence) -> Any:
    """Store *value* while this computation still holds its lease; else return what the one that took over stored.

    A computation that outlived its lease (a paused process) is not stored
    over the value of the process that took over: every reader sees one value.
    """
    try:
        ctx._set(key, value, ttl, fence)
        return value
    except LeaseLostError as lost:
        if lost.lock != fence.holds[-1][0]:
            raise  # the run's own lock: the job must stop
        found = _cached(ctx, key)
        if found is _MISSING:
            raise
        return found


def _cached(ctx, key: str):
    entry = ctx.database.cache.latest(ctx._live_job(), None, key)  # None: from any machine
    return _MISSING if entry is None else entry.value


def memoizer(ctx_factory: Callable[[], Any], ttl: float | None, lease: float, timeout: float):
    """A decorator that memoises a function through the context *ctx_factory* returns."""

    def decorator(func: Callable) -> Callable:
        if not callable(func):
            raise TypeError("memoize decorates a function: write @memoize(...) with its parentheses")
        name = f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = memo_key(name, args, kwargs)
            return get_or_compute(ctx_factory(), key, lambda: func(*args, **kwargs), ttl, lease, timeout)

        wrapper.memo_key = lambda *args, **kwargs: memo_key(name, args, kwargs)
        return wrapper

    return decorator


_contexts: dict = {}
_contexts_lock = threading.Lock()


def memoize(group: str, ttl: "float | str | None" = None, *, database=None, job: str = "memoize",
            machine: str | None = None, lease: "float | str" = DEFAULT_LEASE,
            timeout: "float | str" = DEFAULT_TIMEOUT) -> Callable[[Callable], Callable]:
    """Memoise a function across processes and machines, outside any job.

    >>> from processcache import memoize
    >>> @memoize("rates", ttl="6h", database="sqlite://:memory:")
    ... def exchange_rate(currency):
    ...     return {"EUR": 1.08}[currency]        # the expensive, rate-limited call
    >>> exchange_rate("EUR")
    1.08

    Values are stored in the cache of job *job* of *group*; *database* is a
    URL or a connected Database (opened once, on the first call).
    """
    from .durations import parse_duration

    if callable(group):
        raise TypeError('memoize needs a group: write @memoize("group", ttl="1h")')
    ttl = None if ttl is None else parse_duration(ttl, "ttl")
    lease, timeout = parse_duration(lease, "lease"), parse_duration(timeout, "timeout")

    def ctx_factory():
        with _contexts_lock:
            key = (group, job, machine, id(database) if database is not None and not isinstance(database, str)
                   else database)
            if key not in _contexts:
                from .context import CacheContext
                from .database import Database, connect

                db = database if isinstance(database, Database) else connect(database)
                _contexts[key] = CacheContext(db, group, job, machine)
            return _contexts[key]

    return memoizer(ctx_factory, ttl, lease, timeout)
