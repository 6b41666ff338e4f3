"""Reading many rows through Pony as plain tuples, quickly.

``Database.select`` wraps every row in a row class it builds per call (a
tenth of a 100,000-row load), and ``Database.execute`` starts a write
transaction (on SQLite, ``BEGIN IMMEDIATE``: the write lock, for a read).
`rows` runs a read the way ``select`` does, on the session's connection and
with Pony's ``$name`` parameters, and returns the driver's tuples as they
are. It uses ``Database._exec_raw_sql``, the method ``select`` itself calls
(Pony is pinned below 0.8 for it).
"""


import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a large result is read and built.

    It runs again and again while a million records are allocated, each pass
    walking all of them: a third of a 1M-entry load. The rows and records
    hold no reference cycles, so nothing is lost by collecting afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rows(db, sql: str, params: dict) -> list[tuple]:
    """The rows of the SELECT *sql*, as tuples; call inside a ``db_session``."""
    return db._exec_raw_sql(sql, params, None, 0).fetchall()
