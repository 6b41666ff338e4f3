"""The farm at a glance: what ``processcache report --html`` writes and ``processcache serve`` shows.

`gather` reads one snapshot of the database (what it reads grows with
the jobs shown, not with their history), `pages` turns it into HTML with every text from jobs
escaped, and `server` answers a browser's requests read-only. Nothing
here is imported by ``processcache run``: cron pays for none of it.
"""
