"""What the jobs did: ``runs`` (and ``runs show ID``) and ``logs``. Parse, call `Database`'s reports, format."""

import json
import sys
import textwrap
import time
from datetime import datetime, timedelta

import click

from ..durations import format_duration, parse_since
from ..errors import ProcessCacheError
from ..records import RUN_STATUSES, AttemptRecord, LogRecord, RunDetail
from ..storage import shown
from .format import (
    complete_jobs,
    database_option,
    echo_json,
    echo_table,
    json_line,
    json_option,
    one_line_errors,
    opened,
    read_url_option,
    run_status,
    table_lines,
)
from .style import local_time, show_time, zone_label
from .subcommands import refuse_listing_options

#: `logs` counts what a page leaves out up to here: a count of a farm's every log reads millions (0.5 s at 10M).
COUNTED_LOGS = 10_000


def since_option(what: str):
    """--since as `runs` and `logs` share it: `durations.parse_since`'s moment, or None."""
    return click.option("--since", metavar="WHEN", callback=_parse_since,
                        help=f"Only {what} since a duration ago (1h, 2d) or a UTC time (2026-11-24T03:00).")


def _parse_since(_ctx, _param, text: str | None) -> datetime | timedelta | None:
    try:
        return None if text is None else parse_since(text)
    except ProcessCacheError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("words", nargs=-1, metavar="[GROUP[/JOB] | show ID]", shell_complete=complete_jobs)
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--machine", "-m", metavar="NAME", help="Only runs on this machine.")
@click.option("--skipped", "show_skipped", is_flag=True,
              help="Also the skipped copies (a held lock, a once_per slot taken, a recent success).")
@since_option("runs that started")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs.")
@read_url_option
@database_option
@json_option
@click.pass_context
@one_line_errors
def runs(click_ctx, words, status, machine, show_skipped, since, limit, database, as_json):
    """Runs, newest first, with their status and error; `runs show ID` prints one run whole.

    GROUP/JOB lists one job's runs, GROUP those of every job of the group.
    A run whose process died (its heartbeat stopped) shows as lost; one
    stopped by its timeout, as timed-out. A run that retried says how many
    attempts it made: "failed (3 attempts)" is one run whose three attempts
    failed. The EXIT column, there when a run of `processcache exec` is
    listed, holds the command's own exit code (128+n: killed by signal n).
    Skipped copies (cron fired while the lock was held, a once_per slot
    was taken or a recent success made the work done) are left out:
    --skipped lists them too, --status skipped only them.

    `runs show ID` prints the run's start and end in UTC and in local time,
    its duration (and, for a run of overlap="wait", how long it waited for
    the lock before it: apart, not in its duration), the code `processcache run` or `exec` exited with (124
    for a timeout, a failed command's own code), the once_per slot it
    claimed, its result, error and traceback, each of its attempts when it
    retried, then its logs, among them what it printed: its STDOUT and
    STDERR logs (the end of each, 64 KiB by default, stored when it ended).
    `show` first always means that; the runs of a group named show are
    `runs show/`.

    \b
    Examples:
        processcache runs billing --since 1d --status failed
        processcache runs --status timed-out --since 7d
        processcache runs example/hello-world --machine desktop-main --limit 50 --json
        processcache runs show 1234
    """
    if words[:1] == ("show",):
        refuse_listing_options(click_ctx, "runs show", "status", "machine", "show_skipped", "since", "limit")
        _show_run(words[1:], database, as_json)
        return
    if len(words) > 1:
        raise click.UsageError(f"one GROUP or GROUP/JOB, not {len(words)} words: `processcache runs billing`,"
                               " `processcache runs billing/sync-invoices` or `processcache runs show ID`")
    with opened(database) as db:
        found = db.list_runs(words[0] if words else None, status=status, machine=machine,
                             since=since, limit=limit, skipped=show_skipped)
    if as_json:
        echo_json(found)
        return
    echo_table(["RUN", "JOB", "MACHINE", "STARTED", "STATUS", "EXIT", "DURATION", "ERROR"], [
        [r.id, r.name, r.machine, r.started_at, run_status(r), r.exit_code, r.duration, r.error] for r in found],
        empty="no runs match", optional=("EXIT",))


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
              ("status", run.status + (_LATE if run.late else "")),
              ("started", _utc_and_local(run.started_at)),
              ("finished", _utc_and_local(run.finished_at)), ("duration", format_duration(run.duration)),
              *([("waited", _waited(run.waited))] if run.waited is not None else []),
              ("exit code", _exit_code(detail)),
              *([("slot", f"{_utc_and_local(run.slot)} (the once_per slot it claimed)")] if run.slot else []),
              ("result", None if run.result is None else json.dumps(run.result)), ("error", run.error)]
    for label, value in fields:
        click.echo(f"{label + ':':<11}{'-' if value is None else shown(value)}")
    if run.traceback:
        click.echo("traceback:\n" + textwrap.indent(shown(run.traceback.rstrip("\n"), lines=True), "  "))
    if run.attempts is not None or detail.attempts:
        click.echo(f"attempts:  {run.attempts or len(detail.attempts)}")
        _print_attempts(detail.attempts)
    click.echo(f"logs:      {len(detail.logs)}")
    _print_logs(detail.logs, False)


def _waited(seconds: float) -> str:
    """How long a run of overlap="wait" waited for its lock, which its duration leaves out."""
    if seconds < 0:
        return "waiting for its lock now"
    return f"{format_duration(seconds)} for its lock (not in its duration)"


#: What `runs show` adds to the status of a run recorded late (`RunRecord.late`).
_LATE = (" (recorded late: it ran while the database was down, kept in its machine's spool; its times are that"
         " machine's clock)")


def _exit_code(detail: RunDetail) -> str | None:
    """The code processcache exited with, and the command's own when it differs (a timed-out command's 143)."""
    own = detail.run.exit_code
    if own is None or own == detail.exit_code:
        return None if detail.exit_code is None else str(detail.exit_code)
    return f"{'-' if detail.exit_code is None else detail.exit_code} (the command's own: {own})"


def _print_attempts(attempts: list[AttemptRecord]) -> None:
    """Each attempt of a run that retried, one line each under the run's fields."""
    if not attempts:
        return
    for line in table_lines(["#", "STATUS", "STARTED", "EXIT", "DURATION", "ERROR"], [
            [a.number, a.status, a.started_at, a.exit_code, a.duration, a.error] for a in attempts],
            optional=("EXIT",)):
        click.echo("  " + line)


def _utc_and_local(moment: datetime | None) -> str | None:
    """A time as stored (UTC) and in this machine's zone (TZ), for a reader in either."""
    if moment is None:
        return None
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC, {local_time(moment):%Y-%m-%d %H:%M:%S %Z} local"


@click.command()
@click.argument("job", required=False, metavar="[GROUP[/JOB]]", shell_complete=complete_jobs)
@click.option("--run", "run_id", type=int, metavar="ID", help="Only the logs of this run.")
@click.option("--type", "log_type", type=click.Choice(["GENERIC", "WARNING", "ERROR"], case_sensitive=False),
              help="Only logs of this type (what a run printed is GENERIC: its STDOUT and STDERR logs).")
@click.option("--machine", "-m", metavar="NAME", help="Only logs written on this machine.")
@since_option("logs written")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many logs: the newest ones, or the ones before the newest --offset."
                   " With --follow, -n 0 prints only the logs to come.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many of the newest first, to page back.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new logs as they are written (Ctrl-C stops).")
@read_url_option
@database_option
@json_option
@one_line_errors
def logs(job, run_id, log_type, machine, since, limit, offset, follow, database, as_json):
    """Logs of every job, of a group's or of one job's, oldest first; by default the newest 100.

    --offset pages back: --offset 100 shows the 100 logs before those. When
    a page leaves logs out, a line on stderr says how many there are, so
    stdout stays clean for pipes.

    Each log is a line: time, job, machine, run, [level] and message. A
    message of several lines (a traceback; what a run printed, stored when
    it ends as one log of level STDOUT and one of level STDERR) starts on
    the next line, each of its lines indented by two spaces.

    \b
    Examples:
        processcache logs example/hello-world --type error --since 12h
        processcache logs billing --run 1234
        processcache logs example/hello-world --follow -n 0
    """
    with opened(database) as db:
        if isinstance(since, timedelta):  # one moment for the page, the count and --follow, not one per query
            since = db.clock.now() - since
        filters = {"run": run_id, "type": log_type, "machine": machine, "since": since}
        found = db.logs(job, **filters, limit=limit, offset=offset)
        if limit and (len(found) == limit or offset):
            total = db.count_logs(job, **filters, at_most=COUNTED_LOGS + 1)
            if total > len(found):
                of = f"more than {COUNTED_LOGS:,}" if total > COUNTED_LOGS else f"{total}"
                click.echo(f"showing {len(found)} of {of} logs (use --limit, or --offset to page back)", err=True)
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


def _print_logs(found: list[LogRecord], as_json: bool) -> None:
    if as_json:  # one JSON object a line, so --follow can stream
        for record in found:
            click.echo(json_line(record))
        return
    for record in found:
        level = record.level or record.type.value
        head = shown(f"{record.group}/{record.job} {record.machine} run {record.run_id or '-'} [{level}]")
        click.echo(f"{show_time(record.created_at)} {zone_label()} {head}{_message(record.message)}")
    sys.stdout.flush()


def _message(text: str) -> str:
    """A log's message after its line's head: one line on it; several below it, indented, so they line up
    and no line of a program's output can be read as a log of its own; escaped (`texts.shown`), so none
    can move the cursor to print over another."""
    text = shown(text.rstrip("\n"), lines=True)
    if "\n" not in text:
        return f" {text}" if text else ""
    return "\n" + textwrap.indent(text, "  ", lambda line: True)


