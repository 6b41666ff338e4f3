"""The database server's clock, as the time stamps that decide across machines use it.

`check` asks whether a job ran recently and `prune` deletes what is old; both
compare stored time stamps with "now". Taken from each machine's own clock,
a runner two hours behind looks overdue at once, and one a month behind
writes runs that `prune` deletes as they finish. So every stamp processcache
stores (run start and end, logs, entries) is this machine's clock corrected
by its offset from the database server's, measured at each run's start (and
on first use outside a run): one query, then no cost per write, and stamps
keep their microseconds, which identify a write after a lost connection.

Tests move time forward on SQLite (`set_moved`, used by
``processcache.testing``): SQLite's clock in SQL adds `moved` (`dialects.NOW`),
and a `Clock` measures its offset again once it has changed, so expiry,
leases, stamps, ``check`` and ``prune`` all see the same later time. A
server's clock cannot be moved: there both stay the real time.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: Seconds SQLite's time is ahead of the real time in this process; 0.0 except in tests.
_moved = 0.0


def moved() -> float:
    """How far tests moved SQLite's time forward, in seconds: SQLite's NOW adds it (`dialects.NOW`)."""
    return _moved


def set_moved(seconds: float) -> None:
    """Put SQLite's time *seconds* ahead of the real time, for every SQLite database of this process.

    For tests of time (TTL, ``last_success``, ``check``); ``processcache.testing``
    does it through its ``processcache_clock`` fixture and sets it back to 0.
    """
    global _moved
    _moved = float(seconds)


class Clock:
    """The server's time, read through this machine's clock and a measured offset."""

    def __init__(self, read_server_epoch: Callable[[], float]) -> None:
        self._read = read_server_epoch
        self._offset: timedelta | None = None
        self._moved_when_measured = 0.0

    def now(self) -> datetime:
        """The database server's current time, as an aware UTC datetime."""
        offset = self._offset
        if offset is None or self._moved_when_measured != _moved:
            offset = self.sync()
        return datetime.now(UTC) + offset

    def sync(self) -> timedelta:
        """Measure the offset again (one query), and return it."""
        self._moved_when_measured = _moved
        before = time.time()
        server = float(self._read())
        after = time.time()
        self._offset = timedelta(seconds=server - (before + after) / 2)
        return self._offset
