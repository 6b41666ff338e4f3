"""The ``processcache`` command: parse, call the library, format. Nothing else."""

import importlib
import sys
from typing import NoReturn

import click

from .. import __version__
from .format import database_option, echo_json, json_option, one_line_errors
from .style import coloured
from ..records import LogRecord

EXIT_USAGE = 2


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists it).

    ``processcache run`` is what cron starts every minute: it should not pay
    for importing the operations and cache commands.
    """

    lazy = {name: "ops" for name in ("jobs", "runs", "logs", "locks", "check", "prune")} | {"cache": "cache"}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            module = importlib.import_module(f"processcache.cli.{self.lazy[name]}")
            self.add_command(getattr(module, name))
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        """Click's, suggesting the closest command among the lazy ones too (``jbos``: did you mean 'jobs'?)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            name = args[0]
            raise click.exceptions.NoSuchCommand(name, possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="processcache")
def main():
    """Keep what cron and batch jobs fetched between runs, and record every run.

    \b
    Run a job (a function decorated with @job) from a crontab:
        processcache run jobs/hello.py:hello
        processcache run mypackage.jobs:hello --database postgresql://cron@db/cron
    """


@main.command()
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
@click.option("--job", "-j", "job_name", metavar="GROUP/NAME",
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


@main.group()
def db():
    """Create, check or recreate processcache's tables."""


@db.command()
@database_option
@click.option("--mode", type=click.Choice(["create", "check", "new"]), default="create", show_default=True,
              help="create: add what is missing, keep all data. check: report differences, change "
                   "nothing (exit 1 if any). new: drop every processcache table and its data, then recreate.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --mode new destroys data.")
@json_option
@one_line_errors
def sync(database, mode, yes, as_json):
    """Bring the database's schema in line with this version of processcache.

    Tables are also created on first use, so this is never needed before a
    first run; use it to prepare a shared database, or to check one.

    \b
    Examples:
        processcache db sync --database postgresql://cron@db.internal/cron
        processcache db sync --mode check
        processcache db sync --mode new --yes      # destroys all cached data
    """
    from ..storage.database import connect

    with connect(database, create=False, read_only=mode == "check") as opened:
        if mode == "new" and not yes:
            click.confirm(f"Drop every processcache table in {opened.url} with all its data?", abort=True)
        differences = opened.sync(mode)
        if as_json:
            echo_json({"database": opened.url, "mode": mode, "differences": differences})
        elif not differences:
            click.echo(f"{opened.url}: the schema is up to date")
        elif mode == "check":
            click.echo("\n".join(f"{opened.url}: {line}" for line in differences))
        else:
            click.echo(f"{opened.url}: created {len(differences)} missing table(s) and column(s)")
        sys.exit(1 if differences and mode == "check" else 0)



@db.command()
@database_option
@json_option
@one_line_errors
def upgrade(database, as_json):
    """Upgrade a database written by an older processcache, keeping every row.

    Runs by itself on first use too; this is for doing it at a time of your
    choosing (before a deploy, say). A database written by a newer
    processcache is refused, not changed.

    \b
    Example:
        processcache db upgrade --database postgresql://cron@db.internal/cron
    """
    from ..storage.database import connect
    from ..storage.store import describe

    with connect(database, upgrade=False, create=False) as opened:
        before, after = opened.upgrade()
    if as_json:
        echo_json({"database": opened.url, "before": describe(before), "after": describe(after)})
        return
    click.echo(f"{opened.url}: " + (f"upgraded the schema from version {describe(before)} to {describe(after)}"
                                    if before != after else f"the schema is at version {describe(after)} already"))
