"""A background thread that keeps a run, and the lock it holds, alive.

It renews the run's lease every ``lease / 3`` seconds, so two renewals can
fail before anyone else sees the run as lost. It stops with the run.
"""

import logging
import threading

log = logging.getLogger("processcache.heartbeat")


class Heartbeat:
    """Renew *run_id* (and *lock_name*) in *runs* until `stop()`."""

    def __init__(self, runs, run_id: int, lease: float, lock_name: str | None = None) -> None:
        self.runs = runs
        self.run_id = run_id
        self.lease = lease
        self.lock_name = lock_name
        self.lock_lost = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"processcache-heartbeat-{run_id}", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(self.lease / 3):
            try:
                held = self.runs.heartbeat(self.run_id, self.lease, self.lock_name)
            except Exception as exc:  # a passing database fault must not kill the job
                log.warning("processcache: heartbeat of run %s failed: %s", self.run_id, exc)
                continue
            if not held and not self.lock_lost:
                self.lock_lost = True
                log.warning("processcache: run %s lost its lock %s (its lease ran out)", self.run_id,
                            self.lock_name)
