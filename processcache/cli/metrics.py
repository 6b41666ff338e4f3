"""``processcache metrics``: every job's state as Prometheus metrics, printed, written for node_exporter, or served.

Parse, call `processcache.metrics`, then print, write the file whole, or
answer scrapes. The format and the families are documented there.
"""

import contextlib
import errno
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING

import click

from ..durations import parse_duration
from .format import database_option, one_line_errors, opened

if TYPE_CHECKING:
    from ..storage.database import Database

#: Where ``--serve`` alone listens: this machine only, on the port the OpenTelemetry Prometheus exporter uses.
DEFAULT_ADDRESS = "127.0.0.1:9464"
#: The longest a scraper may take to send its request: a silent client must not hold the one-thread server.
REQUEST_TIMEOUT = 10.0


@click.command()
@click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the metrics to FILE (replaced whole, never half-written: for node_exporter's"
                   " textfile collector, whose files end in .prom) instead of printing them.")
@click.option("--serve", metavar="HOST:PORT", is_flag=False, flag_value=DEFAULT_ADDRESS,
              help=f"Answer scrapes of http://HOST:PORT/metrics, reading the database at each one"
                   f" (--serve alone: {DEFAULT_ADDRESS}; port 0: any free one).")
@click.option("--grace", default="1m", show_default=True, metavar="DURATION",
              help="As check's: how late a job with expect_every may start before it is overdue.")
@database_option
@one_line_errors
def metrics(output, serve, grace, database):
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
    """
    grace_seconds = _grace(grace)
    if serve is not None:
        if output is not None:
            raise click.UsageError("--output or --serve, not both: a server writes no file")
        _serve(_address(serve), database, grace_seconds)
        return
    if output is not None:
        _check_folder(output)
    from ..metrics import exposition

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


def _address(text: str) -> tuple[socket.AddressFamily, tuple]:
    """HOST:PORT (an IPv6 host in brackets) as the family and address to bind; a usage error otherwise."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT: write it as 127.0.0.1:9464, 0.0.0.0:9464"
                                 " (every interface) or [::1]:9464", param_hint="--serve")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise click.BadParameter(f"{host!r} is not an address or a known host name: write it as 127.0.0.1:9464",
                                 param_hint="--serve") from None
    family, _, _, _, address = found[0]
    return family, address


class _Scrapes:
    """The database a server reads at each scrape, opened at the first and again after any failure.

    The connection is kept between scrapes (opening one costs more than
    reading the metrics); a database that is down when the server starts,
    or goes away, makes scrapes fail until it is back, not the server.
    """

    def __init__(self, url: str | None, grace: float) -> None:
        self.url = url
        self.grace = grace
        self._db: Database | None = None

    def read(self) -> str:
        """The metrics now; after any error (one line for a lost connection) the next scrape opens anew."""
        from ..metrics import exposition
        from ..storage.database import connect
        from ..storage.retry import one_line_when_lost

        try:
            if self._db is None:
                self._db = connect(self.url, read_only=True)
            with one_line_when_lost(self._db):
                return exposition(self._db, self.grace)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()


class _MetricsServer(HTTPServer):
    """One thread: scrapes come every few seconds, and each reads the database on one kept connection."""

    def __init__(self, family: socket.AddressFamily, address: tuple, scrapes: _Scrapes) -> None:
        self.address_family = family
        self.scrapes = scrapes
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        """One line for a request that broke (a scraper that hung up), not socketserver's traceback."""
        click.echo(f"processcache metrics: a request from {client_address[0]} failed: {sys.exc_info()[1]!r}",
                   err=True)


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics: the metrics; GET /: where they are; an error is HTTP 500 with its one line (masked)."""

    server: _MetricsServer
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._scrape()
        elif path == "/":
            self._answer(200, "text/plain; charset=utf-8",
                         "processcache metrics: Prometheus scrapes /metrics\n")
        else:
            self._answer(404, "text/plain; charset=utf-8", f"no {path} here: the metrics are at /metrics\n")

    def _scrape(self) -> None:
        from ..metrics import CONTENT_TYPE

        try:
            text = self.server.scrapes.read()
        except Exception as exc:
            line = _one_line(exc, self.server.scrapes.url)
            click.echo(f"processcache metrics: a scrape failed: {line}", err=True)
            self._answer(500, "text/plain; charset=utf-8", line + "\n")
            return
        self._answer(200, CONTENT_TYPE, text)

    def _answer(self, status: int, content_type: str, text: str) -> None:
        from ..gzipped import encode

        body, encoding = encode(text.encode("utf-8"), self.headers.get("Accept-Encoding"))
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **encoding}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        """No line per scrape: a failed one says so itself."""


def _one_line(exc: Exception, url: str | None) -> str:
    """An error's first line, the database URL's password masked whatever shape the error took."""
    from ..config import parse_url, resolve_url
    from ..errors import ProcessCacheError

    line = (str(exc) if isinstance(exc, ProcessCacheError) else f"{type(exc).__name__}: {exc}").splitlines()
    text = line[0] if line else type(exc).__name__
    try:
        return parse_url(resolve_url(url)).mask(text)
    except ProcessCacheError:
        return text


def _serve(address: tuple[socket.AddressFamily, tuple], url: str | None, grace: float) -> None:
    """Answer scrapes until SIGTERM, SIGINT or SIGHUP, then exit 0."""
    from ..signals import Terminated, terminate_on_signals

    scrapes = _Scrapes(url, grace)
    with _listening(*address, scrapes) as server, terminate_on_signals():
        host, port = str(server.server_address[0]), server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"processcache metrics: serving http://{shown}:{port}/metrics (SIGTERM or Ctrl-C stops it)",
                   err=True)
        try:
            server.serve_forever()
        except Terminated:
            pass
    scrapes.close()


@contextlib.contextmanager
def _listening(family: socket.AddressFamily, address: tuple, scrapes: _Scrapes) -> Iterator[_MetricsServer]:
    """The server bound to *address*; a port in use, or an address not this machine's, in one line."""
    shown = f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
    try:
        server = _MetricsServer(family, address, scrapes)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise click.BadParameter(f"{shown} is not an address of this machine", param_hint="--serve") from None
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"{shown} is in use: stop what listens there, or choose another port"
                                       " with --serve HOST:PORT") from None
        raise click.ClickException(f"cannot listen on {shown}: {exc.strerror}") from None
    try:
        yield server
    finally:
        server.server_close()
