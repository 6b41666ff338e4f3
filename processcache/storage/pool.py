"""A bounded pool of server connections that a process's threads share.

Pony keeps one connection per thread for as long as the thread lives, so a
service whose 40 worker threads each touch the cache held 41 connections
to the server per process (four such processes took 89 of PostgreSQL's
100). Here a thread holds a connection only while it uses it: from the
first statement of an operation to its end (a statement on its own, or
processcache's outermost transaction), then gives it back to the pool,
where the next thread that needs one takes it. So a process never has more
than ``pool_size`` connections open (default `DEFAULT_SIZE`), a thread
that needs one beyond that waits for one at most ``pool_timeout``
(`DEFAULT_TIMEOUT`) and then fails with one line, and a connection that
no thread has used for ``pool_idle`` (`DEFAULT_IDLE`) is closed. All three
are URL options (``?pool_size=20&pool_timeout=10s&pool_idle=1m``).

A thread inside the application's own Pony ``db_session`` keeps its
connection until that session ends: Pony may use it again within it. A
forked child starts with an empty pool; it never closes its parent's
connections (closing one would end the parent's session on the server).
SQLite files need no pool: each thread keeps its own connection there.
"""

import os
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import PoolExhaustedError

#: Connections one process opens to a server at most: a cron run takes two (its work and its heartbeat).
DEFAULT_SIZE = 10
#: How long a thread waits for a connection when all of them are in use, in seconds.
DEFAULT_TIMEOUT = 30.0
#: How long a connection may sit unused before it is closed, in seconds.
DEFAULT_IDLE = 300.0


class Limits(NamedTuple):
    """``pool_size``, ``pool_timeout`` and ``pool_idle`` from the URL."""

    size: int = DEFAULT_SIZE
    timeout: float = DEFAULT_TIMEOUT
    idle: float = DEFAULT_IDLE


class Shared:
    """The connections of one database in one process: those in use counted, the idle ones kept newest last."""

    def __init__(self, limits: Limits, url: str) -> None:
        self.limits = limits
        self.url = url
        self._ready = threading.Condition()
        self._idle: list[tuple[Any, float]] = []
        self._open = 0
        self._pid = os.getpid()
        self._sweeping = False
        self._forked: list[Any] = []  # a parent's connections, kept from the garbage collector's close

    @property
    def open(self) -> int:
        """Connections open now, in use or idle."""
        return self._open

    def take(self, open_new: Callable[[], Any]) -> Any:
        """An idle connection, or a new one (*open_new*) while fewer than ``pool_size`` are open, waiting if need be."""
        deadline = time.monotonic() + self.limits.timeout
        with self._ready:
            self._after_fork()
            while not self._idle and self._open >= self.limits.size:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolExhaustedError(
                        f"all {self.limits.size} connections to {self.url} were in use for"
                        f" {self.limits.timeout:g}s: raise pool_size= in the URL, or use fewer threads at once")
                self._ready.wait(left)
            if self._idle:
                return self._idle.pop()[0]
            self._open += 1
        try:
            return open_new()
        except BaseException:
            self.closed()
            raise

    def give_back(self, connection: Any) -> None:
        """*connection* is free for another thread; closed after ``pool_idle`` unused."""
        with self._ready:
            if self._pid != os.getpid():
                return  # a parent's: not this process's to share
            self._idle.append((connection, time.monotonic()))
            self._ready.notify()
            if not self._sweeping:
                self._sweeping = True
                threading.Thread(target=self._sweep, name="processcache-pool-idle", daemon=True).start()

    def closed(self) -> None:
        """One connection was closed (dropped after a failure, or its thread done with it)."""
        with self._ready:
            self._open -= 1
            self._ready.notify()

    def count(self) -> None:
        """One connection opened outside `take` (the one Pony opens when it binds) is counted."""
        with self._ready:
            self._open += 1

    def _sweep(self) -> None:
        """Close the connections unused for ``pool_idle``, as long as any are idle."""
        while True:
            time.sleep(min(self.limits.idle, 60.0) / 2)
            with self._ready:
                cut = time.monotonic() - self.limits.idle
                stale = [connection for connection, since in self._idle if since <= cut]
                self._idle = [(connection, since) for connection, since in self._idle if since > cut]
                self._open -= len(stale)
                self._ready.notify(len(stale))
                if not self._idle:
                    self._sweeping = False
            for connection in stale:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001  (a connection the server closed already)
                    pass
            if not self._sweeping:
                return

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            self._forked += [connection for connection, _ in self._idle]
            self._idle, self._open, self._pid, self._sweeping = [], 0, os.getpid(), False


def share(pool: Any, shared: Shared) -> None:
    """Make Pony's per-thread *pool* take its connections from *shared* and give them back (`give_back`).

    The pool is Pony's per-thread object: its class is swapped, as
    `backend._end_sessions_without_discard` does.
    """
    base = type(pool)

    def _connect(self: Any) -> None:
        def open_new() -> Any:
            base._connect(self)
            return self.con

        self.con = shared.take(open_new)

    def drop(self: Any, connection: Any) -> None:
        try:
            base.drop(self, connection)
        finally:
            shared.closed()

    def disconnect(self: Any) -> None:
        if self.con is not None:
            shared.closed()
        base.disconnect(self)

    def give_back(self: Any) -> None:
        if self.con is not None and self.pid == os.getpid():
            connection, self.con = self.con, None
            shared.give_back(connection)

    if pool.con is not None:
        shared.count()
    pool.__class__ = type(f"Shared{base.__name__}", (base,), {
        "_connect": _connect, "drop": drop, "disconnect": disconnect, "give_back": give_back})
