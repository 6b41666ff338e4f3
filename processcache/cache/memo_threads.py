"""Where memoised calls do their database work: in threads, off the event loop, and within a bound.

An ``async def`` memoised function never touches the database on the event
loop: its lookups, its lease and its store run in `DATABASE_THREADS`
threads of this process (`OffLoop`), awaited, so that a slow or silent
server stalls the calls that need it and nothing else. The threads are
shared by every memoised function of the process, and each uses a Database
as any thread does (`storage.backend`: its connection and transactions are
its own), so async memoised calls use at most `DATABASE_THREADS`
connections of a Database at once. The function itself runs on the loop,
as the caller's task.

``memoize(..., if_database_down="call")`` waits for each piece of database
work at most *down_after* seconds (`OffLoop` with a bound, sync calls
included). A piece that takes longer, or fails because the server cannot be
reached, means the database is down (`DatabaseDown`): the call computes its
value without the cache and returns it, and `Outage` notes the outage once,
with one warning through `logging` (logger ``processcache.cache.memo``). While it
lasts, calls go straight to the function, and a probe in a thread of its
own (one at a time, every `PROBE_EVERY` seconds at most while calls come)
looks for the database; once it answers, an INFO record says so and calls
use the cache again. Work abandoned at the bound goes on in its thread
until the driver gives up (the URL's timeouts and ``retry_for``); the lock
a call took is released when it ends.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import DatabaseUnavailableError, one_line

#: Threads per process that run async memoised calls' database work (and sync ones' with if_database_down="call").
DATABASE_THREADS = 4
#: Seconds: the default bound of each piece of database work with ``if_database_down="call"``.
DOWN_AFTER = 3.0
#: Seconds: while the database is down, the shortest time between two probes for it.
PROBE_EVERY = 1.0

log = logging.getLogger("processcache.cache.memo")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="processcache-memo")
        return _pool


class DatabaseDown(Exception):
    """The cache database did not answer within the bound, or could not be reached: the call goes on without it."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether *exc* says the database cannot be reached (not a bad statement, key or value)."""
    if isinstance(exc, DatabaseUnavailableError):
        return True
    original = getattr(exc, "original_exc", exc)  # Pony wraps the driver's error
    return type(original).__name__ in ("OperationalError", "InterfaceError") or isinstance(original, ConnectionError)


class Inline:
    """One call's database work done in the calling thread: a sync call's by default, or inside its transaction."""

    def call(self, work: Callable[..., Any], *args: Any) -> Any:
        return work(*args)

    async def acall(self, work: Callable[..., Any], *args: Any) -> Any:
        return work(*args)

    def release(self, work: Callable[[], Any]) -> None:
        work()

    async def arelease(self, work: Callable[[], Any]) -> None:
        work()

    abandon = release


class OffLoop:
    """One call's database work, run piece by piece in the shared threads: waited for, or awaited.

    With a *bound* (seconds), a piece not done in time, or failing because
    the database cannot be reached, raises `DatabaseDown`; without one, it
    takes as long as it takes and raises what it raises.
    """

    def __init__(self, bound: float | None = None) -> None:
        self.bound = bound
        self._last: Future | None = None

    def call(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run *work* in a thread and wait for it (within the bound)."""
        future = self._submit(work, *args)
        try:
            return future.result(timeout=self.bound)
        except TimeoutError:
            raise DatabaseDown(f"no answer within {self.bound:g}s") from None
        except Exception as exc:
            self._reraise(exc)

    async def acall(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run *work* in a thread and await it (within the bound); the event loop runs on meanwhile."""
        waited = asyncio.wrap_future(self._submit(work, *args))
        try:
            if self.bound is None:
                return await waited
            return await asyncio.wait_for(asyncio.shield(waited), self.bound)
        except TimeoutError:
            raise DatabaseDown(f"no answer within {self.bound:g}s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._reraise(exc)

    def release(self, work: Callable[[], Any]) -> None:
        """Run *work* (the release of what the call holds) once the last piece ended: waited for if it has.

        A piece still running (abandoned at the bound) is not waited for:
        *work* follows it in its thread.
        """
        if not self._follow(work):
            with contextlib.suppress(DatabaseDown):  # past the bound it goes on in its thread
                self.call(work)

    async def arelease(self, work: Callable[[], Any]) -> None:
        """`release`, awaited."""
        if not self._follow(work):
            with contextlib.suppress(DatabaseDown):
                await self.acall(work)

    def abandon(self, work: Callable[[], Any]) -> None:
        """Run *work* once the last piece ended, waiting for neither (a cancelled call)."""
        if not self._follow(work):
            _submit_quietly(work)

    def _follow(self, work: Callable[[], Any]) -> bool:
        """If the last piece still runs, queue *work* to run after it in a thread, and return True."""
        last = self._last
        if last is None or last.done():
            return False
        last.add_done_callback(lambda _: _submit_quietly(work))
        return True

    def _submit(self, work: Callable[..., Any], *args: Any) -> Future:
        self._last = _threads().submit(work, *args)
        return self._last

    def _reraise(self, exc: Exception) -> None:
        if self.bound is not None and is_unreachable(exc):
            raise DatabaseDown(one_line(exc)) from exc
        raise exc


def _submit_quietly(work: Callable[[], Any]) -> None:
    try:
        _threads().submit(_logged, work)
    except RuntimeError:  # the interpreter is exiting: the lease runs out instead
        pass


def _logged(work: Callable[[], Any]) -> None:
    try:
        work()
    except Exception as exc:
        log.debug("processcache: releasing an abandoned memoised call failed: %s", one_line(exc))


class Outage:
    """Whether memoised calls see their database as down; one warning per outage, a probe to end it.

    *what* names the database (its URL, password hidden) for the warning.
    """

    def __init__(self, what: Callable[[], str]) -> None:
        self.what = what
        #: When the outage began (time.monotonic()), or None while the database answers.
        self.since: float | None = None
        self._lock = threading.Lock()
        self._probing = False
        self._probed = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def begin(self, down: DatabaseDown) -> None:
        """Note that the database is down (warned once per outage)."""
        with self._lock:
            if self.since is not None:
                return
            self.since = self._probed = time.monotonic()
        log.warning("processcache: the cache database %s cannot be reached (%s): memoised functions with"
                    " if_database_down='call' run uncached until it answers again", self.what(), down)

    def probe(self, look: Callable[[], Any]) -> None:
        """While down: start *look* (a read from the database) in a thread of its own, unless one runs or ran lately."""
        with self._lock:
            if self.since is None or self._probing or time.monotonic() - self._probed < PROBE_EVERY:
                return
            self._probing = True
        threading.Thread(target=self._probe, args=(look,), name="processcache-memo-probe", daemon=True).start()

    def _probe(self, look: Callable[[], Any]) -> None:
        try:
            look()
        except Exception:
            return
        else:
            with self._lock:
                since, self.since = self.since, None
            if since is not None:
                log.info("processcache: the cache database %s answers again after %.1fs: memoised functions use"
                         " the cache again", self.what(), time.monotonic() - since)
        finally:
            with self._lock:
                self._probing = False
                self._probed = time.monotonic()
