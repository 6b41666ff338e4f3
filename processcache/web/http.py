"""The one HTTP server of ``serve`` and ``metrics --serve``: the standard library's, hardened once for both.

Why http.server and not an ASGI server: a few people and one Prometheus
read a handful of pages, each a few queries; threads need no dependency
and no event loop. What a server serves is a `Site` (its `Site.answer`
turns a `Request` into an `Answer`); everything else is here:

- **Concurrent.** A thread per connection (daemon threads: a stop never
  waits for a client), at most `CLIENTS` at once; one more is answered
  503 at once and closed, so the loop that accepts never waits on anyone.
- **A deadline for the whole request.** A client has `DEADLINE` seconds
  from its connection to the end of its headers, however it spreads them
  (each read may wait only for the time left, not 10 s of its own), and
  as long again to take the answer; cut off, it gets 408 in one line. The
  request line and headers may hold `MAX_REQUEST` bytes (431 beyond).
  One request per connection (HTTP/1.0); no body is read.
- **The database on one thread.** Pony keeps a connection per thread: a
  thread per request would open one per request. So each server keeps one
  connection, opened and used by one thread of its own, where every
  `Site.answer` runs, one at a time, while reading requests and writing
  answers, the parts a client can make slow, run concurrently: a slow
  client holds a thread for `DEADLINE` at most, and never the database.
- **The Host header on a loopback bind.** A web page can reach a server
  on 127.0.0.1 through a name of its own that it points at 127.0.0.1
  (DNS rebinding); its requests then say that name in ``Host``. A server
  bound to a loopback address answers only ``localhost``, ``127.0.0.1``,
  ``[::1]`` or its own address, with its port, and refuses any other
  Host with 421 (a request without a Host, from no browser, is served).
- **The token.** With a token, a request carries it as ``Authorization:
  Bearer TOKEN`` (as Prometheus sends its ``authorization`` setting),
  ``?token=TOKEN``, or the site's cookie (the dashboard sets one from
  ``?token=``, so its links need no token); compared in constant time,
  as soon as the headers are in, before the site or the database sees the
  request (401 otherwise). A server bound beyond loopback without a token
  is refused (`ConfigError`): the CLI says which option to give.
- **Answers.** Security headers on every one (no framing, no sniffing,
  no referrer, so a ``?token=`` never leaks, nothing cached, and a
  Content-Security-Policy that allows nothing unless the site sets its
  own), gzip'd for clients that ask (`processcache.web.gzipped`), and every
  error is one line, a database password masked (`Site.mask`). A client
  that hangs up or stalls is said nothing of; any other failure is one
  line to *errors*, never a traceback.
"""

import contextlib
import hashlib
import hmac
import io
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus, cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, one_line
from ..run.signals import Terminated, terminate_on_signals
from ..storage import connect, one_line_when_lost, parse_url, resolve_url
from .gzipped import encode

if TYPE_CHECKING:
    from ..storage import Database

#: Seconds a client has to send its whole request (and again to take the whole answer): 10 s is Prometheus's
#: default scrape timeout, and a browser sends a request in one packet.
DEADLINE = 10.0
#: Connections answered at once (a thread each); one more is answered 503 at once.
CLIENTS = 128
#: The longest request line and headers together, in bytes: a browser's are under 8 KiB.
MAX_REQUEST = 64 * 1024
TEXT = "text/plain; charset=utf-8"
#: Sent with every answer; an answer's own headers (the dashboard's policy) replace these.
SECURITY_HEADERS = MappingProxyType({
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_T = TypeVar("_T")


class Request(NamedTuple):
    """What a site is asked: the path as sent (percent-encoded) and the query's values."""

    path: str
    query: dict[str, list[str]]


class Answer(NamedTuple):
    """What a site answers: status, body, its type, and headers of its own."""

    status: int
    body: str
    content_type: str = TEXT
    headers: Mapping[str, str] = _NO_HEADERS


class NotFound(Exception):
    """A page that is not there: answered 404 with its one line."""


class Site:
    """What a `Server` serves. `answer` and `close` run on the server's database thread, one call at a time."""

    def answer(self, request: Request) -> Answer:
        """The answer to *request*; `NotFound` for 404, any other exception for 500 (its one line, masked)."""
        raise NotImplementedError

    def refusal(self, status: int, line: str) -> Answer:
        """An error's answer: *line* alone (the dashboard wraps it in a page)."""
        return Answer(status, line + "\n")

    def mask(self, text: str) -> str:
        """*text* with every secret the site knows of hidden (the database URL's password)."""
        return text

    def failed(self, request: Request) -> str:
        """What failed, as the server's standard error says it before the error's line."""
        return f"{request.path} failed"

    def close(self) -> None:
        """Let go of the database: the server stops."""


class ReadingSite(Site):
    """A site that reads one database, kept between requests: opened read-only at the first read (a database
    down when the server starts fails requests, not the server), and anew after any failure but `NotFound`."""

    def __init__(self, url: str | None) -> None:

        self.url = url
        self._db: Database | None = None
        try:
            self._mask: Callable[[str], str] | None = parse_url(resolve_url(url)).mask
        except ConfigError:  # a URL that cannot be parsed fails each request, saying so with it masked
            self._mask = None

    def reading(self, read: "Callable[[Database], _T]") -> _T:
        """*read* of the kept database; a lost connection in one line."""
        try:
            if self._db is None:
                self._db = connect(self.url, read_only=True)
            with one_line_when_lost(self._db):
                return read(self._db)
        except NotFound:
            raise
        except BaseException:
            self.close()
            raise

    def mask(self, text: str) -> str:
        return self._mask(text) if self._mask else text

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # a connection already gone: nothing to close
                db.close()


def is_loopback(host: str) -> bool:
    """Whether *host* (an address) is this machine's alone: 127.0.0.0/8 or ::1."""
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def url_of(address: tuple) -> str:
    """http://HOST:PORT as a browser opens it (an IPv6 host in brackets)."""
    host = str(address[0])
    return f"http://[{host}]:{address[1]}" if ":" in host else f"http://{host}:{address[1]}"


class Server(ThreadingHTTPServer):
    """*site* served on *address* until `serve_until_stopped`; see the module docstring.

    Raises `ConfigError` for an address beyond loopback without *token*,
    and OSError when the address cannot be listened on. *cookie* names the
    cookie that may carry the token; *errors* is given each failure's line.
    """

    daemon_threads = True
    block_on_close = False  # a stop waits for no client
    request_queue_size = 64  # connections the kernel holds before they are accepted (socketserver's 5 is for one)

    def __init__(self, family: socket.AddressFamily, address: tuple, site: Site, *, token: str | None = None,
                 cookie: str | None = None, deadline: float = DEADLINE, clients: int = CLIENTS,
                 errors: Callable[[str], None] = lambda line: None) -> None:
        if not token and not is_loopback(str(address[0])):
            raise ConfigError(f"{url_of(address)} lets other machines in: give a token, or listen on 127.0.0.1")
        self.address_family = family
        self.site = site
        self.cookie = cookie
        self.deadline = deadline
        self.errors = errors
        self._token = _digest(token) if token else None
        self._clients = clients
        self._slots = threading.BoundedSemaphore(clients)
        self._database = ThreadPoolExecutor(1, thread_name_prefix="processcache-database")
        super().__init__(address, _Handler)
        self.url = url_of(self.server_address)
        #: The Host values a loopback bind answers; None beyond loopback (the token guards it).
        self.hosts = _local_hosts(self.server_address) if is_loopback(str(address[0])) else None

    def ask(self, request: Request) -> Answer:
        """The site's answer, made on the database thread."""
        return self._database.submit(self.site.answer, request).result()

    @property
    def guarded(self) -> bool:
        """Whether every request must carry a token."""
        return self._token is not None

    def token_matches(self, given: str | None) -> bool:
        """Whether *given* is the token, compared in constant time (digests: not even its length shows)."""
        return self._token is None or (given is not None and hmac.compare_digest(_digest(given), self._token))

    def serve_until_stopped(self) -> None:
        """Serve until SIGTERM, SIGINT or SIGHUP, then let the site go; returns normally (exit 0)."""
        try:
            with terminate_on_signals():
                self.serve_forever()
        except Terminated:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening and let the site go, on the thread that used its database."""
        self.server_close()
        with contextlib.suppress(Exception):
            self._database.submit(self.site.close).result()
        self._database.shutdown(wait=False, cancel_futures=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request, self._clients)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line for a request that broke, nothing for a client that hung up; never socketserver's traceback."""
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError)):
            self.errors(f"a request from {client_address[0]} failed: {one_line(exc)}")


class _Cut(Exception):
    """A request cut off before its end: the status and line it is answered with."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status


class _Within(io.RawIOBase):
    """A connection's reads, all within one deadline and `MAX_REQUEST` bytes (`_Cut` beyond either)."""

    def __init__(self, connection: socket.socket, deadline: float, allowed: float) -> None:
        self._connection = connection
        self._deadline = deadline
        self._allowed = allowed
        self._left = MAX_REQUEST

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        if self._left <= 0:
            raise _Cut(431, f"the request line and headers are over {MAX_REQUEST // 1024} KiB")
        self._connection.settimeout(left)
        try:
            count = self._connection.recv_into(buffer, min(len(buffer), self._left))
        except TimeoutError:
            raise self._late() from None
        self._left -= count
        return count

    def _late(self) -> _Cut:
        return _Cut(408, f"the request took more than {self._allowed:g} s to arrive: send it whole")


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.0"  # one request per connection: the deadline is the connection's
    server_version = "processcache"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.command, self.request_version, self.requestline = "", self.default_request_version, ""
        buffered = self.rfile
        self.rfile = io.BufferedReader(_Within(self.connection, time.monotonic() + self.server.deadline,
                                               self.server.deadline))
        buffered.close()

    def handle(self) -> None:
        try:
            self.handle_one_request()
        except _Cut as cut:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(self.server.site.refusal(cut.status, str(cut)), within=1.0)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        refused = self._refused()
        if refused is not None:
            self._send(refused)
            return
        parts = urlsplit(self.path)
        request = Request(parts.path, parse_qs(parts.query))
        try:
            answer = self.server.ask(request)
        except NotFound as exc:
            answer = self.server.site.refusal(404, str(exc))
        except Exception as exc:
            line = one_line(exc, self.server.site.mask)
            self.server.errors(f"{self.server.site.failed(request)}: {line}")
            answer = self.server.site.refusal(500, line)
        if self.server.guarded and self.server.cookie and self._token_of("query"):  # the token, as it matched
            answer = _with(answer, {"Set-Cookie": f"{self.server.cookie}={self._token_of('query')};"
                                                  " HttpOnly; SameSite=Strict; Path=/"})
        self._send(answer)

    do_HEAD = do_GET  # noqa: N815 (http.server's name)

    def _refused(self) -> Answer | None:
        """The answer to a request from a wrong Host or without the token; None for one that may go on."""
        site, hosts = self.server.site, self.headers.get_all("Host") or []
        if len(hosts) > 1:
            return site.refusal(400, "two Host headers: send one")
        if self.server.hosts is not None and hosts and hosts[0].strip().lower() not in self.server.hosts:
            return site.refusal(421, f"this server answers only as {self.server.url}: open it at that address")
        if self.server.guarded and not self.server.token_matches(
                self._token_of("query") or self._token_of("header") or self._token_of("cookie")):
            return _with(site.refusal(401, "give the token: the header Authorization: Bearer TOKEN, or ?token=TOKEN"),
                         {"WWW-Authenticate": "Bearer"})
        return None

    def _token_of(self, where: str) -> str | None:
        """The token the request carries in its query, its Authorization header, or the site's cookie."""
        if where == "query":
            found = parse_qs(urlsplit(self.path).query).get("token")
            return found[0] if found else None
        if where == "header":
            scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
            return value.strip() if scheme.lower() == "bearer" and value.strip() else None
        jar: cookies.SimpleCookie = cookies.SimpleCookie()
        with contextlib.suppress(cookies.CookieError):
            jar.load(self.headers.get("Cookie") or "")
        return jar[self.server.cookie].value if self.server.cookie and self.server.cookie in jar else None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, too many headers, a method not served), in one line."""
        self.close_connection = True
        self._send(self.server.site.refusal(code, message or HTTPStatus(code).phrase))

    def _send(self, answer: Answer, within: float | None = None) -> None:
        """*answer*, whole within the deadline (each write waits only for the time left)."""
        headers = getattr(self, "headers", None)
        body, encoding = encode(answer.body.encode("utf-8"), headers.get("Accept-Encoding") if headers else None)
        end = time.monotonic() + (within or self.server.deadline)
        self.send_response(answer.status)
        for name, value in {"Content-Type": answer.content_type, "Content-Length": str(len(body)), **encoding,
                            **SECURITY_HEADERS, **answer.headers}.items():
            self.send_header(name, value)
        self.connection.settimeout(max(end - time.monotonic(), 0.001))
        self.end_headers()
        if self.command != "HEAD":
            self.connection.settimeout(max(end - time.monotonic(), 0.001))
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        """No line per request: a failed one says so itself."""


def _with(answer: Answer, headers: Mapping[str, str]) -> Answer:
    return answer._replace(headers={**answer.headers, **headers})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _local_hosts(address: tuple) -> frozenset[str]:
    """The Host values of a loopback server: its names and addresses with its port (alone too on port 80)."""
    port = address[1]
    names = {"localhost", "127.0.0.1", "[::1]", url_of(address).removeprefix("http://").rpartition(":")[0]}
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def _refuse_busy(connection: socket.socket, clients: int) -> None:
    """503 in one line, sent without waiting (the accepting thread never waits on a client)."""
    line = f"{clients} clients are being answered already: try again in a moment\n".encode()
    with contextlib.suppress(OSError):
        connection.setblocking(False)
        connection.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: " + TEXT.encode()
                        + b"\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "
                        + str(len(line)).encode() + b"\r\n\r\n" + line)
        connection.recv(MAX_REQUEST)  # what came already: closed unread, it would reset the answer away
