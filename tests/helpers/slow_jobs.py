"""A job that takes a while, for CLI lock tests; SLOW_JOB_LOCK chooses its lock scope."""

import os
import time

from processcache import job


@job("slow", "job", lock=os.environ.get("SLOW_JOB_LOCK", "job"))
def slow(ctx):
    time.sleep(2)
