"""Database URLs: parsing, precedence, defaults and masking of passwords.

Accepted URLs::

    sqlite:///relative/path.db      relative to the current directory
    sqlite:////absolute/path.db
    sqlite://:memory:               one in-memory database shared by the process's threads
    postgresql://user:password@host:5432/dbname   (also postgres://)
    mysql://user:password@host:3306/dbname        (MySQL and MariaDB; also mariadb://)

Precedence: an explicit URL, then ``PROCESSCACHE_DATABASE_URL``, then the
SQLite file ``processcache.db`` in the user's data directory.

SQLite settings, chosen for many cron processes writing one file (each can be
overridden in the URL's query string, e.g. ``sqlite:///state.db?synchronous=full``):
"""

import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .errors import ConfigError

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

_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}
_MASK = "***"


@dataclass(frozen=True)
class DatabaseConfig:
    """What `connect()` needs to bind Pony: the provider and its arguments."""

    provider: str
    bind_args: dict = field(repr=False)
    safe_url: str
    password: str | None = field(default=None, repr=False)
    pragmas: dict = field(default_factory=dict)
    retries: int = 3

    def mask(self, text: str) -> str:
        """Return *text* with the password replaced, for messages and logs."""
        if self.password:
            text = text.replace(self.password, _MASK)
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
    """Turn a database URL into a DatabaseConfig, or raise ConfigError.

    Every URL takes ``?retries=N``: how often an operation that lost its
    connection is tried again (default 3; see `processcache.retry`).
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"{_masked_text(url)!r} is not a database URL: use sqlite:///file.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        )
    scheme = url.split("://", 1)[0].lower()
    provider = _SCHEMES.get(scheme.split("+", 1)[0])
    if provider is None:
        raise ConfigError(
            f"unknown database URL scheme {scheme!r}: use sqlite, postgresql or mysql"
        )
    url, retries = _take_retries(url)
    config = _parse_sqlite(url) if provider == "sqlite" else _parse_server(url, provider)
    return replace(config, retries=retries)


def _take_retries(url: str) -> tuple[str, int]:
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name != "retries"]
    retries = [value for name, value in pairs if name == "retries"]
    if not retries:
        return url, 3
    if not retries[-1].isdigit() or int(retries[-1]) > 100:
        raise ConfigError(f"retries={retries[-1]!r} in the URL: use a whole number from 0 to 100")
    return (base + "?" + urlencode(kept)) if kept else base, int(retries[-1])


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
    if not path.startswith("/"):
        raise ConfigError(f"{url!r} has no file path: use sqlite:///relative.db or sqlite:////abs/path.db")
    path = unquote(path[1:])
    if not path:
        raise ConfigError(f"{url!r} has no file name: use sqlite:///state.db")
    # Pony resolves a relative name against the calling module's folder; hand
    # it an absolute path so a relative URL means the current directory.
    filename = os.path.abspath(os.path.expanduser(path))
    return DatabaseConfig(
        "sqlite", {"filename": filename, "create_db": True}, "sqlite:///" + filename, pragmas=pragmas
    )


def _parse_server(url: str, provider: str) -> DatabaseConfig:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad database URL {_masked_text(url)!r}: {exc}") from None
    password = unquote(parts.password) if parts.password is not None else None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"the URL {_mask_url(parts)!r} names no database: add /dbname at its end")
    args = {"host": parts.hostname or "localhost", **dict(parse_qsl(parts.query))}
    if port:
        args["port"] = port
    if parts.username:
        args["user"] = unquote(parts.username)
    args["database"] = database
    if password is not None:
        args["password"] = password
    if provider == "mysql":
        args.setdefault("charset", "utf8mb4")  # 3-byte utf8 cannot hold emoji
    return DatabaseConfig(provider, args, _mask_url(parts), password=password or None)


def _mask_url(parts) -> str:
    """The URL of *parts* with its password and any password option shown as ``***``."""
    return _masked_text(parts.geturl())


#: A password given as an option (``?password=``, ``&passwd=``, ``sslpassword=``, ``pwd=``): its
#: value runs to the next ``&name=``, so an unencoded ``&``, ``#`` or ``?`` in it stays masked.
_PASSWORD_OPTION = re.compile(r"([?&][^=&]*(?:pass|pwd)[^=&]*=)(?:[^&]|&(?![\w.-]+=))*", re.IGNORECASE)


def _masked_text(url) -> str:
    """Mask what may be a password in a URL, whether it parses or not.

    A ``?password=`` option's value is masked first. Then the user part runs
    from after ``://`` (or the start, when it is missing) to the *last* ``@``,
    so a password with an unencoded ``/``, ``?``, ``#`` or ``@`` in it, which
    a URL parser splits at, is masked whole; everything after the user part's
    first ``:`` is the password.
    """
    text = _PASSWORD_OPTION.sub(lambda found: found.group(1) + _MASK, str(url))
    start = text.find("://") + 3 if "://" in text else 0
    at = text.rfind("@")
    if at > start and ":" in text[start:at]:
        text = f"{text[:start]}{text[start:at].split(':', 1)[0]}:{_MASK}{text[at:]}"
    return text
