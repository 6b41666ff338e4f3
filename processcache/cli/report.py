"""``processcache report`` and ``processcache serve``: the farm at a glance, as one HTML file or live.

Parse, then call `processcache.report` (imported only here: ``run`` pays
for none of it). The report file is written whole (`metrics.write_whole`);
the server binds to this machine unless given a token.
"""

import errno
import ipaddress
import socket
from typing import TYPE_CHECKING

import click

from .format import database_option, one_line_errors, opened
from .metrics import _address, _check_folder, _grace, write_whole

if TYPE_CHECKING:
    from ..report.server import Dashboard

#: Where serve listens by default: this machine only.
DEFAULT_BIND = "127.0.0.1:8080"
_group_option = click.option("--group", "-g", metavar="GROUP", help="Only the jobs of GROUP.")
_grace_option = click.option("--grace", default="1m", show_default=True, metavar="DURATION",
                             help="As check's: how late a job with expect_every may start before it is overdue.")


@click.command()
@click.option("--html", "path", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the report to FILE (replaced whole, never half-written).")
@_group_option
@_grace_option
@database_option
@one_line_errors
def report(path, group, grace, database):
    """Write one self-contained HTML page of every job: its state, recent runs, next due time, last failure.

    \b
    The page needs nothing else (no script, style, font or image from
    elsewhere): mail it, or open it on a host with no network. Per job
    and machine: the last runs as a strip labelled by status and a
    duration chart; the next due time and whether it is overdue or missed
    (with a schedule or expect_every); the last failure's error and
    traceback (click to open); locks held; cache size. Times are UTC,
    the local time on hover. A page of more than 200 jobs draws this
    for 100 at most, those failing, then overdue, and lists the others
    one line each: --group draws a group's.
    \b
    Every morning at 7, for the team:
        0 7 * * * processcache report --html /srv/www/cron.html
    """
    from ..names import normalize
    from ..report.gather import gather
    from ..report.pages import overview_page

    _check_folder(path)
    seconds = _grace(grace)
    with opened(database) as db:
        page = overview_page(gather(db, normalize(group) if group else None, seconds))
    write_whole(path, page)
    click.echo(f"wrote {path}", err=True)


@click.command()
@click.option("--bind", default=DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              help="Where to listen (port 0: any free one). Any address but this machine's own needs --token.")
@click.option("--token", envvar="PROCESSCACHE_SERVE_TOKEN", metavar="TOKEN",
              help="Every request must carry TOKEN (?token=TOKEN, or Authorization: Bearer TOKEN). Prefer the"
                   " environment variable PROCESSCACHE_SERVE_TOKEN: a command line shows in ps.")
@click.option("--refresh", default=30, show_default=True, type=click.IntRange(0), metavar="SECONDS",
              help="How often the browser reloads a page (0: never).")
@click.option("--show-values", is_flag=True, help="Show cached values on job pages (keys and sizes only otherwise).")
@_group_option
@_grace_option
@database_option
@one_line_errors
def serve(bind, token, refresh, show_values, group, grace, database):
    """Serve the report live and read-only: the overview, a page per job and per run, until Ctrl-C.

    \b
    The database is opened read-only: nothing a browser does changes it.
    Database passwords and alert-channel tokens are never shown.
    \b
    On this machine (then open http://127.0.0.1:8080/):
        processcache serve -d postgresql://cron@db.internal/cron
    For the team, with a token:
        PROCESSCACHE_SERVE_TOKEN=$(openssl rand -hex 16) processcache serve --bind 0.0.0.0:8080
    """
    from ..names import normalize
    from ..report.server import Dashboard, Settings

    family, address = _bind(bind, token)
    settings = Settings(database, normalize(group) if group else None, refresh, show_values, _grace(grace), token)
    with opened(database):  # a wrong URL or a missing file is said now, not at the first page
        pass
    _run_server(family, address, Dashboard(settings))


def _bind(text: str, token: str | None) -> tuple[socket.AddressFamily, tuple]:
    """--bind as an address; one that is not loopback without a token is a usage error."""
    try:
        family, address = _address(text)
    except click.BadParameter as exc:
        exc.param_hint = "--bind"
        raise
    if not token and not ipaddress.ip_address(address[0]).is_loopback:
        raise click.UsageError(f"--bind {text} lets other machines in: give --token (or PROCESSCACHE_SERVE_TOKEN),"
                               f" or bind to {DEFAULT_BIND}")
    return family, address


def _run_server(family: socket.AddressFamily, address: tuple, dashboard: "Dashboard") -> None:
    """Serve until SIGTERM, SIGINT or SIGHUP, then exit 0; a port in use in one line."""
    from ..report.server import DashboardServer
    from ..signals import Terminated, terminate_on_signals

    def say(line: str) -> None:
        click.echo(f"processcache serve: {line}", err=True)

    try:
        server = DashboardServer(family, address, dashboard, say)
    except OSError as exc:
        reason = "is in use: stop what listens there, or choose another port" if exc.errno == errno.EADDRINUSE \
            else f"cannot be listened on: {exc.strerror}"
        raise click.ClickException(f"{text_of(address)} {reason} (--bind HOST:PORT)") from None
    with server, terminate_on_signals():
        host, port = server.server_address[:2]
        say(f"serving http://{text_of((host, port))}/ (SIGTERM or Ctrl-C stops it)")
        try:
            server.serve_forever()
        except Terminated:
            pass
    dashboard.close()


def text_of(address: tuple) -> str:
    """HOST:PORT as a URL writes it (an IPv6 host in brackets)."""
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
