"""The jobs and their upkeep: ``jobs`` (and ``jobs retire``, ``restore``, ``delete``), ``check`` and ``prune``.

Parse, call `Database`'s reports, format.
"""

import contextlib
import functools
import sys
from typing import TYPE_CHECKING

import click

from ..durations import format_duration, parse_duration
from ..storage import shown
from .format import (
    database_option,
    echo_json,
    echo_table,
    grace_option,
    job_argument,
    json_option,
    one_line_errors,
    opened,
    progress_bar,
    read_url_option,
    run_status,
    yes_option,
)
from .style import show_time
from .subcommands import of_group, refuse_listing_options, report

if TYPE_CHECKING:
    from ..records import Pause


@click.group(invoke_without_command=True)
@click.option("--all", "include_retired", is_flag=True, help="Also the retired jobs, with when they were retired.")
@read_url_option
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
    echo_table(["JOB", "LAST RUN", "STATUS", "EXIT", "DURATION", "ENTRIES", "PAUSED", "AFTER", *retired, "MACHINES"], [
        [s.name, s.last_run and s.last_run.started_at, run_status(s.last_run), s.last_run and s.last_run.exit_code,
         s.last_run and s.last_run.duration, s.entries, _paused(s.pause), ", ".join(s.after) or None,
         *([s.retired_at] if retired else []), ", ".join(s.machines)]
        for s in summaries], optional=("EXIT", "PAUSED", "AFTER"),
        empty=f"no jobs but {len(every)} retired: `processcache jobs --all` lists them" if every
        else "no jobs yet: run one with `processcache run path/to/jobs.py:job`")


def _paused(pause: "Pause | None") -> str | None:
    """A pause as the PAUSED column shows it: until when (or until resumed), why."""
    if pause is None:
        return None
    until = "until resumed" if pause.until is None else f"until {show_time(pause.until)}"
    return until + (f": {pause.reason}" if pause.reason else "")


def _job_command(func):
    """A `jobs` subcommand on one GROUP/JOB; --database and --json may come before or after it."""
    return jobs.command()(job_argument(database_option(json_option(click.pass_context(one_line_errors(func))))))


def _machine_option(what: str):
    return click.option("--machine", "-m", metavar="NAME", help=what)


@_job_command
@_machine_option("Retire only this machine from the job (a job locked per machine that it no longer runs).")
def retire(click_ctx, job, machine, database, as_json):
    """Hide a job taken out of the crontab from `check` and `jobs`, keeping its history.

    Its runs, logs and cache stay (`runs`, `logs` and `cache` show them;
    `jobs --all` lists it). A run of it that starts later brings it back by
    itself, since cron still runs it: take it out of every crontab first.

    With --machine, only that machine leaves the job: a job locked per
    machine (lock="machine") is expected on every machine that ran it in
    the last 7 days (or 3 of its periods), so one taken out of a host's
    crontab is overdue there until retired. A run of it on that machine
    brings the machine back.

    \b
    Examples:
        processcache jobs retire billing/old-export
        processcache jobs retire ops/logrotate --machine vm2
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        retired_at = db.retire_job(job, machine=machine)
    if machine is not None:
        report(click_ctx, as_json, {"job": job, "machine": machine, "retired_at": retired_at},
               f"retired {machine} from {job}: `check` no longer expects it there. A run of it that starts on"
               f" {machine} brings it back. `processcache jobs restore {job} --machine {machine}` undoes this")
        return
    report(click_ctx, as_json, {"job": job, "retired_at": retired_at},
           f"retired {job}: `check` and `jobs` leave it out (`jobs --all` lists it) and its runs, logs and"
           " cache are kept. A run of it that starts later brings it back: take it out of every crontab."
           f" `processcache jobs restore {job}` undoes this")


@_job_command
@_machine_option("Bring back only this machine, retired from the job.")
def restore(click_ctx, job, machine, database, as_json):
    """Bring a retired job (or a machine retired from it) back into `check` and `jobs`.

    \b
    Example:
        processcache jobs restore billing/old-export
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        was_retired = db.restore_job(job, machine=machine)
    what = job if machine is None else f"{machine} of {job}"
    report(click_ctx, as_json, {"job": job, **({} if machine is None else {"machine": machine}),
                                "was_retired": was_retired},
           f"restored {what}: `check` and `jobs` show it again" if was_retired
           else f"{what} is not retired: nothing to restore")


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


@_job_command
@click.option("--for", "duration", metavar="DURATION", required=True,
              help="How long to send no alert about it (e.g. 2h, 1d).")
def mute(click_ctx, job, duration, database, as_json):
    """Send no alert about a job for a while: a known outage, a planned migration.

    `check` still reports it, and its alert state still follows it: if it
    recovers while muted, no message goes; if it still fails when the mute
    ends, none goes either (it was already failing). The time is the
    database server's.

    \b
    Example:
        processcache jobs mute billing/sync-invoices --for 2h
    """
    seconds = _duration_of(duration, "--for")
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        db.mute_job(job, seconds)
    report(click_ctx, as_json, {"job": job, "muted_for": seconds},
           f"muted {job} for {format_duration(seconds)}: `processcache jobs unmute {job}` ends it sooner")


@_job_command
def unmute(click_ctx, job, database, as_json):
    """Send alerts about a muted job again, now."""
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        db.mute_job(job, None)
    report(click_ctx, as_json, {"job": job, "muted_for": None}, f"unmuted {job}")


@_job_command
@click.option("--for", "duration", metavar="DURATION", help="How long (e.g. 2h, 1d); until `resume` without it.")
@click.option("--reason", metavar="TEXT", help="Why: each skipped run records it, and `jobs` shows it.")
def pause(click_ctx, job, duration, reason, database, as_json):
    """Pause a job on every machine: its runs skip (exit 75) until the pause ends.

    Each run cron starts meanwhile is recorded skipped with the reason and
    exits 75 at once, without taking the lock; `check` judges nothing of
    the job (not overdue, not missed) while it is paused, and `jobs` shows
    the pause. It ends by itself after --for, or with `resume`. The time is
    the database server's. `jobs mute` only silences alerts.

    \b
    Examples:
        processcache pause billing/sync-invoices --for 2h --reason "schema migration"
        processcache resume billing/sync-invoices
    """
    seconds = None if duration is None else _duration_of(duration, "--for")
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        until = db.pause_job(job, seconds, reason)
    when = "until resumed" if until is None else f"until {show_time(until)}"
    report(click_ctx, as_json, {"job": job, "paused_until": until, "reason": reason},
           f"paused {job} {when}: its runs skip on every machine; `processcache resume {job}` ends it")


@_job_command
def resume(click_ctx, job, database, as_json):
    """Let a paused job run again, now."""
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        was_paused = db.resume_job(job) > 0
    report(click_ctx, as_json, {"job": job, "was_paused": was_paused},
           f"resumed {job}" if was_paused else f"{job} was not paused")


@_job_command
@click.argument("cron", metavar="CRON|off")
@click.option("--for", "duration", metavar="DURATION", help="How long each window lasts (e.g. 2h).")
@click.option("--timezone", default="UTC", show_default=True, metavar="ZONE", help="The zone CRON is read in.")
@click.option("--reason", metavar="TEXT", help="Why: each run skipped in a window records it.")
def window(click_ctx, job, cron, duration, timezone, reason, database, as_json):
    """A maintenance window: from each time CRON is due, the job is paused for --for.

    Inside a window the job is paused as by `pause`: its runs skip on every
    machine (exit 75, recorded skipped with the reason) and `check` judges
    nothing of it; `jobs` shows it while it lasts. `off` takes it away.

    \b
    Examples:
        processcache window shop/sync '0 2 * * sun' --for 2h --reason "weekly database maintenance"
        processcache window shop/sync off
    """
    if cron == "off":
        with opened(of_group(click_ctx, "database", database), read_only=False) as db:
            db.set_window(job, None)
        report(click_ctx, as_json, {"job": job, "window": None}, f"{job} has no maintenance window")
        return
    if duration is None:
        raise click.UsageError("a maintenance window needs --for (how long each lasts, e.g. 2h)")
    seconds = _duration_of(duration, "--for")
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        db.set_window(job, cron, seconds, timezone, reason)
    report(click_ctx, as_json, {"job": job, "window": cron, "timezone": timezone, "seconds": seconds},
           f"{job} is paused from each {cron} ({timezone}) for {format_duration(seconds)}:"
           f" `processcache window {job} off` takes it away")


def _duration_of(text: str, option: str) -> float:
    from ..errors import ProcessCacheError

    try:
        seconds = parse_duration(text, option)
    except ProcessCacheError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter(f"{option} must be longer than 0 seconds")
    return seconds


def _counted(counts: dict[str, int]) -> str:
    return f"{counts['runs']} runs, {counts['logs']} logs and {counts['entries']} cache entries"


def channels_given(urls: tuple[str, ...]) -> list[str]:
    """The --notify URLs, checked before any database opens: a typo fails the crontab line, not the alert."""
    from ..errors import ProcessCacheError
    from ..monitor.channels import check_channel

    found = [url for given in urls for url in given.split()]
    try:
        return [check_channel(url) for url in found]
    except ProcessCacheError as exc:
        raise click.BadParameter(str(exc)) from None


def ping_given(url: str | None) -> str | None:
    """The --ping URL, checked before any database opens: a typo fails the crontab line at once."""
    from ..errors import ProcessCacheError
    from ..monitor.channels import check_ping

    try:
        return None if url is None else check_ping(url)
    except ProcessCacheError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@grace_option("How late a due run (a job's schedule) or a job with expect_every may start before it is missed or"
              " overdue; a job's own grace wins.")
@click.option("--notify", "notify_urls", metavar="URL", multiple=True, envvar="PROCESSCACHE_NOTIFY",
              show_envvar=True, callback=lambda _ctx, _param, urls: channels_given(urls),
              help="Send an alert when a job starts failing or recovers: a webhook (https://...) or e-mail "
                   "(smtp://host?to=you@example.org). Repeat it for more; the variable takes them space-separated "
                   "(set on a crontab line of its own, it keeps their tokens out of `ps`).")
@click.option("--ping", "ping_url", metavar="URL", callback=lambda _ctx, _param, url: ping_given(url),
              help="A healthchecks.io or Cronitor URL pinged each time check has judged every job (whatever it "
                   "found), and told of a failure (/fail) when it could not read the database: an outside dead "
                   "man's switch then watches the checker.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print errors only: no table, no line per alert queued or sent (for the checker's crontab "
                   "line: cron mails only what needs a person). The exit code still says whether all is well.")
@read_url_option
@database_option
@json_option
@one_line_errors
def check(grace, notify_urls, ping_url, quiet, database, as_json):
    """Report jobs that need a look; exit 1 if any, 0 if all is well.

    A job is reported when it is missed (declared with a schedule, and no
    run started within its grace after a due time) or late (its run
    started after that), overdue (declared with expect_every and no run
    started within that period plus its grace), when its last run failed,
    timed out, was terminated or was lost (a lost run is only that, however
    long ago it died), or when it ran longer than its max_duration; a
    schedule this machine cannot read (a time zone its system lacks) is
    bad-schedule. A database that holds no job at all is a problem too
    (no-jobs): a probe given the wrong --database must not pass. Everything
    is judged by the database server's clock. Call it from any monitoring
    system.

    Runs are judged, not attempts: a run that succeeded on a retry is well,
    and a run whose three attempts failed is one problem, its detail saying
    "(3 attempts)". With --json, each problem holds the run judged
    (machine, exit_code, attempts, slot, error; times in UTC).

    With --notify, check also tells someone: when a job goes from well to
    failing (missed, overdue, lost, too long at once; failed or timed out
    once alert_after runs in a row have), one message goes to each URL, and
    one more when it recovers; nothing while it stays as it was, however
    often check runs and on however many machines. A channel that does not
    answer within 5 s holds nothing up: the message is tried again by the
    next check (`processcache alerts` lists them). Give every machine that
    runs check the same --notify.

    What check did goes to stdout with the table (a line per alert queued
    or sent; with --json, "changes" and "deliveries"); stderr carries only
    what needs a person: a database that cannot be read, a message that
    could not be sent (it is tried again later). With -q, stdout stays
    empty, so a crontab line needs no > /dev/null and cron mails errors
    only, once.

    With --ping, an outside service (healthchecks.io, Cronitor) watches
    the checker: it is pinged each time check has judged every job, and
    told of a failure (/fail) when the database cannot be read; when the
    checking machine is down, the pings stop and the service alerts.

    \b
    Examples:
        processcache check --json
        * * * * *  processcache check -q --notify https://hooks.example.org/cron --ping https://hc-ping.com/<uuid>

    A token in a --notify URL shows in `ps`: set PROCESSCACHE_NOTIFY on a
    line of its own at the top of the crontab instead (cron passes it on;
    on the job's line itself, the shell cron starts shows it):

    \b
        PROCESSCACHE_NOTIFY=smtp://mail.internal?to=ops@example.org https://hooks.example.org/T0KEN
        * * * * *  processcache check -q --ping https://hc-ping.com/<uuid>
    """
    from ..monitor.check import judge
    from ..monitor.check import problems as problems_of
    from ..monitor.pings import pinged

    writes = bool(notify_urls)  # alert states live in the database: --notify needs a user that may write
    changes: list = []
    delivered: list = []
    with pinged(ping_url), opened(database, read_only=not writes) as db:
        verdicts = judge(db, parse_duration(grace, "--grace"))
        problems = problems_of(db, verdicts)
        if notify_urls:
            from ..monitor.alerts import notify

            changes, delivered = notify(db, verdicts, notify_urls)
    for attempt in delivered:
        if attempt.error:
            click.echo(shown(f"processcache: message {attempt.delivery_id} to {attempt.channel} was not sent:"
                             f" {attempt.error} (a later check --notify tries again)"), err=True)
    if as_json and not quiet:
        echo_json({"ok": not problems, "problems": problems, "changes": changes, "deliveries": delivered})
    elif not quiet:
        _echo_alerted(changes, delivered)
        echo_table(["JOB", "PROBLEM", "RUN", "DETAIL"], [[p.job, p.kind, p.run_id, p.detail] for p in problems],
                   empty="all jobs are well")
    sys.exit(1 if problems else 0)


def _echo_alerted(changes: list, delivered: list) -> None:
    """What check --notify did, on stdout with the table: a line per alert queued and per message sent."""
    for change in changes:
        click.echo(shown(f"processcache: {change.job} {change.event}" + (
            " (muted: no message)" if change.muted else f": {change.queued} message(s) queued")))
    for attempt in delivered:
        if not attempt.error:
            click.echo(shown(f"processcache: message {attempt.delivery_id} to {attempt.channel}: sent"))


@click.command()
@click.option("--runs-older-than", metavar="DURATION", help="Delete runs that started longer ago (e.g. 30d).")
@click.option("--logs-older-than", metavar="DURATION", help="Delete logs written longer ago (e.g. 14d).")
@click.option("--keep-failed-for", metavar="DURATION",
              help="Keep failed, timed-out, lost and terminated runs and their logs this long instead (e.g. 90d).")
@click.option("--skipped-older-than", metavar="DURATION",
              help="Delete skipped copies of runs sooner: those that started longer ago (e.g. 2d).")
@click.option("--expired", is_flag=True, help="Delete expired cache entries for good.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@database_option
@json_option
@one_line_errors
def prune(runs_older_than, logs_older_than, keep_failed_for, skipped_older_than, expired, dry_run, database,
          as_json):
    """Delete old runs and logs and expired entries, in small batches.

    Live cache entries are never touched, and neither is, whatever its
    age, what `check` and the report judge by, with its logs: per job and
    machine, the latest run not skipped (the failure check shows), the
    latest that ended (too long?) and the latest success
    (ctx.last_success() returns it). Skipped copies (a held lock, a
    once_per slot taken) go with the rest, or sooner with
    --skipped-older-than.

    \b
    Example (in a daily crontab):
        processcache prune --runs-older-than 30d --logs-older-than 14d --keep-failed-for 90d --expired
    """
    if runs_older_than is None and logs_older_than is None and skipped_older_than is None and not expired:
        raise click.UsageError("say what to prune: --runs-older-than, --logs-older-than, --skipped-older-than"
                               " and/or --expired")
    runs_age, logs_age, failed_age, skipped_age = (
        None if value is None else parse_duration(value, option) for value, option in
        [(runs_older_than, "--runs-older-than"), (logs_older_than, "--logs-older-than"),
         (keep_failed_for, "--keep-failed-for"), (skipped_older_than, "--skipped-older-than")])
    with opened(database, read_only=dry_run) as db:
        prune_history = functools.partial(db.history.prune, runs_older_than=runs_age, logs_older_than=logs_age,
                                          keep_failed_for=failed_age, expired=expired,
                                          skipped_older_than=skipped_age)
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
