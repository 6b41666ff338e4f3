"""Jobs the judgement tests run in real processes, `python -m processcache run ... -m vm1`.

Each reads what it should do from the environment: ``SLEEP`` seconds to take, ``FAIL`` to raise.
"""

import os
import time

from processcache import job


def _work() -> None:
    time.sleep(float(os.environ.get("SLEEP", "0")))
    if os.environ.get("FAIL"):
        raise RuntimeError("the upstream answered 500")


@job("ops", "logrotate", lock="machine", expect_every="1m")
def logrotate(ctx):
    """On every host, every minute: each host that runs it is expected to go on running it."""
    _work()


@job("ops", "daily", expect_every="1h", once_per="1d")
def daily(ctx):
    """Once a day across the farm, cron every hour on each host: the other copies are skipped."""
    _work()


@job("ops", "monthly", schedule="0 0 1 * *", once_per="1d", reopen_failed_slot=False)
def monthly(ctx):
    """Once a month; a failed day is not tried again (its later copies are skipped)."""
    _work()


@job("ops", "export", overlap="wait", max_duration="2s", wait_timeout="30s")
def export(ctx):
    """Waits for a run of it that holds the lock, then works: only the work counts against max_duration."""
    _work()


@job("ops", "sync")
def sync(ctx):
    """Fails now and then: flaky (3 failures in the last 12 runs by default) even when its last run succeeded."""
    _work()


@job("ops", "fetch", timeout="1s")
def fetch(ctx):
    """Fails, or times out when it sleeps past its timeout: two kinds of one incident."""
    _work()
