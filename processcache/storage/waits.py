"""Bounded, interruptible waits on PostgreSQL: a psycopg2 wait callback with timeouts for our connections.

libpq's ``connect_timeout``, keepalives and ``tcp_user_timeout`` notice a
peer that stops acknowledging. A server or proxy that acknowledges and
never answers keeps libpq waiting for ever, inside C, where a Python signal
handler cannot run: SIGTERM waits too. With a wait callback installed
(`psycopg2.extensions.set_wait_callback`), psycopg2 drives every
connection in non-blocking mode and calls the callback whenever it must
wait, so the wait happens in Python's ``select()``: with a timeout, and
with signal handlers running (a handler that raises ends the wait).

The callback is process-wide, so `wait` tells processcache's connections
(of the class `connection_factory` makes, which carries their timeouts)
from the application's. Ours wait at most ``connect_timeout``
for a connection to open (libpq does not enforce it in non-blocking mode;
the hosts of a multi-host URL are tried one by one, each with its own:
`connect_each_host`) and ``read_timeout`` for each answer; then `wait` raises
`psycopg2.OperationalError`, psycopg2 closes the connection, and
`processcache.storage.retry` sees a lost connection. Any other connection waits
exactly as with `psycopg2.extras.wait_select`: no timeout, and Ctrl-C
cancels its query.

What this means for an application's own psycopg2 connections once a
processcache PostgreSQL database is opened: they run in non-blocking mode
too, where psycopg2 refuses COPY (``copy_expert`` and friends) and large
objects, and libpq does not enforce their ``connect_timeout``. Such an
application can set the callback back to None around its COPY
(processcache's waits are unbounded meanwhile). An application that
installed a wait callback of its own (psycogreen for gevent or eventlet,
say) keeps it: `install` does not replace it, and processcache's
connections then rely on libpq's keepalives and ``tcp_user_timeout`` only,
which do not bound a server that acknowledges and never answers.
"""

import functools
import random
import select
import time
from collections.abc import Callable

import psycopg2
from psycopg2 import extensions, extras


class BoundedConnection(extensions.connection):
    """A processcache connection: `wait` bounds its waits by these (seconds; set per subclass)."""

    connect_timeout: float
    read_timeout: float


@functools.cache
def connection_factory(connect_timeout: float, read_timeout: float) -> Callable[[str, int], BoundedConnection]:
    """psycopg2's ``connection_factory``: a connection whose waits these timeouts bound, one host at a time."""
    bounded = type("BoundedConnection", (BoundedConnection,),
                   {"connect_timeout": connect_timeout, "read_timeout": read_timeout})
    return functools.partial(connect_each_host, bounded)


def connect_each_host(bounded: type, dsn: str, async_: int = 0) -> BoundedConnection:
    """A *bounded* connection to the first host of *dsn* that takes it, each host given its own connect_timeout.

    libpq tries the hosts of a multi-host URL in turn, giving each its own
    ``connect_timeout``, when it waits itself; here `wait` waits, with one
    deadline for the whole list. A first host that never answers (the old
    primary's machine gone, its packets dropped: the usual failover) would
    spend it all, every time, and the new primary would never be tried. So
    each host is a connection of its own, in the order given (shuffled with
    ``load_balance_hosts=random``), and libpq checks ``target_session_attrs``
    on each; ``prefer-standby`` as libpq means it over the whole list: each
    host is tried as a standby first, then each as any server (a silent
    host then costs its timeout twice). When none takes it, the error says
    why for each host, in one line, and lists them (``each_host``): a name
    that does not resolve is a lasting fault, but not while another host of
    the list is only restarting.
    """
    params = extensions.parse_dsn(dsn)
    hosts = params.get("host", "").split(",")
    ports = params.get("port", "").split(",")
    if len(hosts) == 1 or "hostaddr" in params or len(ports) not in (1, len(hosts)):
        return bounded(dsn, async_)  # one host, or lists libpq matches (or refuses) itself
    pairs = list(zip(hosts, ports * len(hosts) if len(ports) == 1 else ports, strict=True))
    if params.get("load_balance_hosts") == "random":
        random.shuffle(pairs)
    common = {name: value for name, value in params.items() if name not in ("host", "port", "load_balance_hosts")}
    passes = [common]
    if common.get("target_session_attrs") == "prefer-standby":  # each host alone would take the first that answers
        passes = [{**common, "target_session_attrs": "standby"}, {**common, "target_session_attrs": "any"}]
    failures: list[str] = []
    for options in passes:
        connection, failures = _first_taking(bounded, pairs, options, async_)
        if connection is not None:
            return connection
    error = psycopg2.OperationalError("; ".join(failures))
    error.each_host = failures  # `retry.is_unreachable` judges each: one host's lasting fault must not stop the wait
    raise error


def _first_taking(bounded: type, pairs: list[tuple[str, str]], options: dict,
                  async_: int) -> tuple[BoundedConnection | None, list[str]]:
    """A connection to the first host of *pairs* that takes one with *options*, or None and why each did not."""
    failures = []
    for host, port in pairs:
        try:
            return bounded(extensions.make_dsn(**{**options, "host": host, "port": port or None}), async_), []
        except psycopg2.OperationalError as exc:
            failures.append(f"{host}:{port or 'default port'}: {(str(exc).strip() or 'failed').splitlines()[0]}")
    return None, failures


def install() -> bool:
    """Make `wait` psycopg2's wait callback unless the application installed another; whether `wait` is it."""
    current = extensions.get_wait_callback()
    if current is None or current is extras.wait_select:
        extensions.set_wait_callback(wait)
    return extensions.get_wait_callback() is wait


def wait(conn) -> None:
    """psycopg2's wait callback: bounded for processcache's connections, `wait_select` for the others."""
    if not isinstance(conn, BoundedConnection):
        extras.wait_select(conn)
        return
    connecting = conn.status == extensions.STATUS_SETUP
    deadline = time.monotonic() + conn.connect_timeout if connecting else None
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state not in (extensions.POLL_READ, extensions.POLL_WRITE):
            raise psycopg2.OperationalError(f"bad state from poll: {state}")
        timeout = conn.read_timeout if deadline is None else max(0.0, deadline - time.monotonic())
        fd = [conn.fileno()]
        ready = select.select(fd, [], [], timeout) if state == extensions.POLL_READ else \
            select.select([], fd, [], timeout)
        if not any(ready):
            what = f"connect within connect_timeout={conn.connect_timeout:g}s" if connecting else \
                f"answer within read_timeout={conn.read_timeout:g}s"
            raise psycopg2.OperationalError(f"the server did not {what}: the connection was closed")
