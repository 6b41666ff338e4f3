"""Judge, tell, expose: what operators and their tools learn of the farm.

- `alerts`: alerts that fire on changes (``check --notify``), once per incident.
- `channels`: where processcache tells someone: webhooks, mail, per-run pings.
- `pings`: healthchecks.io and Cronitor pings, of runs and of the checker.
- `metrics`: Prometheus metrics of every job.

The verdicts themselves (overdue, missed, failed, too long, flaky) are still
read in `processcache.storage.reports` (``History.judge``); moving them here
is the next step of the house by role.
"""
