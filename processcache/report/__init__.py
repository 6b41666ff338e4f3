"""The farm at a glance: what ``processcache report --html`` writes and ``processcache serve`` shows.

`gather` reads what the pages show (what it reads grows with the jobs
shown, not with their history), `pages` turns it into HTML with every
text from jobs escaped, and `server` answers a browser's requests read-only. Nothing
here is imported by ``processcache run``: cron pays for none of it.
"""
