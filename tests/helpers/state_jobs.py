"""Jobs the run-state tests start with `python -m processcache run`."""

import os
import time

from processcache import job


@job("states", "holder", lease=5)
def holder(ctx):
    print("started", flush=True)
    time.sleep(60)


@job("states", "sleeper")
def sleeper(ctx):
    print("started", flush=True)
    time.sleep(60)


@job("states", "unrecordable")
def unrecordable(ctx):
    """Fail after the runs table went away (as an outage or a wrong migration would have it)."""
    ctx.database.backend.execute("ALTER TABLE process_job_runs RENAME TO process_job_runs_gone")
    raise ValueError(os.environ.get("STATES_ERROR", "the real error"))
