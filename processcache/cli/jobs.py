"""The jobs and their upkeep: ``jobs`` (and ``jobs retire``, ``restore``, ``delete``), ``check`` and ``prune``.

Parse, call `Database`'s reports, format.
"""

import contextlib
import functools
import sys

import click

from ..durations import parse_duration
from .format import (
    database_option,
    echo_json,
    echo_table,
    job_argument,
    json_option,
    one_line_errors,
    opened,
    progress_bar,
    run_status,
    yes_option,
)
from .subcommands import of_group, refuse_listing_options, report


@click.group(invoke_without_command=True)
@click.option("--all", "include_retired", is_flag=True, help="Also the retired jobs, with when they were retired.")
@database_option
@json_option
@click.pass_context
@one_line_errors
def jobs(click_ctx, include_retired, database, as_json):
    """Every job: its last run, status, duration, machines and cache entries.

    A run in progress is shown as running even when copies of it were
    skipped since. A last run that retried says how many attempts it made
    ("succeeded (2 attempts)": a job that needed a retry); one stopped by
    its timeout shows as timed-out. The EXIT column, there when a job's last
    run is a command's (`processcache exec`), holds the command's own exit
    code. Retired jobs are left out (--all lists them too).
    `jobs retire` hides a job taken out of the crontab, `jobs restore`
    brings it back, `jobs delete` removes it and its history for good.
    --database and --json may be given before or after the subcommand.

    \b
    Examples:
        processcache jobs --database postgresql://cron@db.internal/cron
        processcache jobs --all
        processcache jobs retire billing/old-export
        processcache jobs restore billing/old-export
        processcache jobs delete billing/old-export --yes
    """
    if click_ctx.invoked_subcommand is not None:
        refuse_listing_options(click_ctx, f"jobs {click_ctx.invoked_subcommand}", "include_retired")
        return
    with opened(database) as db:
        every = db.jobs(include_retired=True)
    summaries = [summary for summary in every if include_retired or not summary.retired]
    if as_json:
        echo_json(summaries)
        return
    retired = ["RETIRED"] if include_retired else []  # the column only where retired jobs are listed
    echo_table(["JOB", "LAST RUN", "STATUS", "EXIT", "DURATION", "ENTRIES", *retired, "MACHINES"], [
        [s.name, s.last_run and s.last_run.started_at, run_status(s.last_run), s.last_run and s.last_run.exit_code,
         s.last_run and s.last_run.duration, s.entries, *([s.retired_at] if retired else []), ", ".join(s.machines)]
        for s in summaries], optional=("EXIT",),
        empty=f"no jobs but {len(every)} retired: `processcache jobs --all` lists them" if every
        else "no jobs yet: run one with `processcache run path/to/jobs.py:job`")


def _job_command(func):
    """A `jobs` subcommand on one GROUP/JOB; --database and --json may come before or after it."""
    return jobs.command()(job_argument(database_option(json_option(click.pass_context(one_line_errors(func))))))


@_job_command
def retire(click_ctx, job, database, as_json):
    """Hide a job taken out of the crontab from `check` and `jobs`, keeping its history.

    Its runs, logs and cache stay (`runs`, `logs` and `cache` show them;
    `jobs --all` lists it). A run of it that starts later brings it back by
    itself, since cron still runs it: take it out of every crontab first.

    \b
    Example:
        processcache jobs retire billing/old-export
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        retired_at = db.retire_job(job)
    report(click_ctx, as_json, {"job": job, "retired_at": retired_at},
           f"retired {job}: `check` and `jobs` leave it out (`jobs --all` lists it) and its runs, logs and"
           " cache are kept. A run of it that starts later brings it back: take it out of every crontab."
           f" `processcache jobs restore {job}` undoes this")


@_job_command
def restore(click_ctx, job, database, as_json):
    """Bring a retired job back into `check` and `jobs`.

    \b
    Example:
        processcache jobs restore billing/old-export
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        was_retired = db.restore_job(job)
    report(click_ctx, as_json, {"job": job, "was_retired": was_retired},
           f"restored {job}: `check` and `jobs` show it again" if was_retired
           else f"{job} is not retired: nothing to restore")


@_job_command
@yes_option
def delete(click_ctx, job, yes, database, as_json):
    """Delete a job for good: its runs, logs and cache entries, and the job itself.

    Refused while a run of it is running: take it out of every crontab,
    let the run end, then delete (its locks are free then). To hide a job
    and keep its history, use `jobs retire` instead.

    \b
    Example:
        processcache jobs delete billing/old-export --yes
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        counts = db.delete_job(job, dry_run=True)  # a running job is refused before anything is asked
        if not yes:
            click.confirm(f"Delete {job} for good, with its {_counted(counts)}?", abort=True)
        with _progress("deleting", sum(counts.values())) as progress:
            counts = db.delete_job(job, progress=progress)
    report(click_ctx, as_json, {"job": job, **counts}, f"deleted {job} with its {_counted(counts)}")


def _counted(counts: dict[str, int]) -> str:
    return f"{counts['runs']} runs, {counts['logs']} logs and {counts['entries']} cache entries"


@click.command()
@click.option("--grace", default="1m", show_default=True, metavar="DURATION",
              help="How late a job with expect_every may start before it is overdue.")
@database_option
@json_option
@one_line_errors
def check(grace, database, as_json):
    """Report jobs that need a look; exit 1 if any, 0 if all is well.

    A job is reported when it is overdue (declared with expect_every and no
    run started within that period plus --grace), when its last run failed,
    timed out, was terminated or was lost (a lost run is only that, however
    long ago it died), or when it ran longer than its max_duration. A
    database that holds no job at all is a problem too (no-jobs): a probe
    given the wrong --database must not pass. Call it from any monitoring
    system.

    Runs are judged, not attempts: a run that succeeded on a retry is well,
    and a run whose three attempts failed is one problem, its detail saying
    "(3 attempts)". With --json, each problem holds the run judged
    (machine, exit_code, attempts, slot, error; times in UTC).

    \b
    Example:
        processcache check --json
    """
    with opened(database) as db:
        problems = db.check(parse_duration(grace, "--grace"))
    if as_json:
        echo_json({"ok": not problems, "problems": problems})
    else:
        echo_table(["JOB", "PROBLEM", "RUN", "DETAIL"], [[p.job, p.kind, p.run_id, p.detail] for p in problems],
                   empty="all jobs are well")
    sys.exit(1 if problems else 0)


@click.command()
@click.option("--runs-older-than", metavar="DURATION", help="Delete runs that started longer ago (e.g. 30d).")
@click.option("--logs-older-than", metavar="DURATION", help="Delete logs written longer ago (e.g. 14d).")
@click.option("--keep-failed-for", metavar="DURATION",
              help="Keep failed, timed-out, lost and terminated runs and their logs this long instead (e.g. 90d).")
@click.option("--expired", is_flag=True, help="Delete expired cache entries for good.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@database_option
@json_option
@one_line_errors
def prune(runs_older_than, logs_older_than, keep_failed_for, expired, dry_run, database, as_json):
    """Delete old runs and logs and expired entries, in small batches.

    Live cache entries are never touched, and neither are, per job and
    machine, the latest run and the latest successful run with their logs,
    whatever their age: `check` judges the one, ctx.last_success() returns
    the other.

    \b
    Example (in a daily crontab):
        processcache prune --runs-older-than 30d --logs-older-than 14d --keep-failed-for 90d --expired
    """
    if runs_older_than is None and logs_older_than is None and not expired:
        raise click.UsageError("say what to prune: --runs-older-than, --logs-older-than and/or --expired")
    runs_age, logs_age, failed_age = (None if value is None else parse_duration(value, option) for value, option in
                                      [(runs_older_than, "--runs-older-than"), (logs_older_than, "--logs-older-than"),
                                       (keep_failed_for, "--keep-failed-for")])
    with opened(database, read_only=dry_run) as db:
        prune_history = functools.partial(db.history.prune, runs_older_than=runs_age, logs_older_than=logs_age,
                                          keep_failed_for=failed_age, expired=expired)
        if dry_run:
            counts = prune_history(dry_run=True)
        else:
            total = sum(prune_history(dry_run=True).values())
            with _progress("pruning", total) as progress:
                counts = prune_history(progress=progress)
    if as_json:
        echo_json({"dry_run": dry_run, **counts})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(", ".join(f"{verb} {count} {table}" for table, count in counts.items()))


@contextlib.contextmanager
def _progress(label: str, total: int):
    """`progress_bar`, fed by the callback batched deletes report each batch to."""
    with progress_bar(label, total) as bar:
        yield lambda _table, rows: bar.update(rows)
