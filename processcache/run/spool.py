"""The spool's way to the ledger from a command: what waits for the database it reached is stored first.

The spool itself (the local file, its limit, `Spool.flush`) is storage's
(`processcache.storage.spool`); here is what a run or a command does with
it: store what waits, and say in one line on stderr when it cannot, never
failing the run or the command that reached its database.
"""

import sqlite3
import sys
from typing import TYPE_CHECKING

from ..storage import Spool, connect

if TYPE_CHECKING:
    from ..storage import Database


def flush_waiting(db: "Database", url: str | None) -> None:
    """What a command that opened *db* (from *url*) does first: store the runs this machine's spool keeps for it.

    A read-only command (``check``, ``runs``) opens a connection that may
    write for this, only when something waits.
    """
    spool = Spool()
    try:
        if not spool.has_waiting(db.url):
            return
    except Exception as exc:  # noqa: BLE001  (the command goes on: a spool it cannot read is said, once)
        print(f"processcache: {unflushed(spool, db.url, exc)}", file=sys.stderr)
        return
    finally:
        spool.close()
    if not db.read_only:
        flush_quietly(db)
        return

    try:
        writable = connect(url)
    except Exception as exc:  # noqa: BLE001  (the command goes on reading: the spool waits for the next)
        print(f"processcache: runs wait in the spool {spool.path} for {db.url}, which this command could not open"
              f" to store them: {exc}", file=sys.stderr)
        return
    with writable:
        flush_quietly(writable)


def flush_quietly(db: "Database") -> None:
    """Store what this machine's spool holds for *db*; a spool that cannot be flushed is said on stderr, once.

    Never raises: a run that reached its database runs whatever the spool's state.
    """
    spool = Spool()
    try:
        if db.read_only or not spool.has_waiting(db.url):
            return
        spool.flush(db)
    except Exception as exc:  # noqa: BLE001  (the run, or the command, goes on: its spool waits for the next)
        print(f"processcache: {unflushed(spool, db.url, exc)}", file=sys.stderr)
    finally:
        spool.close()


def unflushed(spool: Spool, url: str, exc: Exception) -> str:
    """The one line for runs that wait in *spool* and could not be stored in *url* because of *exc*."""
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return (f"the spool {spool.path} cannot be read ({exc}): what it kept cannot reach {url}; move it aside"
                " (a run that must run without its database needs a spool it can write)")
    try:
        waiting = f"{len(spool.waiting(url))} runs wait"
    except Exception:  # noqa: BLE001  (the first error is the one to tell)
        waiting = "runs wait"
    return (f"{waiting} in the spool {spool.path} and could not be stored in {url}: {type(exc).__name__}: {exc}"
            " (`processcache spool flush` tries again)")
