"""Database URLs: parsing, precedence, defaults and masking of passwords.

Accepted URLs::

    sqlite:///relative/path.db      relative to the current directory
    sqlite:////absolute/path.db
    sqlite://:memory:               one in-memory database shared by the process's threads
    postgresql://user:password@host:5432/dbname   (also postgres://)
    mysql://user:password@host:3306/dbname        (MySQL and MariaDB; also mariadb://)
    postgresql://user@db1:5432,db2:5433/dbname?target_session_attrs=read-write
                                                  (libpq's hosts, tried in turn; see `_hosts`)

A password is percent-encoded in the URL (``urllib.parse.quote(password,
safe='')``): one holding an unencoded ``/``, ``?`` or ``#`` is refused,
since a URL parser would read its start as a port and its end as the path.
On either server it may instead be given as ``?password=`` (or ``passwd=``).
Every URL processcache shows, and every error, has it as ``***``.

Precedence: an explicit URL, then ``PROCESSCACHE_DATABASE_URL``, then the
SQLite file ``processcache.db`` in the user's data directory.

SQLite settings, chosen for many cron processes writing one file (each can be
overridden in the URL's query string, e.g. ``sqlite:///state.db?synchronous=full``):
see `SQLITE_DEFAULTS`.

A PostgreSQL URL takes ``?schema=processcache``: processcache's tables live
in that schema (created if missing), alone on the search path, apart from
an application's tables of the same names (``processes``) in ``public``.
On MySQL and MariaDB a database of processcache's own does the same.

A server's URL takes ``?pool_size=10&pool_timeout=30s&pool_idle=5m``: the
process's threads share at most ``pool_size`` connections, a thread waits
for one at most ``pool_timeout``, and one unused for ``pool_idle`` is
closed (`processcache.storage.pool`).

Every URL takes ``?echo=1``: each statement processcache sends, with its
parameters, is written to stderr, to see what it does (the original's
``logging`` flag of ``sync`` and of Sequelize's options). Not for cron.

Every URL takes ``?retry_for=30s`` (a duration, default 30 s; 0 never
retries): how long an operation that lost its connection, and the first
connection itself, keep being tried again (see `processcache.storage.retry`), so
that a server restart or a failover does not fail the run. ``?retries=N``
of older versions is refused with a pointer to it.

No wait without a bound. Neither driver bounds a wait by default, so a
server that stops answering (a stalled network, a paused VM, a hung proxy)
would hang a cron job, and a SIGTERM with it, for ever. The servers' URLs
get defaults that bound every wait, each overridable in the query string:

- PostgreSQL (`dialects.POSTGRES_DEFAULTS`, libpq options passed as they are):
  ``connect_timeout=10`` (whole seconds), TCP keepalives and
  ``tcp_user_timeout``, which notice a peer that stops acknowledging; and
  processcache's own ``read_timeout=15s`` (a duration, not passed to libpq):
  the longest processcache waits for any answer from the server, which a
  peer that acknowledges and never answers needs. A psycopg2 wait callback
  enforces both for processcache's own connections only, and makes their
  waits interruptible by signals (`processcache.storage.waits`, which also says what
  it does to the application's own connections).
- MySQL/MariaDB (`dialects.MYSQL_DEFAULTS`): PyMySQL's ``connect_timeout=10``,
  ``read_timeout=15`` and ``write_timeout=15`` (durations). Options are
  given the types PyMySQL wants (`dialects.MYSQL_OPTIONS`: numbers, booleans from
  true/false/1/0/yes/no); an unknown one is refused.

Timeouts must be positive. One statement that runs longer than the read
timeout (a large ``prune``) is cut off as a lost connection: raise
``read_timeout`` for such work. A schema change's statements (an upgrade
building an index over every run and log) may take an hour
(`storage.backend.SCHEMA_READ_TIMEOUT`), except with mysqlclient.

The bound on a server that goes silent: the first stalled wait ends after
the read timeout (15 s), the retries go on for the retry budget (30 s),
and the last attempt started within it can wait one more timeout (the
connect timeout, 10 s, or on a server that still accepts connections the
read timeout, 15 s): about a minute at the defaults (55 to 60 s), then a
one-line `DatabaseUnavailableError` naming the database. What the run does
next (record its failure, release its lock) fails at once for as long as
the budget again (`processcache.storage.retry.RetryBudget`) instead of adding its
own minute. SIGTERM during the wait ends the process within the same bound.
With several hosts, opening a connection tries each in turn, each for up to
the connect timeout (`processcache.storage.waits.connect_each_host`): a
silent first host costs every new connection its connect timeout. The
list is waited for as a whole: one host's lasting fault (a name that does
not resolve) does not end the wait while another may come back
(`processcache.storage.retry.is_unreachable`).
"""

import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

from ..durations import parse_duration
from ..errors import ConfigError
from ..masking import MASK, mask_url, masked_text
from .dialects import Dialect, boolean, dialect_for
from .pool import Limits as PoolLimits

ENV_VAR = "PROCESSCACHE_DATABASE_URL"

SQLITE_DEFAULTS = {
    # Milliseconds a writer waits for another's lock before failing: cron
    # jobs that start together queue up instead of seeing "database is locked".
    # First, so that it applies to the pragmas after it.
    "busy_timeout": "30000",
    # Readers never block the writer and the writer never blocks readers.
    "journal_mode": "wal",
    # With WAL, a committed write survives a crash of the process; only an
    # operating-system crash or power loss can take the last commits back.
    # `full` syncs on every commit for that too, at several times the cost.
    "synchronous": "normal",
}

DEFAULT_RETRY_FOR = 30.0

_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class DatabaseConfig:
    """What `connect()` needs to bind Pony: the provider and its arguments."""

    provider: str
    bind_args: dict = field(repr=False)
    safe_url: str
    password: str | None = field(default=None, repr=False)
    pragmas: dict = field(default_factory=dict)
    retry_for: float = DEFAULT_RETRY_FOR
    #: Servers: the longest one wait for an answer lasts, in seconds (None on SQLite).
    read_timeout: float | None = None
    #: Servers: the longest opening a connection lasts, in seconds (None on SQLite).
    connect_timeout: float | None = None
    #: Servers: the process's connection pool (``pool_size``, ``pool_timeout``, ``pool_idle``; `storage.pool`).
    pool: PoolLimits = field(default_factory=PoolLimits)
    #: PostgreSQL: the schema processcache's tables live in (``?schema=``), apart from the application's.
    schema: str | None = None
    #: ``?echo=1``: every statement processcache sends is written to stderr (`Backend._echo`).
    echo: bool = False

    def mask(self, text: str) -> str:
        """Return *text* with the password replaced, for messages and logs."""
        if self.password:
            text = text.replace(self.password, MASK)
        return text


def resolve_url(url: str | None = None) -> str:
    """Apply the precedence: *url*, then the environment, then the default file."""
    if url:
        return url
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    return "sqlite:///" + default_sqlite_path()


def default_sqlite_path() -> str:
    """The per-user SQLite file used when no database is named."""
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("processcache", appauthor=False), "processcache.db")


def parse_url(url: str) -> DatabaseConfig:
    """Turn a database URL into a DatabaseConfig, or raise ConfigError (see the module docstring).

    Every error quotes the URL with its password masked (`masking.masked_text`),
    never the URL parser's own message, which quotes what it failed on.
    """
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    if not _SCHEME.fullmatch(scheme):  # a text before "://" that is no scheme may be a user part
        raise ConfigError(
            f"{masked_text(url, _SCHEMES)!r} is not a database URL: use sqlite:///file.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        )
    provider = _SCHEMES.get(scheme.split("+", 1)[0])
    if provider is None:
        raise ConfigError(
            f"unknown database URL scheme {scheme!r}: use sqlite, postgresql or mysql"
        )
    embedded = dialect_for(provider).embedded  # a file's URL, not a server's
    # Before any option is read: the end of a password may look like one.
    if embedded:
        _refuse_sqlite_without_path(url)
    else:
        _refuse_unencoded(url)
    url, retry_for = _take_option(url, "retry_for")
    url, echo = _take_option(url, "echo")
    if _take_option(url, "retries")[1] is not None:
        raise ConfigError("retries= in the URL is no longer read: write retry_for= with how long to keep"
                          " trying a lost connection (a duration such as retry_for=30s; 0 never retries)")
    if embedded:
        config = _parse_sqlite(url)
    else:
        url, pool = _pool_limits(url)
        url, schema = _schema(url, provider)
        config = replace(_parse_server(url, provider), pool=pool, schema=schema)
    if echo is not None:
        config = replace(config, echo=boolean("echo", echo))
    if retry_for is None:
        return config
    return replace(config, retry_for=parse_duration(retry_for, "retry_for in the URL"))


def _pool_limits(url: str) -> tuple[str, PoolLimits]:
    """*url* without ``pool_size``, ``pool_timeout`` and ``pool_idle``, and the pool's limits they set."""
    url, size = _take_option(url, "pool_size")
    url, timeout = _take_option(url, "pool_timeout")
    url, idle = _take_option(url, "pool_idle")
    limits = PoolLimits()
    if size is not None:
        if not size.isdigit() or int(size) < 2:
            raise ConfigError(f"pool_size={size!r} in the URL: use a whole number of 2 or more (a run takes two"
                              " connections: its work and its heartbeat)")
        limits = limits._replace(size=int(size))
    if timeout is not None:
        limits = limits._replace(timeout=parse_duration(timeout, "pool_timeout in the URL"))
    if idle is not None:
        limits = limits._replace(idle=parse_duration(idle, "pool_idle in the URL"))
    return url, limits


#: A schema name processcache quotes nowhere: letters, digits and underscores, not starting with a digit.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _schema(url: str, provider: str) -> tuple[str, str | None]:
    """*url* without ``schema=``, the schema it names, and libpq's ``options`` that make it the search path.

    Only the schema is on the search path: an application's table of the
    same name in ``public`` is never read or written.
    """
    url, schema = _take_option(url, "schema")
    if schema is None:
        return url, None
    if not dialect_for(provider).schemas:
        raise ConfigError(f"schema={schema!r} in the URL is for PostgreSQL: on MySQL and MariaDB give processcache"
                          " a database of its own (mysql://user@host/processcache)")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(f"schema={schema!r} in the URL: use letters, digits and underscores (processcache)")
    if "options=" in url.partition("?")[2]:
        raise ConfigError("schema= and libpq's options= in one URL: give the search path one way (schema=)")
    joiner = "&" if "?" in url else "?"
    return url + joiner + urlencode({"options": f"-c search_path={schema}"}), schema


def _take_option(url: str, name: str) -> tuple[str, str | None]:
    """*url* without the option *name*, and its (last) value or None, for options processcache reads itself."""
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    values = [value for key, value in pairs if key == name]
    if not values:
        return url, None
    kept = [(key, value) for key, value in pairs if key != name]
    return (base + "?" + urlencode(kept)) if kept else base, values[-1]


def _refuse_sqlite_without_path(url: str) -> None:
    """Refuse a SQLite URL with a user or host part where its path belongs (``sqlite://cron:pw@host/db``)."""
    location = url.split("://", 1)[1].partition("?")[0]
    if not location.startswith("/") and location != ":memory:":
        raise ConfigError(f"{masked_text(url, _SCHEMES)!r} has no file path: use sqlite:///relative.db or"
                          " sqlite:////abs/path.db")


def _parse_sqlite(url: str) -> DatabaseConfig:
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    pragmas = dict(SQLITE_DEFAULTS)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in SQLITE_DEFAULTS:
            raise ConfigError(
                f"unknown SQLite option {name!r} in the URL: use one of {', '.join(SQLITE_DEFAULTS)}"
            )
        pragmas[name] = value.lower()
    if path in (":memory:", "/:memory:"):
        return DatabaseConfig("sqlite", {"filename": ":sharedmemory:"}, "sqlite://:memory:", pragmas=pragmas)
    path = unquote(path[1:])
    if not path:
        raise ConfigError(f"{masked_text(url, _SCHEMES)!r} has no file name: use sqlite:///state.db")
    # Pony resolves a relative name against the calling module's folder; hand
    # it an absolute path so a relative URL means the current directory.
    filename = os.path.abspath(os.path.expanduser(path))
    return DatabaseConfig(
        "sqlite", {"filename": filename, "create_db": True}, "sqlite:///" + filename, pragmas=pragmas
    )


def _parse_server(url: str, provider: str) -> DatabaseConfig:
    try:
        parts = urlsplit(url)
    except ValueError:  # its message quotes the text it failed on, which may be a password
        raise ConfigError(f"bad database URL {masked_text(url, _SCHEMES)!r}: its user name, password or host holds a"
                          f" character that cannot stand there; {_PERCENT_ENCODE}") from None
    host, port = _hosts(parts, dialect_for(provider))
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"the URL {mask_url(parts)!r} names no database: add /dbname at its end")
    dialect = dialect_for(provider)
    options = dialect.url_options(parts.query)
    args = {"host": host, **options}
    if port:
        args["port"] = port
    if parts.username:
        args["user"] = unquote(parts.username)
    args["database"] = database
    if parts.password is not None:
        args["password"] = unquote(parts.password)
    password = args.get("password")  # from the user part, or a ?password= option: masked in every message
    if password:
        args["password"] = dialect.driver_password(password)
    read_timeout = dialect.take_read_timeout(args)
    return DatabaseConfig(provider, args, mask_url(parts), password=password or None,
                          read_timeout=read_timeout, connect_timeout=float(args["connect_timeout"]))


def _hosts(parts: SplitResult, dialect: Dialect) -> tuple[str, int | str | None]:
    """The URL's host and port as the driver takes them: one host and its port, or libpq's lists of several.

    ``postgresql://cron@db1:5432,db2:5433/cron`` names two hosts, which
    libpq tries in turn (``host="db1,db2"``, ``port="5432,5433"``; a host
    without a port leaves its place in the list empty: the default port).
    With ``?target_session_attrs=read-write`` it passes over a standby, so
    a connection made after a failover reaches the new primary. MySQL's
    drivers take one host. A host may be percent-encoded (a Unix socket's
    folder, ``%2Fvar%2Frun%2Fpostgresql``); none is localhost.
    """
    items = parts.netloc.rpartition("@")[2].split(",")
    if len(items) > 1 and not dialect.host_lists:
        raise ConfigError(f"the URL {mask_url(parts)!r} names several hosts, which MySQL and MariaDB URLs cannot:"
                          " name one (a proxy or a virtual IP in front of the replicas, for a failover)")
    hosts, ports = zip(*(_host_and_port(item, parts, len(items) > 1) for item in items), strict=True)
    if len(items) == 1:
        return hosts[0], ports[0] or None
    return ",".join(hosts), ",".join(str(port or "") for port in ports) if any(ports) else None


#: One host of a URL: a name or address, or an IPv6 address in brackets, then ``:port`` or nothing.
_HOST_ITEM = re.compile(r"(\[[^\]]*\]|[^\[\]:]*)(?::(\d{0,5}))?")


def _host_and_port(item: str, parts: SplitResult, listed: bool) -> tuple[str, int]:
    """One ``host:port`` of a URL's hosts (0 for no port: the default); *listed* when the URL names several."""
    found = _HOST_ITEM.fullmatch(item)
    if found is None or int(found.group(2) or 0) > 65535:
        what = f"{item!r} in its host list is not host or host:port" if listed else "its port is not a whole number"
        raise ConfigError(f"bad database URL {mask_url(parts)!r}: {what} (a port is from 0 to 65535)")
    return unquote(found.group(1).strip("[]")) or "localhost", int(found.group(2) or 0)


#: A URL scheme (RFC 3986): a text before "://" that is not one may be a user part.
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_PERCENT_ENCODE = ("percent-encode the user name and password (/ as %2F, ? as %3F, # as %23, @ as %40, : as %3A;"
                   " urllib.parse.quote(password, safe='') does it)")


def _refuse_unencoded(url: str) -> None:
    """Refuse a server URL that a URL parser would split elsewhere than its writer meant.

    A password with an unencoded ``/``, ``?`` or ``#`` ends early: the
    parser reads its start as a port (so ``cron:12345/Secret@host`` has port
    12345) and its end as the path or an option. Such a URL has a user part
    with a ``:`` and an ``@`` after the first ``/``, ``?`` or ``#``; an
    ``@`` in an option's value looks the same, so a URL with a password must
    write it ``%40``. What follows a ``#`` would be dropped unread (the end
    of a ``?password=``, say), so a ``#`` must be ``%23`` everywhere.
    """
    rest = url.split("://", 1)[1]
    cut = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
    user_part = rest[:cut].partition("@")[0]  # with no "@" before the cut, all of it may be one
    if "#" in rest or (":" in user_part and "@" in rest[cut:]):
        raise ConfigError(f"bad database URL {masked_text(url, _SCHEMES)!r}: a / ? # or @ in its password, or a #"
                          f" or @ in an option's value, is read as the end of that part; {_PERCENT_ENCODE}")
