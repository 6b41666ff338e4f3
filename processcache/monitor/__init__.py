"""Judge, tell, expose: what operators and their tools learn of the farm.

- `check`: every verdict (overdue, missed, late, failed, lost, too long, flaky)
  over the rows storage returns (``History.states``).
- `alerts`: alerts that fire on changes (``check --notify``), once per incident.
- `channels`: where processcache tells someone: webhooks, mail, per-run pings.
- `pings`: healthchecks.io and Cronitor pings, of runs and of the checker.
- `metrics`: Prometheus metrics of every job.
"""
