"""Surviving a lost database connection: retries within a time budget, never a double write.

A server restart, a failover or an operator's ``pg_terminate_backend`` /
``KILL`` breaks the connection a process holds, and a stalled server ends a
wait at the read timeout (`processcache.storage.config`). An operation that fails
because the connection went away is tried again on a new connection after
pauses of 0.1 s, 0.2 s, 0.4 s... capped at 2 s (each jittered by ±50 %, so
that the processes a restart cut off do not all come back at once) until
the retry budget runs out: the URL's ``?retry_for=30s`` (default 30 s; 0
never retries), measured from the first failure, long enough for a server
restart or a failover. The first connection of a `Database` is waited for
the same way: cron may start a job while the server restarts. Then one
line says what was lost, for how long it was tried, and what to do, naming
the database, never its password. Once one operation has spent the budget,
the Database's other operations fail at once for as long again
(`RetryBudget`), so that ending the run does not wait the budget again.

A write whose commit was cut off may or may not have been stored. Before
trying it again, the caller's *done* check looks for it by its identity
(the row's job, machine, key and microsecond time stamp), so a retried
write is never stored twice.

A processcache table that does not exist (an operator dropped it by hand)
is not tried again either: it fails at once with one line that says how
to see and repair it (`is_missing_table`; the line is `backend.missing_table`'s).

This module is pure: what a lost connection is, how long to keep trying,
the one line of an outage. The backend drives the retries with it
(`backend.retrying`); nothing here calls the backend.
"""

import random
import time
from datetime import UTC, datetime

from ..durations import format_duration
from ..errors import DatabaseUnavailableError

FIRST_PAUSE = 0.1
MAX_PAUSE = 2.0
#: MySQL/MariaDB error codes of a connection that is gone or cannot be had now: can't connect (2003),
#: gone away (2006), lost during a query (2013), server shutting down (1053), connection killed (1927),
#: idle too long (4031).
_MYSQL_LOST = (2003, 2006, 2013, 1053, 1927, 4031)
#: A table that does not exist: MySQL/MariaDB's error code, PostgreSQL's SQLSTATE, the start of SQLite's message.
_MYSQL_NO_SUCH_TABLE = 1146
_PG_UNDEFINED_TABLE = "42P01"
_SQLITE_NO_SUCH_TABLE = "no such table"
#: A statement the database user may not run: MySQL/MariaDB's codes (table, column), PostgreSQL's SQLSTATE.
_MYSQL_DENIED = (1142, 1143)
_PG_DENIED = "42501"
#: What a failed first connection says when trying again cannot help: bad settings, not a server away.
_PERMANENT = ("password authentication failed", "does not exist", "no pg_hba.conf entry", "could not translate host",
              "invalid connection option", "invalid sslmode", "Name or service not known", "nodename nor servname",
              "Access denied", "Unknown database")


class Attempts:
    """One operation's retries: growing, jittered pauses until *seconds* after its first failure."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self._pause = FIRST_PAUSE

    def wait(self) -> bool:
        """After a failure: pause and return True, or return False once the budget is spent."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        left = self.started + self.seconds - now
        if left <= 0:
            return False
        time.sleep(min(left, self._pause * random.uniform(0.5, 1.5)))
        self._pause = min(self._pause * 2, MAX_PAUSE)
        return True

    def spent(self) -> str:
        """What a message says about the retries: for how long, or that there were none."""
        if self.seconds <= 0:
            return "not tried again (retry_for=0 in the URL)"
        return f"tried again for {format_duration(time.monotonic() - (self.started or time.monotonic()))}"

    def since(self) -> str:
        """When the first failure was, by this machine's clock (a person reads it): ``13:40:05 UTC``."""
        ago = time.monotonic() - (self.started or time.monotonic())
        return f"{datetime.fromtimestamp(time.time() - ago, UTC):%H:%M:%S} UTC"


#: A driver's message for a server that cannot be reached, in plain words: the first marker found says it.
_PLAINLY = (("refused", "connection refused"), ("timed out", "no answer: timed out"),
            ("timeout", "no answer: timed out"), ("no route to host", "no route to host"),
            ("network is unreachable", "network unreachable"), ("starting up", "the server is starting up"),
            ("shutting down", "the server is shutting down"), ("closed the connection", "the server closed the"
                                                                                    " connection"),
            ("lost connection", "the connection was lost"), ("gone away", "the server has gone away"))


def unreachable(backend_url: str, database_config, exc: BaseException, attempts: Attempts) -> DatabaseUnavailableError:
    """The one line for a server that could not be reached: which, why in plain words, since when, how long tried.

    Cron mails it from every crontab line of every machine while the
    outage lasts, so it names the outage once, plainly; the driver's own
    words stay when none of `_PLAINLY` fits, and when they say why for each
    of several hosts.
    """
    said = reason(database_config, exc)
    several = "; " in said  # libpq's hosts tried in turn (`waits.connect_each_host`): why, for each
    plain = said if several else next((words for marker, words in _PLAINLY if marker in said.lower()), said)
    tried = attempts.spent() + ("" if attempts.seconds <= 0 else " (retry_for= in the URL)")
    return DatabaseUnavailableError(f"the database at {backend_url} cannot be reached ({plain}) since"
                                    f" {attempts.since()}; {tried}")


class RetryBudget:
    """A Database's retry budget, shared by its threads: ``?retry_for=`` seconds per outage.

    Once an operation has spent it, every operation of the Database fails
    at once with the same error for as long again, without waiting: a run
    whose job lost the server then records its failure, releases its lock
    and ends, instead of waiting the whole budget again for each of those.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._gave_up: tuple[float, str] | None = None  # (when, the error's message)

    def attempts(self) -> Attempts:
        """The retries of one operation; raises the last error while the budget is spent."""
        gave_up = self._gave_up
        if gave_up is not None:
            if time.monotonic() - gave_up[0] < self.seconds:
                raise DatabaseUnavailableError(gave_up[1])
            self._gave_up = None
        return Attempts(self.seconds)

    def give_up(self, message: str) -> DatabaseUnavailableError:
        """Note that the budget is spent, and return the error to raise."""
        self._gave_up = (time.monotonic(), message)
        return DatabaseUnavailableError(message)


def is_unreachable(exc: BaseException) -> bool:
    """Whether a failed first connection may succeed later (a server down, restarting or stalled).

    Bad settings (a wrong password, database or host name) fail at once:
    trying them again for the whole budget would only delay the error. With
    several hosts (``each_host``, `waits.connect_each_host`), only when every
    host failed so: the list is waited for as a whole while any one of them
    may come back (a primary restarting beside a standby's name that no
    longer resolves).
    """
    original = getattr(exc, "original_exc", exc)
    said = getattr(original, "each_host", None) or [str(original)]
    if all(any(marker in text for marker in _PERMANENT) for text in said):
        return False
    return type(original).__name__ == "OperationalError" or is_lost(original)


def is_lost(original: BaseException) -> bool:
    """Whether a driver's error says the connection is gone or cannot be had now."""
    name = type(original).__name__
    if name == "InterfaceError":  # psycopg2 "connection already closed", PyMySQL on a dead socket
        return True
    args: tuple = getattr(original, "args", ())
    return name == "OperationalError" and bool(args) and args[0] in _MYSQL_LOST


def reason(database_config, exc: BaseException) -> str:
    """The first line of the driver's message, password masked: what a one-line error quotes."""
    original = getattr(exc, "original_exc", exc)
    text = str(original).strip()
    return database_config.mask(text.splitlines()[0] if text else type(original).__name__)


def is_missing_table(exc: BaseException) -> bool:
    """Whether *exc* says a table does not exist (an operator dropped one, a partial restore): no retry helps."""
    original = getattr(exc, "original_exc", exc)
    args = getattr(original, "args", ())
    return (getattr(original, "pgcode", None) == _PG_UNDEFINED_TABLE or bool(args and args[0] == _MYSQL_NO_SUCH_TABLE)
            or str(original).startswith(_SQLITE_NO_SUCH_TABLE))


def is_denied(exc: BaseException) -> bool:
    """Whether *exc* says the database user may not run the statement (a read-only monitoring user)."""
    original = getattr(exc, "original_exc", exc)
    args = getattr(original, "args", ())
    return getattr(original, "pgcode", None) == _PG_DENIED or bool(args and args[0] in _MYSQL_DENIED)
