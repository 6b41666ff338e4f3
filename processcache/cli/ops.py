"""Operations commands: jobs, runs, logs, locks, check and prune. Parse, call `Database`'s reports, format."""

import contextlib
import json
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import click

from .format import (complete_jobs, database_option, echo_json, echo_table, json_line, json_option,
                         one_line_errors, opened)
from .style import local_time, show_time, zone_label
from ..durations import format_duration, parse_duration
from ..errors import ProcessCacheError

RUN_STATUSES = ["running", "succeeded", "failed", "skipped", "lost", "terminated"]


def since_option(what: str):
    """--since as `runs` and `logs` share it, read by `_since`."""
    return click.option("--since", metavar="WHEN",
                        help=f"Only {what} since a duration ago (1h, 2d) or a UTC time (2026-11-24T03:00).")


@click.group(invoke_without_command=True)
@click.option("--all", "include_retired", is_flag=True, help="Also the retired jobs, with when they were retired.")
@database_option
@json_option
@click.pass_context
@one_line_errors
def jobs(click_ctx, include_retired, database, as_json):
    """Every job: its last run, status, duration, machines and cache entries.

    A run in progress is shown as running even when copies of it were
    skipped since. Retired jobs are left out (--all lists them too).
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
        _refuse_listing_options(click_ctx, f"jobs {click_ctx.invoked_subcommand}", "include_retired")
        return
    with opened(database) as db:
        every = db.jobs(include_retired=True)
    summaries = [summary for summary in every if include_retired or not summary.retired]
    if as_json:
        echo_json(summaries)
        return
    retired = ["RETIRED"] if include_retired else []  # the column only where retired jobs are listed
    echo_table(["JOB", "LAST RUN", "STATUS", "DURATION", "ENTRIES", *retired, "MACHINES"], [
        [s.name, s.last_run and s.last_run.started_at, s.last_run and s.last_run.status,
         s.last_run and s.last_run.duration, s.entries, *([s.retired_at] if retired else []), ", ".join(s.machines)]
        for s in summaries],
        empty=f"no jobs but {len(every)} retired: `processcache jobs --all` lists them" if every
        else "no jobs yet: run one with `processcache run path/to/jobs.py:job`")


def _job_command(func):
    """A `jobs` subcommand on one GROUP/JOB; --database and --json may come before or after it."""
    func = click.pass_context(one_line_errors(func))
    return jobs.command()(click.argument("name", metavar="GROUP/JOB", shell_complete=complete_jobs)(
        database_option(json_option(func))))


@_job_command
def retire(click_ctx, name, database, as_json):
    """Hide a job taken out of the crontab from `check` and `jobs`, keeping its history.

    Its runs, logs and cache stay (`runs`, `logs` and `cache` show them;
    `jobs --all` lists it). A run of it that starts later brings it back by
    itself, since cron still runs it: take it out of every crontab first.

    \b
    Example:
        processcache jobs retire billing/old-export
    """
    with opened(_of_group(click_ctx, "database", database), read_only=False) as db:
        retired_at = db.retire_job(name)
    _report(click_ctx, as_json, {"job": name, "retired_at": retired_at},
            f"retired {name}: `check` and `jobs` leave it out (`jobs --all` lists it) and its runs, logs and"
            " cache are kept. A run of it that starts later brings it back: take it out of every crontab."
            f" `processcache jobs restore {name}` undoes this")


@_job_command
def restore(click_ctx, name, database, as_json):
    """Bring a retired job back into `check` and `jobs`.

    \b
    Example:
        processcache jobs restore billing/old-export
    """
    with opened(_of_group(click_ctx, "database", database), read_only=False) as db:
        was_retired = db.restore_job(name)
    _report(click_ctx, as_json, {"job": name, "was_retired": was_retired},
            f"restored {name}: `check` and `jobs` show it again" if was_retired
            else f"{name} is not retired: nothing to restore")


@_job_command
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
def delete(click_ctx, name, yes, database, as_json):
    """Delete a job for good: its runs, logs and cache entries, and the job itself.

    Refused while a run of it is running: take it out of every crontab,
    let the run end, then delete (its locks are free then). To hide a job
    and keep its history, use `jobs retire` instead.

    \b
    Example:
        processcache jobs delete billing/old-export --yes
    """
    with opened(_of_group(click_ctx, "database", database), read_only=False) as db:
        counts = db.delete_job(name, dry_run=True)  # a running job is refused before anything is asked
        if not yes:
            click.confirm(f"Delete {name} for good, with its {_counted(counts)}?", abort=True)
        with _progress("deleting", sum(counts.values())) as progress:
            counts = db.delete_job(name, progress=progress)
    _report(click_ctx, as_json, {"job": name, **counts}, f"deleted {name} with its {_counted(counts)}")


def _counted(counts: dict[str, int]) -> str:
    return f"{counts['runs']} runs, {counts['logs']} logs and {counts['entries']} cache entries"


def _report(click_ctx, as_json: bool, data: dict, text: str) -> None:
    """What a subcommand did: *data* with --json (given before or after it), *text* otherwise."""
    if _of_group(click_ctx, "as_json", as_json):
        echo_json(data)
    else:
        click.echo(text)


@click.command()
@click.argument("words", nargs=-1, metavar="[GROUP[/JOB] | show ID]", shell_complete=complete_jobs)
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--machine", "-m", metavar="NAME", help="Only runs on this machine.")
@since_option("runs that started")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs.")
@database_option
@json_option
@click.pass_context
@one_line_errors
def runs(click_ctx, words, status, machine, since, limit, database, as_json):
    """Runs, newest first, with their status and error; `runs show ID` prints one run whole.

    GROUP/JOB lists one job's runs, GROUP those of every job of the group.
    A run whose process died (its heartbeat stopped) shows as lost.

    `runs show ID` prints the run's start and end in UTC and in local time,
    its duration, exit code, result, error and traceback, then its logs.
    `show` first always means that; the runs of a group named show are
    `runs show/`.

    \b
    Examples:
        processcache runs billing --since 1d --status failed
        processcache runs example/hello-world --machine desktop-main --limit 50 --json
        processcache runs show 1234
    """
    if words[:1] == ("show",):
        _refuse_listing_options(click_ctx, "runs show", "status", "machine", "since", "limit")
        _show_run(words[1:], database, as_json)
        return
    if len(words) > 1:
        raise click.UsageError(f"one GROUP or GROUP/JOB, not {len(words)} words: `processcache runs billing`,"
                               " `processcache runs billing/sync-invoices` or `processcache runs show ID`")
    with opened(database) as db:
        found = db.list_runs(words[0] if words else None, status=status, machine=machine,
                             since=_since(since, db.clock), limit=limit)
    if as_json:
        echo_json(found)
        return
    echo_table(["RUN", "JOB", "MACHINE", "STARTED", "STATUS", "DURATION", "ERROR"], [
        [r.id, r.name, r.machine, r.started_at, r.status, r.duration, r.error] for r in found],
        empty="no runs match")


def _show_run(words, database, as_json) -> None:
    """`runs show ID`: one run whole (`db.run`), labelled lines for people, one object with --json."""
    if len(words) != 1 or not words[0].isdigit():
        raise click.UsageError("`runs show` takes one run's id (`processcache runs` lists them);"
                               " the runs of a group named show are `processcache runs show/`")
    with opened(database) as db:
        detail = db.run(int(words[0]))
    if as_json:
        echo_json(detail)
        return
    run = detail.run
    fields = [("run", f"{run.id} of {run.name}"), ("machine", f"{run.machine} (pid {run.pid})"),
              ("status", run.status), ("started", _utc_and_local(run.started_at)),
              ("finished", _utc_and_local(run.finished_at)), ("duration", format_duration(run.duration)),
              ("exit code", detail.exit_code), ("result", None if run.result is None else json.dumps(run.result)),
              ("error", run.error)]
    for label, value in fields:
        click.echo(f"{label + ':':<11}{'-' if value is None else value}")
    if run.traceback:
        click.echo("traceback:\n" + textwrap.indent(run.traceback.rstrip("\n"), "  "))
    click.echo(f"logs:      {len(detail.logs)}")
    _print_logs(detail.logs, False)


def _utc_and_local(moment: datetime | None) -> str | None:
    """A time as stored (UTC) and in this machine's zone (TZ), for a reader in either."""
    if moment is None:
        return None
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC, {local_time(moment):%Y-%m-%d %H:%M:%S %Z} local"


@click.command()
@click.argument("job", required=False, metavar="[GROUP[/JOB]]", shell_complete=complete_jobs)
@click.option("--run", "run_id", type=int, metavar="ID", help="Only the logs of this run.")
@click.option("--type", "log_type", type=click.Choice(["GENERIC", "WARNING", "ERROR"], case_sensitive=False),
              help="Only logs of this type.")
@click.option("--machine", "-m", metavar="NAME", help="Only logs written on this machine.")
@since_option("logs written")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many logs: the newest ones, or the ones before the newest --offset."
                   " With --follow, -n 0 prints only the logs to come.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many of the newest first, to page back.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new logs as they are written (Ctrl-C stops).")
@database_option
@json_option
@one_line_errors
def logs(job, run_id, log_type, machine, since, limit, offset, follow, database, as_json):
    """Logs of every job, of a group's or of one job's, oldest first; by default the newest 100.

    --offset pages back: --offset 100 shows the 100 logs before those. When
    a page leaves logs out, a line on stderr says how many there are, so
    stdout stays clean for pipes.

    \b
    Examples:
        processcache logs example/hello-world --type error --since 12h
        processcache logs billing --run 1234
        processcache logs example/hello-world --follow -n 0
    """
    with opened(database) as db:
        filters = {"run": run_id, "type": log_type, "machine": machine, "since": _since(since, db.clock)}
        found = db.logs(job, **filters, limit=limit, offset=offset)
        if limit and (len(found) == limit or offset):
            total = db.count_logs(job, **filters)
            if total > len(found):
                click.echo(f"showing {len(found)} of {total} logs (use --limit, or --offset to page back)", err=True)
        _print_logs(found, as_json)
        if follow:  # after the newest log that matches, whatever the page showed
            _follow(db, job, filters, found[-1].id if found and not offset else None, as_json)


def _follow(db, job, filters, after, as_json) -> None:
    """Print the logs that come after the log *after* (None: after the newest one now), until stopped."""
    if after is None:
        newest = db.logs(job, **filters, limit=1)
        after = newest[-1].id if newest else 0
    while True:
        time.sleep(1.0)
        found = db.logs(job, **filters, after=after, limit=None)
        _print_logs(found, as_json)
        after = found[-1].id if found else after


def _since(text, clock):
    """--since as a time: a duration back from the database server's clock, the one logs are stamped by."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return clock.now() - timedelta(seconds=parse_duration(text, "--since"))
        except ProcessCacheError:
            raise click.BadParameter(f"{text!r} is neither a duration ago (30s, 15m, 2h, 1d, 1h30m or seconds) nor"
                                     " a time (2026-11-24T03:00, UTC unless it has an offset)",
                                     param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _print_logs(found, as_json):
    if as_json:  # one JSON object a line, so --follow can stream
        for record in found:
            click.echo(json_line(record))
        return
    for record in found:
        level = record.level or record.type.value
        click.echo(f"{show_time(record.created_at)} {zone_label()} {record.group}/{record.job} {record.machine}"
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
        return
    with opened(database) as db:
        found = db.locks()
    if as_json:
        echo_json(found)
        return
    echo_table(["LOCK", "RUN", "MACHINE", "PID", "HELD FOR", "EXPIRES IN"], [
        [lock.name, lock.run_id, lock.machine, lock.pid, lock.held_for, lock.expires_in] for lock in found],
        empty="no lock is held")


@locks.command("break")
@click.argument("name", metavar="GROUP/JOB[@MACHINE]", shell_complete=complete_jobs)
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@database_option
@json_option
@click.pass_context
@one_line_errors
def break_lock(click_ctx, name, yes, database, as_json):
    """Free a job's lock now, whoever holds it.

    Only for a holder you know is gone: a live holder keeps running, and
    another run may then start beside it. A dead holder's lock frees itself
    when its lease runs out. NAME is the job's, or the key `processcache
    locks` lists. --database and --json may be given before or after `break`.
    """
    with opened(_of_group(click_ctx, "database", database), read_only=False) as db:
        held = [lock for lock in db.runs.locks(name) if lock.held]
        if not held:
            raise click.ClickException(f"no one holds the lock {name}: `processcache locks` lists held locks")
        lock = held[0]
        if not yes:
            click.confirm(f"Break {name}, held by run {lock.run_id} on {lock.machine} (pid {lock.pid})?",
                          abort=True)
        db.runs.break_lock(name)
    _report(click_ctx, as_json, {"lock": name, "run_id": lock.run_id, "machine": lock.machine, "pid": lock.pid},
            f"broke the lock {name}")


def _of_group(click_ctx, name: str, value):
    """A subcommand's option, or its group's (`locks -d URL break ...`): never silently the default."""
    parent = click_ctx.parent
    given = _given(parent, name)
    if given and _given(click_ctx, name) and value != parent.params[name]:
        raise click.UsageError(f"two different {given[0]} values: give it once")
    return parent.params[name] if given else value


def _refuse_listing_options(click_ctx, command: str, *names: str) -> None:
    """Refuse options that shape a listing when *command* (`locks break`, `runs show`) runs instead of it."""
    for option in _given(click_ctx, *names):
        raise click.UsageError(f"{option} shapes the listing: `{command}` takes no {option}")


def _given(click_ctx, *names: str) -> list[str]:
    """Which of the parameters *names* the command line gave (an environment variable does not count), as written."""
    from click.core import ParameterSource

    return [param.opts[0] for param in click_ctx.command.params if param.name in names
            and click_ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE]


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
            with _progress("pruning", total) as progress:
                counts = db.history.prune(**seconds, expired=expired, progress=progress)
    if as_json:
        echo_json({"dry_run": dry_run, **counts})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(", ".join(f"{verb} {count} {table}" for table, count in counts.items()))


@contextlib.contextmanager
def _progress(label: str, total: int):
    """A progress bar on stderr when it is a terminal; yields the callback batched deletes report to."""
    with click.progressbar(length=total, label=label, file=sys.stderr, hidden=not sys.stderr.isatty()) as bar:
        yield lambda _table, rows: bar.update(rows)
