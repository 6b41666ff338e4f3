"""The Python job of the crontab trial (docs/trials/crontab.rst): three machines fire it every minute.

Its lock is per machine, so nothing but the ``--once-per 1m`` slot, claimed
in the database, keeps the three machines from all running it in a minute.
It counts its runs in its cache (read from every machine: ``scope="job"``), so a slot run twice would also show as a
count that grew by two in a minute.
"""

import time

from processcache import job


@job("trial", "py", lock="machine", scope="job")
def py(ctx):
    runs = len(ctx.tree["ran"]) if ctx.has_cache_key("ran") else 0
    print(f"trial/py on {ctx.machine}: run {ctx.run.id}, {runs} earlier runs in the cache")
    time.sleep(3)
    ctx.create_cache("ran", ctx.machine)
