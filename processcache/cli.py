"""The ``processcache`` command: parse, call the library, format. Nothing else."""

import functools
import sys

import click

from . import __version__
from .errors import ProcessCacheError
from .records import LogRecord

EXIT_USAGE = 2


def _database_option(func):
    return click.option(
        "--database", "-d", metavar="URL", envvar="PROCESSCACHE_DATABASE_URL", show_envvar=True,
        help="sqlite:///file.db, postgresql://user@host/db or mysql://user@host/db "
             "[default: processcache.db in your user data folder]")(func)


def _one_line_errors(func):
    """Show a ProcessCacheError as one line and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ProcessCacheError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@_database_option
@click.option("--machine", "-m", metavar="NAME", help="The machine the run is recorded on [default: this host's name].")
@click.option("--quiet", "-q", is_flag=True, help="Do not echo the job's logs to stderr.")
@_one_line_errors
def run(target, database, machine, quiet):
    """Run the job TARGET once, recorded, and exit 0 if it succeeded, 1 if not.

    TARGET is path/to/file.py:attr or package.module:attr, where attr is a
    function decorated with @job. Without :attr, the module's only job runs
    (a module with several lists them). The job's logs go to stderr.

    \b
    Examples:
        processcache run examples/hello.py:hello
        processcache run examples/hello.py --machine desktop-main \\
            --database sqlite:///state.db
    """
    from .loader import load_target
    from .runner import exit_code, run_job

    spec = load_target(target)
    if isinstance(spec, list):
        spec = _only_job(target, spec)
    record = run_job(spec, database=database, machine=machine, echo=None if quiet else _echo_log)
    outcome = f"{record.status} in {record.duration:.3f} s"
    if not record.ok:
        outcome += f": {record.error}"
    click.echo(f"processcache: {record.group}/{record.job} run {record.id} on {record.machine} {outcome}",
               err=True)
    sys.exit(exit_code(record))


def _only_job(target, specs):
    if len(specs) == 1:
        return specs[0]
    if not specs:
        raise click.UsageError(f"{target} defines no job: decorate a function with @job(\"group\", \"name\")")
    listing = "\n".join(f"  {target}:{spec.__name__}  ({spec.group}/{spec.name})" for spec in specs)
    click.echo(f"{target} defines {len(specs)} jobs; run one of them:\n{listing}", err=True)
    sys.exit(EXIT_USAGE)


def _echo_log(record: LogRecord) -> None:
    colour = {"WARNING": "yellow", "ERROR": "red"}.get(record.type.value)
    click.echo(click.style(f"[{record.type.value}] ", fg=colour) + record.message, err=True)


@main.group()
def db():
    """Create, check or recreate processcache's tables."""


@db.command()
@_database_option
@click.option("--mode", type=click.Choice(["create", "check", "new"]), default="create", show_default=True,
              help="create: add what is missing, keep all data. check: report differences, change "
                   "nothing (exit 1 if any). new: drop every processcache table and its data, then recreate.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --mode new destroys data.")
@_one_line_errors
def sync(database, mode, yes):
    """Bring the database's schema in line with this version of processcache.

    Tables are also created on first use, so this is never needed before a
    first run; use it to prepare a shared database, or to check one.

    \b
    Examples:
        processcache db sync --database postgresql://cron@db.internal/cron
        processcache db sync --mode check
        processcache db sync --mode new --yes      # destroys all cached data
    """
    from .database import connect

    with connect(database, create=False) as opened:
        if mode == "new" and not yes:
            click.confirm(f"Drop every processcache table in {opened.url} with all its data?", abort=True)
        differences = opened.sync(mode)
        if not differences:
            click.echo(f"{opened.url}: the schema is up to date")
        elif mode == "check":
            click.echo("\n".join(f"{opened.url}: {line}" for line in differences))
            sys.exit(1)
        else:
            click.echo(f"{opened.url}: created {len(differences)} missing table(s) and column(s)")
