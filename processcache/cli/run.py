"""``processcache run``: what cron starts every minute, so it imports only what a run needs.

Loading the target, running it and recording the run are the library's
(`processcache.loader`, `processcache.run.runner`); here are the command line,
the exit codes and the lines a run prints.
"""

import sys
from typing import NoReturn

import click

from ..records import LogRecord
from ..storage import shown
from .format import database_option, echo_json, json_option, one_line_errors
from .style import coloured

EXIT_USAGE = 2

#: The options of a run that `run` and `exec` share, as (flag, JobOptions field, help).
_CONTROL = (
    ("--timeout", "timeout", "Stop an attempt that runs longer (e.g. 2h): the run ends timed-out, exit 124."),
    ("--kill-after", "kill_after", "How long a command stopped by --timeout or a signal has between SIGTERM "
                                   "and SIGKILL [default: 10s]."),
    ("--lost-lease-grace", "lost_lease_grace", "How long a command whose run lost its lock has between SIGTERM and "
                                               "SIGKILL [default: 0: SIGKILL at once, as another run may hold the "
                                               "lock already]."),
    ("--retries", "retries", "Run a failed or timed-out attempt again, up to N times, under the same lock."),
    ("--retry-delay", "retry_delay", "Wait this long before the first retry (e.g. 5m) [default: 0]."),
    ("--retry-backoff", "retry_backoff", "Multiply the delay by this before each later retry (e.g. 2)."),
    ("--once-per", "once_per", "Run at most once per slot of this length (e.g. 1h, on the hour by the database "
                               "server's clock), or per due time of the job's schedule (schedule), across every "
                               "machine; the others are skipped, exit 75."),
    ("--skip-if-succeeded-within", "skip_if_succeeded_within",
     "Skip (exit 75) when a run of the job succeeded this recently on any machine (e.g. 20h): anacron's catch-up."),
    ("--output-tail", "output_tail", "Bytes of stdout and of stderr stored with the run (e.g. 1MiB; 0: none) "
                                     "[default: 64KiB]."),
    ("--down-wait", "down_wait", "With --if-database-down skip or run: how long to try to reach the database, "
                                 "from the start, before skipping or running without it [default: 10s]."),
    ("--pool", "pool", "A farm-wide concurrency pool: at most its size of its jobs' runs at once, every machine "
                       "together; when it is full the run waits (--overlap wait) or is skipped, exit 75."),
    ("--pool-size", "pool_size", "The pool's size when `processcache pool set` gave it none [default: 1]."),
    ("--catch-up", "catch_up", "With --schedule: what this start does about due times no run answered within "
                               "--catch-up-window: all (run each, oldest first), latest (run the newest once) or "
                               "skip; each runs once across the farm, with PROCESSCACHE_SLOT set for exec."),
    ("--catch-up-window", "catch_up_window", "How far back --catch-up looks [default: 6h]."),
    ("--after-within", "after_within", "With --after and no --schedule: how recent an upstream's success must be "
                                       "[default: 1d]."),
)


def control_options(func):
    """--timeout, --retries, --once-per...: a run's control, on `run` (over the job's) and `exec`."""
    func = click.option("--if-database-down", "if_database_down", type=click.Choice(["fail", "skip", "run"]),
                        help="When the database cannot be reached: fail (exit 1), skip (exit 75), or run the job "
                             "without it, no lock held, its record kept in this machine's spool and stored once "
                             "the database is back [default: the job's, else fail].")(func)
    func = click.option("--down-runs-once-per", "down_runs_once_per", is_flag=True, default=None,
                        help="Allow --if-database-down run with --once-per or --skip-if-succeeded-within: a slot "
                             "may then run on several machines.")(func)
    func = click.option("--after", "after", multiple=True, metavar="GROUP/JOB",
                        help="An upstream job (again for several): run only once it has done its work (since "
                             "its own due time, if it has a schedule), else wait (--overlap wait) or skip, "
                             "exit 75.")(func)
    func = click.option("--keep-failed-slot", "keep_failed_slot", is_flag=True, default=None,
                        help="With --once-per: a slot whose run failed stays closed to this run (it is skipped) "
                             "[default: this run takes a failed slot over]. Give it on every machine's line.")(func)
    metavars = {"retries": "N", "retry_backoff": "FACTOR", "output_tail": "SIZE", "pool": "NAME", "pool_size": "N",
                "catch_up": "all|latest|skip"}
    for flag, field, text in reversed(_CONTROL):
        func = click.option(flag, field, metavar=metavars.get(field, "DURATION"), help=text)(func)
    return func


def parse_control(given: dict) -> dict:
    """The run-control options given on the command line as JobOptions keywords (None: the job's own).

    A malformed one is a usage error: exit 2 and one line, before any database opens.
    """
    from ..errors import ProcessCacheError
    from ..options import CATCH_UP_MODES, JobOptions

    changes = {field: given.pop(field) for _flag, field, _text in _CONTROL}
    changes["if_database_down"] = given.pop("if_database_down")
    changes["down_runs_once_per"] = given.pop("down_runs_once_per")
    changes["after"] = given.pop("after") or None
    keep = given.pop("keep_failed_slot")
    changes["reopen_failed_slot"] = None if keep is None else not keep
    for count in ("retries", "pool_size"):
        if changes[count] is not None and changes[count].isdigit():
            changes[count] = int(changes[count])
    if changes["retry_backoff"] is not None:
        try:
            changes["retry_backoff"] = float(changes["retry_backoff"])
        except ValueError:
            pass  # JobOptions says what it takes
    changes = {name: value for name, value in changes.items() if value is not None}
    checked = {name: value for name, value in changes.items()
               if (name, value) != ("once_per", "schedule") and name != "catch_up"}
    if changes.get("catch_up") not in (None, *CATCH_UP_MODES):
        raise click.UsageError(f"--catch-up {changes['catch_up']!r}: use all, latest or skip")
    try:  # "schedule" and catch_up are checked against the job's schedule when the run's options are made
        JobOptions().replace(**checked)
    except ProcessCacheError as exc:
        raise click.UsageError(str(exc)) from None
    return changes


def run_options(func):
    """What every recorded run takes on the command line, `run` and `exec` alike."""
    for option in reversed((
        database_option,
        click.option("--machine", "-m", metavar="NAME",
                     help="The machine the run is recorded on [default: this host's name]."),
        click.option("--overlap", type=click.Choice(["skip", "wait", "allow"]),
                     help="When another run holds the job's lock: skip (exit 75), wait for it, or allow "
                          "running beside it [default: the job's, else skip]."),
        click.option("--wait-timeout", metavar="DURATION",
                     help="How long --overlap wait waits (e.g. 10m); refused with any other overlap."),
        click.option("--quiet", "-q", is_flag=True,
                     help="Print nothing if the run succeeds or is skipped; if it fails, print everything at "
                          "the end (for crontabs: cron then mails failures only)."),
        control_options,
    )):
        func = option(func)
    return func


@click.command()
@click.argument("target")
@run_options
@click.option("--job", "-j", "job_name", metavar="GROUP/JOB",
              help="The job TARGET holds. If TARGET cannot be loaded, a failed run is recorded under this "
                   "name, so `processcache check` reports it. Give it in crontabs.")
@json_option
@one_line_errors
def run(target, database, machine, overlap, wait_timeout, quiet, job_name, as_json, **control):
    """Run the job TARGET once, recorded. The job's logs go to stderr, and a
    last line says how the run ended.

    TARGET is path/to/file.py:attr or package.module:attr, where attr is a
    function decorated with @job. Without :attr, the module's only job runs
    (a module with several lists them; --job picks one). A package.module
    is looked for in the current directory, as `python -m` does, then among
    installed packages; a file's own folder is searched for the modules it
    imports. Neither hides the standard library (a job may be email.py) nor
    processcache's own dependencies: a stray cronsim.py beside the job is
    left alone, and a line names it.

    A job whose code no longer loads (a dependency missing after a deploy,
    a wrong path) never runs, so nothing records it, unless --job names it:
    then the load error is recorded as a failed run of that job, and the
    crontab line is checked to hold the job it names.

    With -q, nothing at all is printed when the run succeeds or is skipped;
    when it fails, all it would have printed comes at the end: what the job
    and the programs it started wrote, its logs, the traceback, the last
    line (the first 64 KiB and the last 1 MiB of stdout and of stderr,
    held in memory, never on disk). cron mails what a job prints, so with
    -q it mails failures only.

    \b
    Exit codes:
      0      the run succeeded
      1      it failed or lost its lock; its TARGET did not load; or how
             it ended could not be stored (both that and why are printed)
      2      usage error: a wrong option, or TARGET defines no job or several
      75     skipped: another run holds the job's lock (EX_TEMPFAIL), or
             the database is down and --if-database-down is skip
      128+n  signal n stopped it: SIGHUP 129, SIGINT 130, SIGTERM 143
             (a second signal exits at once)

    \b
    Examples:
        processcache run examples/hello.py:hello
        processcache run mypackage.jobs:hello --database postgresql://cron@db/cron
        processcache run --job example/hello-world examples/hello.py \\
            --machine desktop-main --database sqlite:///state.db

    \b
    In a crontab, mailing ops@example.com only when a run fails:
        MAILTO=ops@example.com
        0 * * * *  processcache run -q --job example/hello-world /srv/jobs/hello.py:hello
    """
    from ..run.runner import run_job

    changes = parse_control(control)
    spec = _load(target, job_name, database, machine)
    _check_wait_timeout(overlap or spec.options.overlap, overlap, wait_timeout, f"{spec.group}/{spec.name}")

    def call():
        _say_passed_over()  # under -q, shown with the rest when the run fails
        return run_job(spec, database=database, machine=machine, echo=_echo_log, overlap=overlap,
                       wait_timeout=wait_timeout, **changes)

    _run_and_exit(call, quiet, as_json)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--job", "-j", "job_name", metavar="GROUP/JOB", required=True,
              help="The job the command's runs are recorded as (required).")
@run_options
@click.option("--lock", type=click.Choice(["job", "machine"]),
              help="Lock the job across every machine (job) or per machine [default: job].")
@click.option("--scope", type=click.Choice(["job", "machine"]),
              help="Whose runs --skip-if-succeeded-within looks at: every machine's (job) or this one's "
                   "[default: the lock's].")
@click.option("--lease", metavar="DURATION", help="How long the lock lives without a heartbeat [default: 60s].")
@click.option("--expect-every", metavar="DURATION",
              help="`processcache check` reports the job overdue when no run started within this period.")
@click.option("--max-duration", metavar="DURATION", help="`processcache check` reports runs that take longer.")
@click.option("--schedule", metavar="CRON", help="When the job is due, as in the crontab ('0 3 * * *'): `check` "
                                                  "reports it missed when no run starts within --grace after.")
@click.option("--timezone", metavar="ZONE", help="The time zone --schedule is read in (Europe/Berlin) [default: UTC].")
@click.option("--grace", metavar="DURATION", help="How late a due run may start [default: check's --grace, 1m].")
@click.option("--alert-after", metavar="N", type=click.IntRange(min=1),
              help="Failed runs in a row before `check --notify` alerts [default: 1].")
@click.option("--ping", metavar="URL", help="A healthchecks.io or Cronitor URL pinged at the run's start and end.")
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@one_line_errors
def exec_(job_name, database, machine, overlap, wait_timeout, quiet, lock, scope, lease, expect_every, max_duration,
          schedule, timezone, grace, alert_after, ping, as_json, command, **control):
    """Run COMMAND as a recorded run of GROUP/JOB: locked, timed, retried, once per slot, its output kept.

    Any program can be a job: a backup script, rsync, pg_dump, a binary.
    It runs directly, not through a shell (write sh -c '...' for one),
    with its stdout and stderr passed through; the last 64 KiB of each
    are stored with the run (`processcache logs --run ID` shows them).
    SIGTERM, SIGINT and SIGHUP are passed on to it (SIGKILL follows
    after --kill-after), and the run ends terminated. Options after
    COMMAND are the command's: put -- before it when it starts with -.

    Supervision: the command runs under a small reaper process that is the
    parent of everything it starts (setsid and double forks included). A
    timeout or a signal sends SIGTERM to that whole tree and SIGKILL after
    --kill-after; a lost lock sends SIGKILL at once (--lost-lease-grace
    gives SIGTERM first); when processcache itself dies (kill -9, the OOM
    killer) the tree gets SIGTERM and SIGKILL after --kill-after (at most a
    third of the lease). Children the command leaves running when it exits
    are stopped the same way, and a WARNING of the run names them.

    \b
    Exit codes:
      the command's own: 0 succeeded, any other failed (recorded), except
             75 and 124, reported as 1 (the record keeps the command's own)
      75     skipped: another run holds the lock, or the slot ran already,
             or the database is down and --if-database-down is skip
      124    the command ran past --timeout and was stopped
      126    COMMAND is not executable; 127: COMMAND was not found
      128+n  signal n stopped the command, or processcache
      2      usage error: a wrong option, no --job, no COMMAND

    \b
    Examples:
        processcache exec --job backups/pg -- pg_dump -Fc -f /srv/backup/app.dump app
        processcache exec --job sync/photos --timeout 2h --retries 2 --retry-delay 5m -- \\
            rsync -a /srv/photos/ backup:/photos/

    \b
    In a crontab on three machines, one of them running each hour's slot,
    mailing only failures:
        MAILTO=ops@example.com
        0 * * * *  processcache exec -q --job reports/hourly --once-per 1h -- /srv/bin/report
    """
    from ..errors import ProcessCacheError
    from ..options import JobOptions
    from ..run.command import run_command
    from ..run.runner import parse_job_name

    changes = parse_control(control)
    _check_wait_timeout(overlap or "skip", overlap, wait_timeout, job_name)
    try:
        group, name = parse_job_name(job_name)
        options = JobOptions.parse(**changes, overlap=overlap, wait_timeout=wait_timeout, lock=lock, scope=scope,
                                   lease=lease, expect_every=expect_every, max_duration=max_duration,
                                   schedule=schedule, timezone=timezone, grace=grace, alert_after=alert_after,
                                   ping=ping)
    except ProcessCacheError as exc:
        raise click.UsageError(str(exc)) from None
    _run_and_exit(lambda: run_command(command, group, name, options, database, machine, _echo_log), quiet, as_json)


def _run_and_exit(call, quiet: bool, as_json: bool) -> NoReturn:
    """Run *call* (a recorded run) under -q and the signal handlers; print how it ended and exit with its code."""
    from ..errors import DatabaseUnavailableError, RunNotRecordedError
    from ..records import EXIT_FAILED, EXIT_OK, EXIT_SKIPPED, exit_code
    from ..run.quiet import HeldOutput
    from ..run.signals import Terminated, terminate_on_signals

    try:
        with HeldOutput(quiet) as output, terminate_on_signals():
            record = call()
            output.discard = quiet and exit_code(record) in (EXIT_OK, EXIT_SKIPPED)
    except RunNotRecordedError as unrecorded:
        click.echo(f"processcache: {unrecorded}", err=True)
        stopped = unrecorded.original
        sys.exit(stopped.exit_code if isinstance(stopped, Terminated) else EXIT_FAILED)
    except DatabaseUnavailableError as down:  # before the run was recorded: the job did not run
        click.echo(shown(f"processcache: {down}: the run was not recorded, and the job did not run"), err=True)
        sys.exit(EXIT_FAILED)
    except Terminated as stopped:
        if stopped.run is not None:
            _summary(stopped.run)
            if as_json:
                echo_json(stopped.run)
        else:
            click.echo(f"processcache: {stopped} before the run began", err=True)
        sys.exit(stopped.exit_code)
    if not output.discard:
        _summary(record)
    if as_json:
        echo_json(record)
    sys.exit(exit_code(record))


def _load(target, job_name, database, machine):
    """The job to run. A target that fails to load is recorded as a failed run of the job --job names.

    An error raised inside the user's module is printed as a traceback that
    starts at the user's code (without --job too), not at click's frames.
    """
    from ..errors import ProcessCacheError
    from ..loader import load_target
    from ..records import EXIT_FAILED
    from ..run.runner import record_load_failure, select_job
    from ..run.session import user_traceback

    try:
        spec = select_job(target, load_target(target), job_name)
    except Exception as error:
        _say_passed_over()
        if job_name is not None:
            record = record_load_failure(job_name, error, database, machine)
            if record.traceback:  # the user's code raised; a LoadError's one line is the summary's
                click.echo(shown(record.traceback.rstrip(), lines=True), err=True)
            _summary(record)
            sys.exit(EXIT_FAILED)
        if isinstance(error, ProcessCacheError):
            raise  # one line
        click.echo((user_traceback(error) or "").rstrip(), err=True)
        sys.exit(EXIT_FAILED)
    return _only_job(target, spec) if isinstance(spec, list) else spec


def _say_passed_over() -> None:
    """Name each file beside the job that is named like one of processcache's dependencies, and left alone."""
    from ..loader import passed_over

    for name, path in passed_over():
        click.echo(shown(f"processcache: {path} is not imported as {name}: processcache and the job import the"
                         f" installed {name} (rename the file if the job means its own)"), err=True)


def _check_wait_timeout(chosen: str, overlap: str | None, wait_timeout: str | None, job: str) -> None:
    """Refuse --wait-timeout where nothing waits: ignoring it would let a crontab line say what does not happen."""
    if wait_timeout is not None and chosen != "wait":
        given = f"--overlap {overlap}" if overlap else f"{job} has overlap={chosen!r}"
        _usage_error(f"--wait-timeout applies only to --overlap wait ({given}): add --overlap wait,"
                     " or leave out --wait-timeout")


def _usage_error(message: str) -> NoReturn:
    """A usage error in one line, exit 2: a crontab's mail shows it whole."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _summary(record) -> None:
    outcome = record.status if record.duration is None else f"{record.status} in {record.duration:.3f} s"
    if record.status == "skipped":
        outcome = record.error
    elif not record.ok:
        outcome += f": {record.error}"
    run = f" run {record.id}" if record.id else ""  # 0: a run the database, being down, does not hold (yet)
    if not record.id and record.status != "skipped":
        outcome += "; kept in this machine's spool until the database is back (`processcache spool`)"
    click.echo(shown(f"processcache: {record.group}/{record.job}{run} on {record.machine} {outcome}"), err=True)


def _only_job(target, specs):
    if len(specs) == 1:
        return specs[0]
    if not specs:
        _usage_error(f"{target} defines no job: decorate a function with @job(\"group\", \"name\")")
    listing = "\n".join(f"  {target}:{spec.__name__}  ({spec.group}/{spec.name})" for spec in specs)
    _usage_error(f"{target} defines {len(specs)} jobs; run one of them:\n{listing}")


def _echo_log(record: LogRecord) -> None:
    prefix = coloured(f"[{record.level or record.type.value}]", record.type.value, sys.stderr)
    click.echo(f"{prefix} {shown(record.message, lines=True)}", err=True)


