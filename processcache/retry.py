"""Surviving a lost database connection: a bounded retry with backoff, never a double write.

A server restart, a failover or an operator's ``pg_terminate_backend`` /
``KILL`` breaks the connection a process holds. An operation that fails
because the connection went away is tried again on a new connection, after
0.1 s, 0.2 s, 0.4 s... (with jitter), at most ``retries`` times (the URL's
``?retries=N``, default 3), and then fails with one line naming the
database, never its password.

A write whose commit was cut off may or may not have been stored. Before
trying it again, the caller's *done* check looks for it by its identity
(the row's job, machine, key and microsecond time stamp), so a retried
write is never stored twice.
"""

import random
import time
from collections.abc import Callable
from typing import Any

from .errors import DatabaseUnavailableError

DEFAULT_RETRIES = 3
_NOT_DONE = object()


def is_disconnect(provider, exc: BaseException) -> bool:
    """Whether *exc* means the connection went away (not a bad statement)."""
    from pony.orm.core import ConnectionClosedError

    if isinstance(exc, ConnectionClosedError):
        return True
    original = getattr(exc, "original_exc", exc)
    if provider.should_reconnect(original):
        return True
    name = type(original).__name__
    if name == "InterfaceError":  # psycopg2 "connection already closed", PyMySQL on a dead socket
        return True
    return name == "OperationalError" and getattr(original, "args", (None,))[0] in (2006, 2013, 4031)


def retrying(database, operation: Callable[[], Any], done: Callable[[], Any] | None = None) -> Any:
    """Run *operation*; after a lost connection, check *done*, then run it again (bounded)."""
    provider = database.pony.provider
    retries = database.retries
    for attempt in range(retries + 1):
        try:
            return operation()
        except Exception as exc:
            if not is_disconnect(provider, exc) or attempt == retries:
                if is_disconnect(provider, exc):
                    reason = database.config.mask(str(getattr(exc, "original_exc", exc)).strip().splitlines()[0]
                                                  if str(exc).strip() else type(exc).__name__)
                    raise DatabaseUnavailableError(
                        f"lost the connection to {database.url} and {retries} retries failed ({reason}):"
                        " check that the server is up, then run again") from None
                raise
            _drop_connection(provider)
            time.sleep(0.1 * 2 ** attempt * random.uniform(0.5, 1.5))
            if done is not None:
                found = _safely(database, done)
                if found is not _NOT_DONE and found:  # stored before the connection went
                    return found


def _safely(database, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except Exception as exc:
        if is_disconnect(database.pony.provider, exc):
            _drop_connection(database.pony.provider)
            return _NOT_DONE
        raise


def _drop_connection(provider) -> None:
    """Forget this thread's pooled connection so the next use opens a new one."""
    pool = provider.pool
    connection = getattr(pool, "con", None)
    if connection is not None:
        try:
            pool.drop(connection)
        except Exception:
            pool.con = None  # closing a broken connection can fail too
