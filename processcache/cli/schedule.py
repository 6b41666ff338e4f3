"""``processcache schedule``: a job's schedule with its ``H`` resolved, for the crontab line, and when it is due."""

from datetime import UTC, datetime

import click

from ..errors import ProcessCacheError
from ..names import normalize_name, split_job_name
from ..schedules import check_schedule, next_due, spread
from .format import echo_json, json_option, one_line_errors
from .style import show_time


@click.command()
@click.argument("job", metavar="GROUP/JOB")
@click.argument("expression", metavar="CRON")
@click.option("--timezone", default="UTC", show_default=True, metavar="ZONE",
              help="The time zone the schedule is read in, as the job's own timezone option.")
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 100), help="Due times to list.")
@json_option
@one_line_errors
def schedule(job, expression, timezone, count, as_json):
    """Print CRON for GROUP/JOB with each H resolved, and its next due times.

    H (as in Jenkins) is a value derived from the job's name, the same on
    every machine: 300 jobs written 'H 3 * * *' start over the hour, not
    all at 03:00. A run resolves it the same way and stores the result, so
    check and the report know the real due time. Put the printed minute
    and hour in the crontab line:

    \b
        $ processcache schedule etl/orders 'H 3 * * *'
        47 3 * * *
        $ crontab: 47 3 * * *  processcache run jobs/etl.py:orders
    """
    group, name = (normalize_name(part) for part in split_job_name(job))
    checked, zone = check_schedule(expression, timezone)
    if checked is None:
        raise ProcessCacheError("give a cron expression such as 'H 3 * * *'")
    resolved = spread(checked, f"{group}/{name}")
    due, moment = [], datetime.now(UTC)
    for _ in range(count):
        found = next_due(resolved, zone, moment)
        if found is None:
            break
        due.append(found)
        moment = found
    if as_json:
        echo_json({"job": f"{group}/{name}", "schedule": resolved, "timezone": zone, "due": due})
        return
    click.echo(resolved)
    for moment in due:
        click.echo(f"  due {show_time(moment)}", err=True)
