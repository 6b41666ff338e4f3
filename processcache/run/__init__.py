"""One run's life, from its record to its final status: what ``processcache run`` and ``exec`` do.

- `runner`: a job's hooks and function inside a recorded run; the exit codes.
- `session`: the life of a run (record, lock, heartbeat, gates, capture,
  finish) and ``cache_session``.
- `state`: the run's machinery beside its context (heartbeat, output, exit
  code, attempts): ``run/``'s alone, so a context shows the user's API only.
- `catchup`: the due times a scheduled job's next start runs first (``catch_up``).
- `attempts`: retries, their delays and backoff, each attempt recorded.
- `timeouts`: a Python job's ``timeout`` (``TimedOut`` in its thread).
- `heartbeat`: the thread that renews a lease.
- `signals`: SIGTERM, SIGINT, SIGHUP end the run, then exit 128 + n.
- `output`: the end of what a run printed, stored with it.
- `quiet`: ``run -q``: output held back in memory, shown only on failure.
- `command`: ``exec``, a command as a recorded run, stopped when it must stop;
  `supervised` its end of the `reaper`, the command's parent and subreaper.
- `downtime`: a run whose database cannot be reached (``if_database_down``),
  or goes away mid-run; `spool`: what a run or a command does with what the
  spool kept (the spool itself is storage's).
"""
