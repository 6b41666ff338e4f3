"""``processcache run``: what cron starts every minute, so it imports only what a run needs.

Loading the target, running it and recording the run are the library's
(`processcache.loader`, `processcache.runner`); here are the command line,
the exit codes and the lines a run prints.
"""

import sys
from typing import NoReturn

import click

from ..records import LogRecord
from .format import database_option, echo_json, json_option, one_line_errors
from .style import coloured

EXIT_USAGE = 2


@click.command()
@click.argument("target")
@database_option
@click.option("--machine", "-m", metavar="NAME", help="The machine the run is recorded on [default: this host's name].")
@click.option("--overlap", type=click.Choice(["skip", "wait", "allow"]),
              help="When another run holds the job's lock: skip (exit 75), wait for it, or allow "
                   "running beside it [default: the job's, else skip].")
@click.option("--wait-timeout", metavar="DURATION",
              help="How long --overlap wait waits (e.g. 10m); refused with any other overlap.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print nothing if the run succeeds or is skipped; if it fails, print everything at the end "
                   "(for crontabs: cron then mails failures only).")
@click.option("--job", "-j", "job_name", metavar="GROUP/JOB",
              help="The job TARGET holds. If TARGET cannot be loaded, a failed run is recorded under this "
                   "name, so `processcache check` reports it. Give it in crontabs.")
@json_option
@one_line_errors
def run(target, database, machine, overlap, wait_timeout, quiet, job_name, as_json):
    """Run the job TARGET once, recorded. The job's logs go to stderr, and a
    last line says how the run ended.

    TARGET is path/to/file.py:attr or package.module:attr, where attr is a
    function decorated with @job. Without :attr, the module's only job runs
    (a module with several lists them; --job picks one). A package.module
    is looked for in the current directory, as `python -m` does, then among
    installed packages; a file's own folder is searched for the modules it
    imports. Neither hides the standard library: a job may be email.py.

    A job whose code no longer loads (a dependency missing after a deploy,
    a wrong path) never runs, so nothing records it, unless --job names it:
    then the load error is recorded as a failed run of that job, and the
    crontab line is checked to hold the job it names.

    With -q, nothing at all is printed when the run succeeds or is skipped;
    when it fails, all it would have printed comes at the end: what the job
    and the programs it started wrote, its logs, the traceback, the last
    line (the last 1 MiB of stdout and of stderr). cron mails what a job
    prints, so with -q it mails failures only.

    \b
    Exit codes:
      0      the run succeeded
      1      it failed or lost its lock; its TARGET did not load; or how
             it ended could not be stored (both that and why are printed)
      2      usage error: a wrong option, or TARGET defines no job or several
      75     skipped: another run holds the job's lock (EX_TEMPFAIL)
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
    from ..errors import RunNotRecordedError
    from ..quiet import HeldOutput
    from ..runner import EXIT_FAILED, EXIT_OK, EXIT_SKIPPED, exit_code, run_job
    from ..signals import Terminated, terminate_on_signals

    spec = _load(target, job_name, database, machine)
    _check_wait_timeout(spec, overlap, wait_timeout)
    try:
        with HeldOutput(quiet) as output, terminate_on_signals():
            record = run_job(spec, database=database, machine=machine, echo=_echo_log,
                             overlap=overlap, wait_timeout=wait_timeout)
            output.discard = quiet and exit_code(record) in (EXIT_OK, EXIT_SKIPPED)
    except RunNotRecordedError as unrecorded:
        click.echo(f"processcache: {unrecorded}", err=True)
        stopped = unrecorded.original
        sys.exit(stopped.exit_code if isinstance(stopped, Terminated) else EXIT_FAILED)
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
    from ..runner import EXIT_FAILED, record_load_failure, select_job
    from ..session import user_traceback

    try:
        spec = select_job(target, load_target(target), job_name)
    except Exception as error:
        if job_name is not None:
            record = record_load_failure(job_name, error, database, machine)
            assert record.traceback is not None, "a failed run's record holds the traceback of what failed"
            click.echo(record.traceback.rstrip(), err=True)
            _summary(record)
            sys.exit(EXIT_FAILED)
        if isinstance(error, ProcessCacheError):
            raise  # one line
        click.echo(user_traceback(error).rstrip(), err=True)
        sys.exit(EXIT_FAILED)
    return _only_job(target, spec) if isinstance(spec, list) else spec


def _check_wait_timeout(spec, overlap: str | None, wait_timeout: str | None) -> None:
    """Refuse --wait-timeout where nothing waits: ignoring it would let a crontab line say what does not happen."""
    chosen = overlap or spec.options.overlap
    if wait_timeout is not None and chosen != "wait":
        given = f"--overlap {overlap}" if overlap else f"{spec.group}/{spec.name} has overlap={chosen!r}"
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
    click.echo(f"processcache: {record.group}/{record.job} run {record.id} on {record.machine} {outcome}",
               err=True)


def _only_job(target, specs):
    if len(specs) == 1:
        return specs[0]
    if not specs:
        _usage_error(f"{target} defines no job: decorate a function with @job(\"group\", \"name\")")
    listing = "\n".join(f"  {target}:{spec.__name__}  ({spec.group}/{spec.name})" for spec in specs)
    _usage_error(f"{target} defines {len(specs)} jobs; run one of them:\n{listing}")


def _echo_log(record: LogRecord) -> None:
    prefix = coloured(f"[{record.level or record.type.value}]", record.type.value, sys.stderr)
    click.echo(f"{prefix} {record.message}", err=True)


