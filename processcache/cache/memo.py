"""Memoised calls: compute a value once across every process and machine.

The key of a call is a name and the JSON of its arguments, hashed::

    memo:<name>:<sha256 of JSON [args, kwargs]>[:32]

The arguments are first bound to the function's signature, defaults
applied, as joblib.Memory does: ``f(1)``, ``f(x=1)`` and ``f(1, y=2)`` where
``y=2`` is the default are one call with one key. The JSON has sorted keys
and no spaces, so the key is the same in every process, on every machine, for
every Python hash seed; tuples and lists give the same key, and an argument
that is not a JSON value (a dict key that is not a str included) is a
TypeError.

The name is ``<file>.<qualified name>`` unless given (``name=``): the
function's file name without its folder and ``.py`` (its folder's for an
``__init__.py``), so that a job file run by path (``jobs/memo.py:f``), the
same module imported from its package (``jobs.memo:f``) or run as a script
share one cache. A function whose module has no file (``python -c``, a
notebook) is named by its module, ``__main__``. The trade-off: two functions
of the same qualified name in two files of the same name (``billing/util.py``
and ``hr/util.py``) memoised into one job's cache share their values; give
one of them a ``name=``.

A value is read across machines: once one process computed it, every other
reuses it. When several processes miss the same key at once, one takes a
lease on it and computes; the others look for its result every `POLL`
seconds at most (up to *timeout*). If the computing process dies, its lease
runs out and another takes over. An exception is not cached: it propagates,
and the next call computes again. An ``async def`` function is memoised by an
``async def`` wrapper: it awaits the computation on the event loop, and
everything else (connecting, the lookups, the lease, the store) runs in a
few threads of the process (`processcache.cache.memo_threads`), awaited, so that
no database work, however slow the server, stalls the loop. Waiting for
another process's result sleeps on the loop. Cancelling a call ends it at
once; its lock is released in a thread when the work under way ends.

`memoize` takes ``if_database_down="call"``: a call whose database does
not answer within ``down_after`` seconds computes its value uncached, and
one warning is logged per outage (`memo_threads.Outage`).
"""

import functools
import inspect
import json
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, Protocol, TypeVar, cast

from ..durations import parse_duration
from ..errors import InvalidValueError, LeaseLostError, MemoTimeoutError
from ..names import check_key
from ..options import DEFAULT_LEASE, DEFAULT_WAIT_TIMEOUT
from ..run.heartbeat import Heartbeat
from ..storage import Database, Fence, connect, parse_url, resolve_url
from .codec import check_str_keys, encode_value
from .context import ANY, CacheContext
from .memo_threads import DOWN_AFTER, DatabaseDown, Inline, OffLoop, Outage

if TYPE_CHECKING:
    from ..storage import Database

#: Seconds: the longest a waiting call sleeps between two looks for the result,
#: so it returns at most this late after the computing process stored it.
POLL = 0.2
_MISSING = object()
_COMPUTE = object()  # what `_steps` yields when the value must be computed now

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Memoised(Protocol[P, R_co]):
    """What `memoize` and ``ctx.memoize`` return: the function, memoised, with three helpers."""

    #: The cache key of a call, as the wrapper would compute it.
    memo_key: Callable[P, str]
    #: Delete the memoised value of one call, on every machine; return how many values went.
    forget: Callable[P, int]
    #: Delete every memoised value of the function, on every machine; return how many there were.
    cache_clear: Callable[[], int]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


def memo_key(name: str, args: tuple, kwargs: dict) -> str:
    """The cache key of the call ``name(*args, **kwargs)``, its arguments bound already; see the module docstring."""
    what = "the arguments of a memoised call"
    check_str_keys([args, kwargs], what)  # JSON would give {1: "a"} the key of {"1": "a"}
    try:
        text = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{what} must be JSON values: {exc}") from None
    import hashlib  # here, not at import: `processcache run` starts faster without it

    digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:32]
    return f"{_prefix(name)}:{digest}"


def _prefix(name: str) -> str:
    """What every key of the function *name* starts with, before the last ``:``."""
    return f"memo:{name[:200]}"


def default_name(func: Callable) -> str:
    """``<file>.<qualified name>``: the same however the function's module was loaded (module docstring)."""
    path = getattr(sys.modules.get(func.__module__), "__file__", None)
    if path is None:
        return f"{func.__module__}.{func.__qualname__}"
    file = Path(path)
    return f"{file.parent.name if file.stem == '__init__' else file.stem}.{func.__qualname__}"


def get_or_compute(ctx: CacheContext, key: str, compute: Callable[[], Any], ttl: float | None = None,
                   lease: float = DEFAULT_LEASE, timeout: float = DEFAULT_WAIT_TIMEOUT) -> Any:
    """The value under *key* from any machine, or ``compute()``'s, stored once for all."""
    return _drive(Inline(), lambda: ctx, key, compute, ttl, lease, timeout)


def _drive(where: "Inline | OffLoop", ctx_of: Callable[[], CacheContext], key: str, compute: Callable[[], Any],
           ttl: float | None, lease: float, timeout: float) -> Any:
    """A sync call: `_steps`' database work done *where* (here, or in a thread within a bound), computed here."""
    ctx = where.call(ctx_of)
    if ctx.database.backend.in_transaction:
        where = Inline()  # the caller's transaction (a batch) is this thread's: its work joins it
    steps = _steps(ctx, key, ttl, lease, timeout)
    done = False
    try:
        done, step = where.call(_advance, steps, None)
        while not done:
            if step is _COMPUTE:
                done, step = where.call(_advance, steps, compute())
            else:
                time.sleep(step)
                done, step = where.call(_advance, steps, None)
        return step
    finally:
        if not done:
            where.release(steps.close)  # after an exception in compute(): releases the lock


async def get_or_compute_async(ctx_of: Callable[[], CacheContext], key: str, compute: Callable[[], Awaitable[Any]],
                               ttl: float | None = None, lease: float = DEFAULT_LEASE,
                               timeout: float = DEFAULT_WAIT_TIMEOUT, bound: float | None = None) -> Any:
    """`get_or_compute` for an ``async def`` computation, whose database work never runs on the event loop.

    The context (*ctx_of*, which may connect), the lookups, the lease and the
    store run in `memo_threads`' threads, awaited (each within *bound*
    seconds, if given); the computation and the waits between looks run on
    the loop. Cancelled, the call releases its lock in a thread once the
    database work under way ends, and does not wait for it. Inside the
    caller's own transaction (a ``ctx.batch()``) the work stays in the
    caller's thread and joins the transaction, as a sync call's does.
    """
    import asyncio  # only async callers pay for importing it

    where: Inline | OffLoop = OffLoop(bound)
    ctx = await where.acall(ctx_of)
    if ctx.database.backend.in_transaction:
        where = Inline()
    steps = _steps(ctx, key, ttl, lease, timeout)
    done = False
    try:
        done, step = await where.acall(_advance, steps, None)
        while not done:
            if step is _COMPUTE:
                done, step = await where.acall(_advance, steps, await compute())
            else:
                await asyncio.sleep(step)
                done, step = await where.acall(_advance, steps, None)
        return step
    except asyncio.CancelledError:
        done = True
        where.abandon(steps.close)  # a cancelled call ends now; its lock goes once the work under way ends
        raise
    finally:
        if not done:
            await where.arelease(steps.close)


async def _one_flight(flight: Hashable, call: Callable[[], Awaitable[Any]]) -> Any:
    """``await call()``, shared by the tasks of this event loop that make the same call (*flight*) meanwhile.

    The first runs it; the others await its value instead of each looking
    for it in the database every `POLL` seconds (50 waiting tasks made the
    loop's threads busy enough to stall it). When the first fails or is
    cancelled, each of the others makes the call on its own, as before.
    """
    import asyncio

    flights = _flights.setdefault(asyncio.get_running_loop(), {})
    first = flights.get(flight)
    if first is not None:
        value = await asyncio.shield(first)
        return await call() if value is _MISSING else value
    flights[flight] = ours = asyncio.get_running_loop().create_future()
    value = _MISSING
    try:
        value = await call()
        return value
    finally:
        del flights[flight]
        ours.set_result(value)


_flights: "weakref.WeakKeyDictionary[Any, dict[Hashable, Any]]" = weakref.WeakKeyDictionary()


def _advance(steps: Generator[Any, Any, Any], value: Any) -> tuple[bool, Any]:
    """Run *steps* to its next step, sending *value* in: (False, the step) or (True, the value it returned).

    A StopIteration cannot cross into an asyncio future: the end is a flag.
    """
    try:
        return False, steps.send(value)
    except StopIteration as stopped:
        return True, stopped.value


def _steps(ctx: CacheContext, key: str, ttl: float | None, lease: float, timeout: float) -> Generator[Any, Any, Any]:
    """How a call gets its value, apart from how it sleeps and computes.

    Yields a pause in seconds (sleep, then resume) or `_COMPUTE` (compute the
    value, send it in); returns the value. Sync and async calls drive this one
    generator, so the lock, the lease and the fencing cannot differ.
    """
    found = _cached(ctx, key)
    if found is not _MISSING:
        return found
    name = f"memo/{ctx.group}/{ctx.job}/{key}"  # the lock table keys a long one by its digest (`locknames`)
    owner = random.getrandbits(62)
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        if ctx.database.runs.acquire(name, ctx.machine, os.getpid(), owner, lease):
            return (yield from _compute_holding(ctx, key, ttl, lease, name, owner))
        found = _cached(ctx, key)
        if found is not _MISSING:
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            raise MemoTimeoutError(f"waited {timeout:g}s for another process computing {key}: try again later,"
                                   " or raise the timeout")
        yield min(pause, left)


def _compute_holding(ctx: CacheContext, key: str, ttl: float | None, lease: float, name: str,
                     owner: int) -> Generator[Any, Any, Any]:
    """Holding the lock *name*: the value stored meanwhile, or the one computed (sent in), stored; then release."""
    runs = ctx.database.runs
    try:
        found = _cached(ctx, key)  # computed by the previous holder?
        if found is not _MISSING:
            return found
        with Heartbeat(lambda: runs.renew_lock(name, owner, lease), lease / 3, f"memoised {key}",
                       close=ctx.database.close):
            value = yield _COMPUTE
        encode_value(value)  # a value that cannot be stored fails before anything is written
        return _store(ctx, key, value, ttl, ctx.fence.plus(name, owner))
    finally:
        runs.release(name, owner)


def _pauses() -> Iterator[float]:
    """A waiter's pauses between looks: 50 ms doubling to `POLL`, jittered so that waiters do not look in step."""
    delay = 0.05
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, POLL)


def _store(ctx: CacheContext, key: str, value: Any, ttl: float | None, fence: Fence) -> Any:
    """Store *value* while this computation still holds its lease; else return what the one that took over stored.

    A computation that outlived its lease (a paused process) is not stored
    over the value of the process that took over: every reader sees one value.
    """
    try:
        ctx._set_cache_fenced(key, value, ttl, fence)
        return value
    except LeaseLostError as lost:
        if lost.lock != fence.holds[-1][0]:
            raise  # the run's own lock: the job must stop
        found = _cached(ctx, key)
        if found is _MISSING:
            raise
        return found


def _cached(ctx: CacheContext, key: str) -> Any:
    return ctx.latest(key, _MISSING, machine=ANY)


def memoizer(ctx_factory: Callable[[], CacheContext], ttl: float | None, lease: float, timeout: float,
             name: str | None = None, if_down: "IfDown | None" = None) -> Callable[[Callable[P, R]], Memoised[P, R]]:
    """A decorator that memoises a function through the context *ctx_factory* returns.

    The wrapper has ``cache_clear()`` and ``forget(*args, **kwargs)`` (each
    returns how many values it deleted, on every machine) and
    ``memo_key(*args, **kwargs)``. With *if_down*, a call computes its
    value uncached while the database is down (`memoize`'s
    ``if_database_down="call"``).
    """

    def decorator(func: Callable[P, R]) -> Memoised[P, R]:
        if not callable(func):
            raise TypeError("memoize decorates a function: write @memoize(...) with its parentheses")
        prefix, key_of = _keys(func, name)
        wrapper: Callable[P, Any]
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                key, call = key_of(args, kwargs), functools.partial(func, *args, **kwargs)
                if if_down is None:
                    return await _one_flight((ctx_factory, key), lambda: get_or_compute_async(
                        ctx_factory, key, call, ttl, lease, timeout))
                return await _one_flight((ctx_factory, key), lambda: _async_or_uncached(
                    if_down, ctx_factory, key, call, ttl, lease, timeout))
        else:
            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                key, call = key_of(args, kwargs), functools.partial(func, *args, **kwargs)
                if if_down is None:
                    return _drive(Inline(), ctx_factory, key, call, ttl, lease, timeout)
                return _sync_or_uncached(if_down, ctx_factory, key, call, ttl, lease, timeout)

        def forget(*args: P.args, **kwargs: P.kwargs) -> int:
            """Delete the memoised value of this call, on every machine: the next call computes it again."""
            return ctx_factory()._delete_everywhere([key_of(args, kwargs)])

        def cache_clear() -> int:
            """Delete every memoised value of this function, on every machine; return how many there were."""
            ctx = ctx_factory()
            stats = ctx.database.cache.key_stats(ctx.job_id, None)
            return ctx._delete_everywhere([stat.key for stat in stats if stat.key.rpartition(":")[0] == prefix])

        def call_key(*args: P.args, **kwargs: P.kwargs) -> str:
            return key_of(args, kwargs)

        # A function, not an instance of a class: it binds as a method and stays a coroutine function.
        # functools.wraps' type knows nothing of the three attributes the Protocol declares, set next.
        memoised = cast(Memoised[P, R], wrapper)
        memoised.memo_key = call_key
        memoised.forget = forget
        memoised.cache_clear = cache_clear
        return memoised

    return decorator


class IfDown(NamedTuple):
    """``if_database_down="call"``: the database's `Outage`, and how long each piece of its work may take (s)."""

    outage: Outage
    bound: float


def _sync_or_uncached(if_down: IfDown, ctx_of: Callable[[], CacheContext], key: str, call: Callable[[], Any],
                      ttl: float | None, lease: float, timeout: float) -> Any:
    """A sync call that computes uncached while the database is down: its database work in a thread, bounded."""
    if if_down.outage.down:
        if_down.outage.probe(functools.partial(_look, ctx_of, key))
        return call()
    computed: list = []

    def compute() -> Any:
        computed.append(call())
        return computed[0]

    try:
        return _drive(OffLoop(if_down.bound), ctx_of, key, compute, ttl, lease, timeout)
    except DatabaseDown as down:
        if_down.outage.begin(down)
        return computed[0] if computed else call()  # a value computed before the store failed is returned


async def _async_or_uncached(if_down: IfDown, ctx_of: Callable[[], CacheContext], key: str,
                             call: Callable[[], Awaitable[Any]], ttl: float | None, lease: float,
                             timeout: float) -> Any:
    """`_sync_or_uncached` for an ``async def`` function."""
    if if_down.outage.down:
        if_down.outage.probe(functools.partial(_look, ctx_of, key))
        return await call()
    computed: list = []

    async def compute() -> Any:
        computed.append(await call())
        return computed[0]

    try:
        return await get_or_compute_async(ctx_of, key, compute, ttl, lease, timeout, if_down.bound)
    except DatabaseDown as down:
        if_down.outage.begin(down)
        return computed[0] if computed else await call()


def _look(ctx_of: Callable[[], CacheContext], key: str) -> None:
    """An outage's probe: one read from the database, in the probe's own thread, whose connection it closes."""
    ctx = ctx_of()
    try:
        _cached(ctx, key)
    finally:
        ctx.database.close()


def _keys(func: Callable, name: str | None) -> tuple[str, Callable[[tuple, dict], str]]:
    """What every key of *func* starts with, and the key of one call: its arguments bound to the signature."""
    name = name or default_name(func)
    check_key(f"{_prefix(name)}:")  # a name no database can store fails here, not after the first computation
    signature = inspect.signature(func)
    # A default that is no JSON value (a client, a session) stays out of the key unless passed, as before
    # binding: it could never be part of one, and a call that leaves it out must still work.
    opaque = {param.name for param in signature.parameters.values()
              if param.default is not param.empty and not _is_json(param.default)}

    def key_of(args: tuple, kwargs: dict) -> str:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{func.__qualname__}(): {exc}") from None
        given = set(bound.arguments)
        bound.apply_defaults()
        for left_out in opaque - given:
            del bound.arguments[left_out]
        return memo_key(name, bound.args, bound.kwargs)

    return _prefix(name), key_of


def _is_json(value: Any) -> bool:
    try:
        encode_value(value)
    except (TypeError, ValueError):
        return False
    return True


_contexts: dict[tuple[str, str, str | None, int | str | None], CacheContext] = {}
_contexts_lock = threading.Lock()
#: One `Outage` per database (its URL, or the id of a connected Database), shared by its memoised functions.
_outages: dict[int | str | None, Outage] = {}
#: What ``if_database_down`` takes.
IF_DATABASE_DOWN = ("fail", "call")


def memoize(group: str, ttl: "float | str | None" = None, *, database: "Database | str | None" = None,
            job: str = "memoize", machine: str | None = None, lease: "float | str" = DEFAULT_LEASE,
            timeout: "float | str" = DEFAULT_WAIT_TIMEOUT, name: str | None = None,
            if_database_down: str = "fail",
            down_after: "float | str" = DOWN_AFTER) -> Callable[[Callable[P, R]], Memoised[P, R]]:
    """Memoise a function across processes and machines, outside any job.

    >>> from processcache import memoize
    >>> @memoize("rates", ttl="6h", database="sqlite://:memory:")
    ... def exchange_rate(currency):
    ...     return {"EUR": 1.08}[currency]        # the expensive, rate-limited call
    >>> exchange_rate("EUR")
    1.08
    >>> exchange_rate.forget("EUR")               # the next call asks again
    1

    Values are stored in the cache of job *job* of *group*; *database* is a
    URL or a connected Database (opened once, on the first call). *name*
    replaces the function's in its keys (see `processcache.cache.memo`).

    *if_database_down* says what a call does when the cache database cannot
    be reached. ``"fail"`` (the default) raises `DatabaseUnavailableError`
    once the URL's timeouts and ``retry_for`` (30 s) are spent, as every
    database call does. ``"call"`` calls the function and returns its
    value, uncached, once the database has not answered for *down_after*
    seconds (default 3; each lookup, lock and store is bounded so), or at
    once when it refused: a cache in front of an API must not take the
    service down with it. One warning per outage goes to the
    ``processcache.cache.memo`` logger; while the outage lasts, calls skip the
    database, and once it answers again (a probe looks at most once a
    second), values are cached again. ``forget`` and ``cache_clear`` still
    fail while it is down. An async function's database work runs in
    threads either way, never on the event loop (`processcache.cache.memo_threads`).
    """
    if callable(group):
        raise TypeError('memoize needs a group: write @memoize("group", ttl="1h")')
    if if_database_down not in IF_DATABASE_DOWN:
        raise ValueError(f"if_database_down={if_database_down!r}: use 'fail' (raise, the default) or 'call'"
                         " (call the function uncached while the database is down)")
    ttl = None if ttl is None else parse_duration(ttl, "ttl")
    lease, timeout = parse_duration(lease, "lease"), parse_duration(timeout, "timeout")
    which = id(database) if database is not None and not isinstance(database, str) else database
    if_down = None
    if if_database_down == "call":
        with _contexts_lock:
            outage = _outages.setdefault(which, Outage(lambda: _described(database)))
        bound = parse_duration(down_after, "down_after")
        if bound <= 0:
            raise ValueError(f"down_after={down_after!r}: give how long to wait for the database, such as 3 or '3s'")
        if_down = IfDown(outage, bound)

    def ctx_factory() -> CacheContext:
        key = (group, job, machine, which)
        with _contexts_lock:
            found = _contexts.get(key)
            if found is not None:
                return found
            connecting = _connecting.setdefault(key, threading.Lock())
        with connecting:  # one connects; the other callers of this database wait for it, and no one else
            if key not in _contexts:

                db = database if isinstance(database, Database) else connect(database)
                ctx = CacheContext(db, group, job, machine)
                with _contexts_lock:
                    _contexts[key] = ctx
            return _contexts[key]

    return memoizer(ctx_factory, ttl, lease, timeout, name, if_down)


_connecting: dict[tuple[str, str, str | None, int | str | None], threading.Lock] = {}


def _described(database: "Database | str | None") -> str:
    """The database *database* names, its password hidden, for a warning."""
    if database is not None and not isinstance(database, str):
        return database.url

    return parse_url(resolve_url(database)).safe_url


def release_contexts() -> None:
    """Forget the context of every `memoize`, closing the databases it connected to itself: each memoised
    function connects again on its next call, to the database its arguments name *then*. For
    `processcache.testing`: a memoize that names no database follows ``PROCESSCACHE_DATABASE_URL`` into each
    test's own database, where it would otherwise stay bound to the first test's."""
    with _contexts_lock:
        released = list(_contexts.items())
        _contexts.clear()
    for (_group, _job, _machine, which), ctx in released:
        if which is None or isinstance(which, str):  # a URL (or none): its Database is memoize's own
            ctx.database.close()
