"""Catch-up of missed due times: what a scheduled job's next start runs for the slots no run answered.

With ``catch_up`` (a job with a ``schedule``), a start first looks back
``catch_up_window`` (6 h by default) for due times that no run of the job
answered (a run that started in a due time's slot, on any machine, skipped
copies included: cron fired; machines down or cron stopped leave none), after
the job's first run ever (it was not declared before). ``"all"`` runs the
job once for each, oldest first, the newest ``catch_up_limit`` of them;
``"latest"`` once, for the newest; ``"skip"`` none (``check`` reports them
missed, as it does whether or not they were caught up later). Each run
claims its due time as its ``once_per`` slot, so two machines starting at
once run each missed due time once between them, and ``ctx.slot`` tells the
job which due time it runs for. Then the run for the current due time.
"""

from datetime import datetime, timedelta

from ..options import JobOptions
from ..schedules import current_slot, previous_due, spread
from ..storage import Database

#: A run that started this little before a due time answers it (a machine whose clock is ahead fires early).
EARLY = 30.0


def missed_slots(db: Database, group: str, job: str, options: JobOptions) -> list[datetime]:
    """The due times the job's next start runs for first, oldest first (see the module docstring)."""
    if options.catch_up in (None, "skip") or not options.schedule:
        return []
    schedule, zone = spread(options.schedule, f"{group}/{job}"), options.timezone
    now = db.clock.now()
    current = current_slot(schedule, zone, now)
    job_id = db.store.job_id(group, job)
    starts = db.runs.starts_since(job_id, now - timedelta(seconds=options.catch_up_window))
    first = db.runs.first_start(job_id)
    if current is None or first is None:
        return []
    answered = {current_slot(schedule, zone, start + timedelta(seconds=EARLY)) for start in starts}
    due, missed = previous_due(schedule, zone, current), []
    while due is not None and due >= now - timedelta(seconds=options.catch_up_window) and due > first:
        if due not in answered:
            missed.append(due)
        due = previous_due(schedule, zone, due)
    chosen = missed[:1] if options.catch_up == "latest" else missed[:options.catch_up_limit]
    return sorted(chosen)
