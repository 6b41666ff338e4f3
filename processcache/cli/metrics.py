"""``processcache metrics``: every job's state as Prometheus metrics, printed, written for node_exporter, or served.

Parse, call `processcache.monitor.metrics`, then print, write the file whole, or
answer scrapes. The format and the families are documented there.
"""

import contextlib
import os
import tempfile

import click
from click.core import ParameterSource

from ..durations import parse_duration
from . import listen
from .format import database_option, grace_option, one_line_errors, opened, read_url_option, reading

#: Where ``--serve`` alone listens: this machine only, on the port the OpenTelemetry Prometheus exporter uses.
DEFAULT_ADDRESS = "127.0.0.1:9464"
#: The environment variable that may give ``--token``.
TOKEN_VARIABLE = "PROCESSCACHE_METRICS_TOKEN"


@click.command()
@click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the metrics to FILE (replaced whole, never half-written: for node_exporter's"
                   " textfile collector, whose files end in .prom) instead of printing them.")
@click.option("--serve", metavar="HOST:PORT", is_flag=False, flag_value=DEFAULT_ADDRESS,
              help=f"Answer scrapes of http://HOST:PORT/metrics, reading the database at each one"
                   f" (--serve alone: {DEFAULT_ADDRESS}; port 0: any free one). Any address but this machine's"
                   " own needs --token.")
@click.option("--token", envvar=TOKEN_VARIABLE, metavar="TOKEN",
              help=f"With --serve: every scrape must carry TOKEN (Authorization: Bearer TOKEN, or ?token=TOKEN)."
                   f" Prefer the environment variable {TOKEN_VARIABLE}: a command line shows in ps.")
@grace_option("As check's: how late a job with expect_every may start before it is overdue.")
@read_url_option
@database_option
@one_line_errors
def metrics(output, serve, token, grace, database):
    """Print every job's state as Prometheus metrics, write them for node_exporter, or serve them.

    Per job and machine: when it last succeeded, its last run's status and
    duration, runs in progress, failures in a row since the last success,
    whether it holds the job's lock, and its cache entries; per job, each
    problem `processcache check` reports (overdue, missed, failed...).
    Labels are group, job_name and machine (not job, which Prometheus
    sets to the scrape's own). The format is Prometheus's text format,
    which node_exporter's textfile collector reads.

    Every machine reads the same database, so one exporter serves the
    whole farm: run it on one machine only, or the series come twice.
    A server keeps trying a database that went away for the URL's
    retry_for (30s): give it ?retry_for=5s, so a scrape fails (HTTP 500,
    one line) within Prometheus's 10s scrape timeout instead.

    \b
    For node_exporter's textfile collector, every minute, in a crontab:
        PROCESSCACHE_DATABASE_URL=postgresql://cron@db.internal/cron
        * * * * * processcache metrics -o /var/lib/prometheus/node-exporter/processcache.prom
    Served, for Prometheus to scrape (SIGTERM or Ctrl-C stops it, exit 0):
        processcache metrics --serve 127.0.0.1:9464 -d 'postgresql://cron@db.internal/cron?retry_for=5s'
    and in prometheus.yml:
        scrape_configs:
          - job_name: processcache
            static_configs:
              - targets: ["127.0.0.1:9464"]
    Served to other machines, with a token that every scrape must carry:
        PROCESSCACHE_METRICS_TOKEN=$(openssl rand -hex 16) processcache metrics --serve 0.0.0.0:9464
    and in that job of prometheus.yml:
            authorization:
              credentials_file: /etc/prometheus/processcache.token
    The server answers many scrapers and browsers at once, each request
    within 10 s; on 127.0.0.1 it answers only requests that name it as
    localhost, 127.0.0.1 or [::1] (no other site's page can read it).
    """
    grace_seconds = _grace(grace)
    if serve is not None:
        if output is not None:
            raise click.UsageError("--output or --serve, not both: a server writes no file")
        _serve(serve, token, reading(database), grace_seconds)
        return
    if click.get_current_context().get_parameter_source("token") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--token is for --serve: a printed or written file needs none")
    if output is not None:
        _check_folder(output)
    from ..monitor.metrics import exposition

    with opened(database) as db:
        text = exposition(db, grace_seconds)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_whole(output, text)


def _grace(text: str) -> float:
    from ..errors import ProcessCacheError

    try:
        return parse_duration(text, "--grace")
    except ProcessCacheError as exc:
        raise click.UsageError(str(exc)) from None


def _check_folder(path: str) -> None:
    """Refuse a FILE whose folder is not there before any database opens: a typo in a crontab line."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise click.BadParameter(f"no folder {folder}: create it, or name a file in an existing one",
                                 param_hint="--output")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"you may not write in {folder}: name a file in a folder you may write in",
                                 param_hint="--output")


def write_whole(path: str, text: str) -> None:
    """Write *text* to *path* as a new file put in the old one's place in one step (mode 0644).

    node_exporter may read the file at any moment: it sees the old metrics
    or the new ones, never a part. The new file is written beside it (a
    rename is one step only within one file system) under a name not
    ending in .prom, which the textfile collector skips; it is removed if
    anything fails.
    """
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # node_exporter runs as a user of its own
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
        raise


# -- --serve ---------------------------------------------------------------------------


def _serve(text: str, token: str | None, url: str | None, grace: float) -> None:
    """Answer scrapes (`processcache.web.scrape`) until SIGTERM, SIGINT or SIGHUP, then exit 0."""
    from ..web.scrape import Scrapes

    family, bound = listen.guarded(text, "--serve", token, TOKEN_VARIABLE, DEFAULT_ADDRESS)
    listen.serve(family, bound, Scrapes(url, grace), "--serve", _say, "/metrics", token=token)


def _say(line: str) -> None:
    click.echo(f"processcache metrics: {line}", err=True)
