"""Single-row durable writes, and the cache's reads, straight on the connection Pony keeps for this thread.

A write through a Pony session spends about 25 µs in Pony's own bookkeeping
(session cache, transaction mode, statistics): half the cost of an insert on
SQLite. Appends of entries and logs are the hot path of cron jobs, so they
take the driver connection from Pony's pool (one per thread, set up by the
same on-connect hook) and commit it at once. Inside one of processcache's own
transactions (a `CacheContext.batch`, see `transactions.py`) they run on its
connection instead and join it; a Pony session the application opened for
its own database does not count.

On PostgreSQL the connection is put in autocommit mode for these writes:
the statement is then its own durable transaction, one round trip instead of
the three psycopg2 sends otherwise (BEGIN, the statement, COMMIT). Pony sets
the mode it needs at the start of each of its own sessions.

The cache's reads (a load of 100,000 entries, a key read per call) run
there too when no session is open, for the same bookkeeping.

SQL here uses the driver's own parameter marks: ``?`` on SQLite, ``%s`` on
PostgreSQL and MySQL (`Writer.sql`); `Writer.select` takes Pony's ``$name``.
"""

import functools
import re
from collections.abc import Callable

from .retry import retrying
from .sql import rows

_PARAM = re.compile(r"\$(\w+)")


class Writer:
    """Runs single-row writes and the cache's reads of one processcache Database; see the module docstring."""

    def __init__(self, database) -> None:
        self.database = database
        db = self.db = database.pony
        self.provider = db.provider
        dialect = db.provider.dialect
        self.mark = "?" if dialect == "SQLite" else "%s"
        self.sqlite = dialect == "SQLite"
        self.postgres = dialect == "PostgreSQL"
        # Statements commit themselves: Pony opens SQLite with isolation_level=None.
        self.autocommit = self.sqlite or self.postgres
        self.returning = " RETURNING id" if dialect == "PostgreSQL" else ""

    def sql(self, text: str) -> str:
        """*text* with each ``?`` turned into this driver's parameter mark."""
        return text.replace("?", self.mark)

    def insert(self, sql: str, params: tuple, read_back: str | None = None, find: tuple | None = None,
               refused: "Callable[[], Exception] | None" = None):
        """Run one INSERT (written with `sql`), committed, and return the new row's id.

        With *read_back* (a SELECT of one value taking the id), return
        ``(id, value)``, read on the same connection before the commit.
        *find* is ``(select, params)``: a SELECT of the row's id by its
        identity, run before the INSERT is tried again after a lost
        connection, so the row is never stored twice (`retry.retrying`).
        *refused* makes the error to raise when the INSERT stored no row (a
        fenced ``INSERT ... SELECT`` whose lock is no longer held).
        """

        def result(cursor):
            if refused is not None and cursor.rowcount == 0:
                raise refused()
            new_id = self._new_id(cursor)
            if read_back is None:
                return new_id
            cursor.execute(read_back, (new_id,))
            return new_id, cursor.fetchone()[0]

        def done():
            found = self.read_value(*find)
            if found is None or read_back is None:
                return found
            return found, self.read_value(read_back, (found,))

        return self._write(sql + self.returning, params, result, done if find is not None else None)

    def read_value(self, sql: str, params: tuple):
        """The first value of a one-row SELECT, or None."""
        found = self._fetch(sql, params)
        return found[0][0] if found else None

    def select(self, sql: str, params: dict) -> list[tuple]:
        """Rows of a SELECT written with Pony's ``$name`` parameters, tried again after a lost connection.

        Outside a Pony session it runs straight on this thread's connection;
        inside one (a batch) it reads in it, seeing the batch's writes.
        """
        if self.database.transaction.active:
            return rows(self.db, sql, params)
        text, names = _positional(sql, self.mark)
        values = tuple(params[name] for name in names)
        return retrying(self.database, lambda: self._fetch(text, values))

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        connection = self._connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            found = cursor.fetchall()
            if not self.autocommit:
                connection.rollback()  # MySQL: end the snapshot the SELECT began
        except BaseException:
            self._drop(connection)
            raise
        return found

    def _new_id(self, cursor) -> int:
        return cursor.fetchone()[0] if self.returning else cursor.lastrowid

    def _write(self, sql: str, params: tuple, result, done=None):
        if self.database.transaction.active:  # a batch: join its transaction
            cursor = self.db.get_connection().cursor()
            cursor.execute(sql, params)
            return result(cursor)
        return retrying(self.database, lambda: self._commit(sql, params, result), done)

    def _connection(self):
        connection, is_new = self.provider.connect()
        if is_new:
            self.db.call_on_connect(connection)
        if self.postgres and not connection.autocommit:
            connection.autocommit = True
        return connection

    def _commit(self, sql: str, params: tuple, result):
        connection = self._connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            value = result(cursor)
            if not self.autocommit:
                connection.commit()
        except BaseException:
            self._drop(connection)
            raise
        return value

    def _drop(self, connection) -> None:
        """Forget a server connection after a failure: it may be dead or mid-transaction."""
        if not self.sqlite and self.provider.pool.con is connection:
            self.provider.pool.drop(connection)


@functools.lru_cache(maxsize=256)
def _positional(sql: str, mark: str) -> tuple[str, tuple[str, ...]]:
    """*sql* with each ``$name`` turned into the driver's *mark*, and the names in order (a few shapes recur)."""
    names: list[str] = []
    text = _PARAM.sub(lambda match: names.append(match.group(1)) or mark, sql)
    return text, tuple(names)
