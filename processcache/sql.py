"""Reading many rows through Pony as plain tuples.

``Database.select`` wraps every row in a row class it builds per call (a
tenth of a 100,000-row load), and ``Database.execute`` starts a write
transaction (on SQLite, ``BEGIN IMMEDIATE``: the write lock, for a read).
`rows` runs a read the way ``select`` does, on the session's connection and
with Pony's ``$name`` parameters, and returns the driver's tuples as they
are. It uses ``Database._exec_raw_sql``, the method ``select`` itself calls
(Pony is pinned below 0.8 for it).
"""


def rows(db, sql: str, params: dict) -> list[tuple]:
    """The rows of the SELECT *sql*, as tuples; call inside a ``db_session``."""
    return db._exec_raw_sql(sql, params, None, 0).fetchall()
