"""A background thread that keeps a lease alive: a run's, a lock's, a computation's.

It calls *renew* every *interval* seconds (a third of the lease, so two
renewals can fail before anyone else sees the holder as gone) until stopped.
"""

import threading
import time
from collections.abc import Callable
from typing import Any, Self


class Heartbeat:
    """Call *renew* every *interval* seconds until stopped; note when it returns False.

    *close* runs in the thread at its end, to close the connection it opened.
    """

    def __init__(self, renew: Callable[[], bool], interval: float, what: str,
                 close: Callable[[], None] | None = None) -> None:
        self.renew = renew
        self.close = close
        self.interval = interval
        self.what = what
        self.lease_lost = False
        self._renewed = time.monotonic()  # when the lease was last known held: taken or renewed
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"processcache-heartbeat ({what})", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            self._renew_until_stopped()
        finally:
            if self.close is not None:
                self.close()  # this thread's own database connection

    def _renew_until_stopped(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                held = self.renew()
            except Exception as exc:  # a passing database fault must not kill the job
                _warn("processcache: renewing %s failed: %s", self.what, exc)
                continue
            if held:
                self._renewed = time.monotonic()
            elif not self.lease_lost:
                self.lease_lost = True
                _warn("processcache: %s lost its lease (it ran out before a renewal)", self.what)

    def unconfirmed_for(self) -> float:
        """Seconds since the lease was last known held (by this machine's monotonic clock).

        Past the lease, another run may hold the lock although nothing said
        so: the database did not answer the renewals. A holder that cannot
        fence its writes (a command) must stop then.
        """
        return time.monotonic() - self._renewed


def _warn(message: str, *args: Any) -> None:
    import logging  # only when something went wrong: start-up stays lighter

    logging.getLogger("processcache.run.heartbeat").warning(message, *args)
