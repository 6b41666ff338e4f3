"""``processcache report`` and ``processcache serve``: the farm at a glance, as one HTML file or live.

Parse, then call `processcache.web` (imported only here: ``run`` pays
for none of it). The report file is written whole (`metrics.write_whole`);
the server (`processcache.web.http`, as `listen` starts it) binds to this
machine unless given a token.
"""

import click

from . import listen
from .format import database_option, grace_option, one_line_errors, opened, read_url_option, reading
from .metrics import _check_folder, _grace, write_whole

#: Where serve listens by default: this machine only.
DEFAULT_BIND = "127.0.0.1:8080"
_group_option = click.option("--group", "-g", metavar="GROUP", help="Only the jobs of GROUP.")
_grace_option = grace_option("As check's: how late a job with expect_every may start before it is overdue.")
_skipped_option = click.option("--skipped", is_flag=True,
                               help="Show skipped copies (a held lock, a slot taken) in the runs too [default: the"
                                    " runs that did work].")


@click.command()
@click.option("--html", "path", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the report to FILE (replaced whole, never half-written).")
@_group_option
@_grace_option
@_skipped_option
@read_url_option
@database_option
@one_line_errors
def report(path, group, grace, skipped, database):
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
    from ..web.gather import gather
    from ..web.pages import overview_page

    _check_folder(path)
    seconds = _grace(grace)
    with opened(database) as db:
        page = overview_page(gather(db, normalize(group) if group else None, seconds, skipped=skipped))
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
@_skipped_option
@read_url_option
@database_option
@one_line_errors
def serve(bind, token, refresh, show_values, group, grace, skipped, database):
    """Serve the report live and read-only: the overview, a page per job and per run, until Ctrl-C.

    \b
    The database is opened read-only: nothing a browser does changes it.
    Database passwords and alert-channel tokens are never shown. Many
    browsers are answered at once, each request within 10 s; on this
    machine's address it answers only requests that name it as localhost,
    127.0.0.1 or [::1] (no other site's page can read it).
    \b
    On this machine (then open http://127.0.0.1:8080/):
        processcache serve -d postgresql://cron@db.internal/cron
    For the team, with a token:
        PROCESSCACHE_SERVE_TOKEN=$(openssl rand -hex 16) processcache serve --bind 0.0.0.0:8080
    """
    from ..names import normalize
    from ..web.dashboard import COOKIE, Dashboard, Settings

    family, bound = listen.guarded(bind, "--bind", token, "PROCESSCACHE_SERVE_TOKEN", DEFAULT_BIND)
    settings = Settings(reading(database), normalize(group) if group else None, refresh, show_values, _grace(grace),
                        skipped)
    with opened(database):  # a wrong URL or a missing file is said now, not at the first page
        pass
    listen.serve(family, bound, Dashboard(settings), "--bind", _say, token=token, cookie=COOKIE)


def _say(line: str) -> None:
    click.echo(f"processcache serve: {line}", err=True)
