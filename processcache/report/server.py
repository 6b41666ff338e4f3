"""``processcache serve``: the report's views live, read-only, from the standard library's HTTP server.

Why http.server and not Starlette with uvicorn: the dashboard is a handful
of GET pages for a few people, each a few queries; one thread answering
them in turn, as ``metrics --serve`` does, needs no new dependency and no
event loop, and nothing here is imported by ``processcache run``.

Pages: ``/`` the overview (reloaded by the browser every ``refresh``
seconds), ``/job/GROUP/JOB`` a job's card, runs and cache keys (their
values only with ``show_values``), ``/run/ID`` a run whole with its logs.
The database is opened read-only and kept between requests, opened anew
after any failure. With a token, every request must carry it: ``?token=``
(then a cookie carries it to the links) or ``Authorization: Bearer``;
compared in constant time. Every error is one line with the database
password masked.
"""

import hmac
import socket
from collections.abc import Callable
from http import cookies
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ProcessCacheError
from .gather import gather
from .pages import job_page, overview_page, run_page
from .parts import CONTENT_SECURITY_POLICY, document, text

if TYPE_CHECKING:
    from ..storage.database import Database

#: The longest a browser may take to send its request: a silent client must not hold the one-thread server.
REQUEST_TIMEOUT = 10.0
#: Runs listed on a job's page.
JOB_RUNS = 100
_COOKIE = "processcache_token"
#: Sent with every answer: no framing, no sniffing, no referrer (a ?token= must not leak), nothing cached.
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class Settings(NamedTuple):
    """What ``serve`` was told: the database, the scope, the refresh, values shown or not, grace, token."""

    url: str | None
    group: str | None = None
    refresh: int = 30
    show_values: bool = False
    grace: float = 60.0
    token: str | None = None


class NotFound(Exception):
    """A page that is not there: answered 404 with its one line."""


class Dashboard:
    """The pages, read from one kept read-only connection (opened at the first request, again after a failure)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._db: Database | None = None

    def page(self, path: str) -> str:
        """The HTML of *path*; NotFound for a path, job or run that is not there."""
        from ..storage.database import connect
        from ..storage.retry import one_line_when_lost

        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        try:
            if self._db is None:
                self._db = connect(self.settings.url, read_only=True)
            with one_line_when_lost(self._db):
                return self._route(self._db, parts)
        except (NotFound, ProcessCacheError):
            raise
        except BaseException:
            self.close()
            raise

    def _route(self, db: "Database", parts: list[str]) -> str:
        refresh = self.settings.refresh or None
        if not parts:
            return overview_page(gather(db, self.settings.group, self.settings.grace), links=True, refresh=refresh)
        if parts[0] == "job" and len(parts) == 3:
            return self._job(db, f"{parts[1]}/{parts[2]}", refresh)
        if parts[0] == "run" and len(parts) == 2 and parts[1].isdigit():
            return self._run(db, int(parts[1]), refresh)
        raise NotFound(f"no page /{'/'.join(parts)} here: the jobs are at /")

    def _job(self, db: "Database", name: str, refresh: int | None) -> str:
        try:
            job_id = db.history.job_id(name)
        except ProcessCacheError as exc:
            raise NotFound(str(exc)) from None
        found = gather(db, name.partition("/")[0], self.settings.grace, job=name).jobs
        view = found[0] if found else None
        if view is None:
            raise NotFound(f"{name} is retired: `processcache jobs --all` lists it")
        values: dict[str, list] | None = None
        if self.settings.show_values:
            values = {}
            for entry in db.cache.entries(job_id, None):
                values.setdefault(entry.key, []).append(entry.value)
        return job_page(view, db.list_runs(name, limit=JOB_RUNS), db.cache.key_stats(job_id, None), values, refresh)

    def _run(self, db: "Database", run_id: int, refresh: int | None) -> str:
        try:
            detail = db.run(run_id)
        except ProcessCacheError as exc:
            raise NotFound(str(exc)) from None
        if self.settings.group is not None and detail.run.group != self.settings.group:
            raise NotFound(f"no run {run_id} in group {self.settings.group}")
        mask = db.config.mask
        run = detail.run._replace(error=detail.run.error and mask(detail.run.error),
                                  traceback=detail.run.traceback and mask(detail.run.traceback))
        logs = [log._replace(message=mask(log.message)) for log in detail.logs]
        return run_page(detail.__class__(run, detail.exit_code, logs, detail.attempts),
                        refresh if run.status == "running" else None)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception:  # a connection already gone: nothing to close
                pass


class DashboardServer(HTTPServer):
    """One thread: a few people look, and each page is a few queries on one kept connection."""

    def __init__(self, family: socket.AddressFamily, address: tuple, dashboard: Dashboard,
                 errors: Callable[[str], None]) -> None:
        self.address_family = family
        self.dashboard = dashboard
        #: Called with one line for each request that failed (the CLI writes it to stderr).
        self.errors = errors
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: tuple) -> None:
        """One line for a request that broke (a browser that hung up), not socketserver's traceback."""
        import sys

        self.errors(f"a request from {client_address[0]} failed: {sys.exc_info()[1]!r}")


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        token = self.server.dashboard.settings.token
        given = self._token(parts.query)
        if token is not None and not (given and hmac.compare_digest(given.encode(), token.encode())):
            self._answer(401, _error_page("give the token: ?token=TOKEN or the header Authorization: Bearer TOKEN"),
                         {"WWW-Authenticate": "Bearer"})
            return
        cookie = {}
        if token is not None and "token" in parse_qs(parts.query):
            cookie = {"Set-Cookie": f"{_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"}
        try:
            self._answer(200, self.server.dashboard.page(parts.path), cookie)
        except NotFound as exc:
            self._answer(404, _error_page(str(exc)))
        except Exception as exc:
            from ..cli.metrics import _one_line  # the error's one line, the password masked, as metrics says it

            line = _one_line(exc, self.server.dashboard.settings.url)
            self.server.errors(f"{parts.path}: {line}")
            self._answer(500, _error_page(line))

    def _token(self, query: str) -> str | None:
        """The token the request carries: its query's, its Authorization header's, or its cookie's."""
        found = parse_qs(query).get("token")
        if found:
            return found[0]
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        jar = cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except cookies.CookieError:
            return None
        return jar[_COOKIE].value if _COOKIE in jar else None

    def _answer(self, status: int, page: str, headers: dict[str, str] | None = None) -> None:
        from ..gzipped import encode

        body, encoding = encode(page.encode("utf-8"), self.headers.get("Accept-Encoding"))
        self.send_response(status)
        for name, value in {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)),
                            **encoding, **_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 (http.server's name)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        """No line per request: a failed one says so itself."""


def _error_page(line: str) -> str:
    return document("processcache: error", f'<p><a href="/">all jobs</a></p><p>{text(line)}</p>')
