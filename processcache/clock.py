"""The database server's clock, as the time stamps that decide across machines use it.

`check` asks whether a job ran recently and `prune` deletes what is old; both
compare stored time stamps with "now". Taken from each machine's own clock,
a runner two hours behind looks overdue at once, and one a month behind
writes runs that `prune` deletes as they finish. So every stamp processcache
stores (run start and end, logs, entries) is this machine's clock corrected
by its offset from the database server's, measured at each run's start (and
on first use outside a run): one query, then no cost per write, and stamps
keep their microseconds, which identify a write after a lost connection.
"""

import time
from datetime import datetime, timedelta, timezone


class Clock:
    """The server's time, read through this machine's clock and a measured offset."""

    def __init__(self, read_server_epoch) -> None:
        self._read = read_server_epoch
        self._offset: timedelta | None = None

    def now(self) -> datetime:
        """The database server's current time, as an aware UTC datetime."""
        if self._offset is None:
            self.sync()
        return datetime.now(timezone.utc) + self._offset

    def sync(self, read=None) -> None:
        """Measure the offset again; *read* (a call returning the server's epoch seconds) runs in a caller's session."""
        before = time.time()
        server = float((read or self._read)())
        after = time.time()
        self._offset = timedelta(seconds=server - (before + after) / 2)
