"""Operations commands: jobs, runs, logs, locks, check and prune. Parse, call, format."""

import sys
import time
from datetime import datetime, timedelta, timezone

import click

from .cli_format import database_option, echo_json, echo_table, json_line, json_option, one_line_errors, opened
from .durations import parse_duration
from .logs import LogType

RUN_STATUSES = ["running", "succeeded", "failed", "skipped", "lost", "terminated"]


@click.command()
@database_option
@json_option
@one_line_errors
def jobs(database, as_json):
    """Every job: its last run, status, duration, machines and cache entries.

    \b
    Example:
        processcache jobs --database postgresql://cron@db.internal/cron
    """
    with opened(database) as db:
        summaries = db.history.jobs()
    if as_json:
        echo_json(summaries)
        return
    echo_table(["JOB", "LAST RUN", "STATUS", "DURATION", "ENTRIES", "MACHINES"], [
        [s.name, s.last_run and s.last_run.started_at, s.last_run and s.last_run.status,
         s.last_run and s.last_run.duration, s.entries, ", ".join(s.machines)] for s in summaries],
        empty="no jobs yet: run one with `processcache run path/to/jobs.py:job`")


@click.command()
@click.argument("job", required=False, metavar="[GROUP/JOB]")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--machine", "-m", metavar="NAME", help="Only runs on this machine.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs.")
@database_option
@json_option
@one_line_errors
def runs(job, status, machine, limit, database, as_json):
    """Runs, newest first, with their status and error.

    A run whose process died (its heartbeat stopped) shows as lost.

    \b
    Examples:
        processcache runs example/hello-world --status failed
        processcache runs --machine desktop-main --limit 50 --json
    """
    with opened(database) as db:
        found = db.history.list_runs(job, status, machine, limit)
    if as_json:
        echo_json(found)
        return
    echo_table(["RUN", "JOB", "MACHINE", "STARTED", "STATUS", "DURATION", "ERROR"], [
        [r.id, r.name, r.machine, r.started_at, r.status, r.duration, r.error] for r in found],
        empty="no runs match")


@click.command()
@click.argument("job", required=False, metavar="[GROUP/JOB]")
@click.option("--run", "run_id", type=int, metavar="ID", help="Only the logs of this run.")
@click.option("--type", "log_type", type=click.Choice(["GENERIC", "WARNING", "ERROR"], case_sensitive=False),
              help="Only logs of this type.")
@click.option("--machine", "-m", metavar="NAME", help="Only logs written on this machine.")
@click.option("--since", metavar="WHEN", help="Only logs since a duration ago (1h, 2d) or a UTC time (2026-11-24T03:00).")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many logs: the newest ones, or the ones before the newest --offset.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many of the newest first, to page back.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new logs as they are written (Ctrl-C stops).")
@database_option
@json_option
@one_line_errors
def logs(job, run_id, log_type, machine, since, limit, offset, follow, database, as_json):
    """Logs of every job or of one, oldest first; by default the newest 100.

    --offset pages back: --offset 100 shows the 100 logs before those.

    \b
    Examples:
        processcache logs example/hello-world --type error --since 12h
        processcache logs --run 1234
        processcache logs example/hello-world --follow
    """
    with opened(database) as db:
        filters = {"job_ids": None if job is None else [db.history.job_id(job)], "machine": machine,
                   "log_type": log_type and LogType.parse(log_type), "run_id": run_id, "since": _since(since, db.clock)}
        found = db.store.logs(**filters, offset=offset, limit=limit, newest=True)
        _print_logs(found, as_json)
        last_id = found[-1].id if found else 0
        while follow:
            time.sleep(1.0)
            found = db.store.logs(**filters, after_id=last_id)
            _print_logs(found, as_json)
            last_id = found[-1].id if found else last_id


def _since(text, clock):
    """--since as a time: a duration back from the database server's clock, the one logs are stamped by."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return clock.now() - timedelta(seconds=parse_duration(text, "--since"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _print_logs(found, as_json):
    if as_json:  # one JSON object a line, so --follow can stream
        for record in found:
            click.echo(json_line(record))
        return
    for record in found:
        level = record.level or record.type.value
        click.echo(f"{record.created_at:%Y-%m-%d %H:%M:%S} {record.group}/{record.job} {record.machine}"
                   f" run {record.run_id or '-'} [{level}] {record.message}")
    sys.stdout.flush()


@click.group(invoke_without_command=True)
@database_option
@json_option
@click.pass_context
@one_line_errors
def locks(click_ctx, database, as_json):
    """Overlap locks: who holds which job's lock, and for how long.

    \b
    Examples:
        processcache locks
        processcache locks break example/hello-world --yes
    """
    if click_ctx.invoked_subcommand is not None:
        if as_json:
            raise click.UsageError(f"--json lists the locks; `locks {click_ctx.invoked_subcommand}` takes no --json")
        return
    with opened(database) as db:
        found = [lock for lock in db.runs.locks() if lock.held]
    if as_json:
        echo_json(found)
        return
    echo_table(["LOCK", "RUN", "MACHINE", "PID", "HELD FOR", "EXPIRES IN"], [
        [lock.name, lock.run_id, lock.machine, lock.pid, lock.held_for, lock.expires_in] for lock in found],
        empty="no lock is held")


@locks.command("break")
@click.argument("name", metavar="GROUP/JOB[@MACHINE]")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@database_option
@click.pass_context
@one_line_errors
def break_lock(click_ctx, name, yes, database):
    """Free a job's lock now, whoever holds it.

    Only for a holder you know is gone: a live holder keeps running, and
    another run may then start beside it. A dead holder's lock frees itself
    when its lease runs out. NAME is the job's, or the key `processcache
    locks` lists. --database may be given before or after `break`.
    """
    with opened(_database_of(click_ctx, database), read_only=False) as db:
        held = [lock for lock in db.runs.locks(name) if lock.held]
        if not held:
            raise click.ClickException(f"no one holds the lock {name}: `processcache locks` lists held locks")
        lock = held[0]
        if not yes:
            click.confirm(f"Break {name}, held by run {lock.run_id} on {lock.machine} (pid {lock.pid})?",
                          abort=True)
        db.runs.break_lock(name)
    click.echo(f"broke the lock {name}")


def _database_of(click_ctx, database):
    """The --database of a subcommand, or of its group (`locks -d URL break ...`): never silently the default."""
    from click.core import ParameterSource

    given = click_ctx.get_parameter_source("database") == ParameterSource.COMMANDLINE
    parent = click_ctx.parent
    parent_given = parent.get_parameter_source("database") == ParameterSource.COMMANDLINE
    if given and parent_given and database != parent.params["database"]:
        raise click.UsageError("two different --database values: give it once")
    return parent.params["database"] if parent_given else database


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
    was terminated or was lost (a lost run is only that, however long ago it
    died), or when it ran longer than its max_duration. A database that holds
    no job at all is a problem too (no-jobs): a probe given the wrong
    --database must not pass. Call it from any monitoring system.

    \b
    Example:
        processcache check --json
    """
    with opened(database) as db:
        problems = db.history.check(parse_duration(grace, "--grace"))
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
              help="Keep failed, lost and terminated runs and their logs this long instead (e.g. 90d).")
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
    ages = {"runs_older_than": runs_older_than, "logs_older_than": logs_older_than,
            "keep_failed_for": keep_failed_for}
    seconds = {name: None if value is None else parse_duration(value, "--" + name.replace("_", "-"))
               for name, value in ages.items()}
    with opened(database, read_only=dry_run) as db:
        if dry_run:
            counts = db.history.prune(**seconds, expired=expired, dry_run=True)
        else:
            total = sum(db.history.prune(**seconds, expired=expired, dry_run=True).values())
            with click.progressbar(length=total, label="pruning", file=sys.stderr,
                                   hidden=not sys.stderr.isatty()) as bar:
                counts = db.history.prune(**seconds, expired=expired, progress=lambda _table, n: bar.update(n))
    if as_json:
        echo_json({"dry_run": dry_run, **counts})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(", ".join(f"{verb} {count} {table}" for table, count in counts.items()))
