"""Reading from a standby: how far behind its primary the database a read-only command reads is.

A PostgreSQL streaming standby (a Patroni replica) serves the read-only
commands (``--read-url``, `processcache.cli.format.reading`) so that the
primary is left to the runs. What it shows is the primary's data as of the
last transaction it replayed: with synchronous replication a commit the
primary confirmed is flushed on a synchronous standby, and replayed a few
milliseconds later; an asynchronous one, or any standby that lost its
primary, may be behind by as long as it has not replayed.

`replay_lag` says by how much, the usual way: 0 when the standby has
replayed all the WAL it received, else the time since the commit of the
last transaction it replayed. A standby cut off from its primary replays
everything it received and so says 0: Patroni's ``/cluster`` (``lag``)
tells that apart.
"""

from typing import TYPE_CHECKING

from ..durations import format_duration

if TYPE_CHECKING:
    from .backend import Backend

def replay_lag(backend: "Backend") -> float | None:
    """Seconds the database is behind its primary (see the module docstring); None when it is no standby.

    A standby that has replayed nothing since it started has no commit time
    to go by: its lag is unknown, reported as infinite.
    """
    if backend.dialect.replay_lag is None:
        return None  # SQLite has no standby; a MySQL replica is read through its own URL, as it is
    standby, lag = backend.select(backend.dialect.replay_lag)[0]
    if not standby:
        return None
    return float("inf") if lag is None else float(lag)


def behind(lag: float) -> str:
    """How far behind a `replay_lag` is, in words a page or a line shows: ``12s``, or that no one knows."""
    return "an unknown time (nothing replayed since it started)" if lag == float("inf") else format_duration(lag)
