"""A job named by the environment, for the lock-name tests: run it with `processcache run` as cron would.

LOCK_JOB_GROUP, LOCK_JOB_NAME and LOCK_JOB_SCOPE name it and choose its lock.
While it holds its lock it creates the file LOCK_JOB_HERE, then waits (30 s
at most) for every file in LOCK_JOB_WAIT_FOR (os.pathsep-separated): the
runs that must not block it are then running beside it, holding their locks.
"""

import os
import time
from pathlib import Path

from processcache import job


# Defaults only so that pytest's --doctest-modules can import this file.
@job(os.environ.get("LOCK_JOB_GROUP", "locks"), os.environ.get("LOCK_JOB_NAME", "held"),
     lock=os.environ.get("LOCK_JOB_SCOPE", "job"))
def held(ctx):
    Path(os.environ["LOCK_JOB_HERE"]).touch()
    others = [Path(path) for path in os.environ["LOCK_JOB_WAIT_FOR"].split(os.pathsep) if path]
    deadline = time.monotonic() + 30
    while not all(other.exists() for other in others):
        if time.monotonic() > deadline:
            raise TimeoutError("the other runs never ran beside this one: their locks were this one's")
        time.sleep(0.05)
