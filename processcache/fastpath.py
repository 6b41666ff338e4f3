"""Single-row durable writes straight on the connection Pony keeps for this thread.

A write through a Pony session spends about 25 µs in Pony's own bookkeeping
(session cache, transaction mode, statistics): half the cost of an insert on
SQLite. Appends of entries and logs are the hot path of cron jobs, so they
take the driver connection from Pony's pool (one per thread, set up by the
same on-connect hook) and commit it at once. Inside an open Pony session (a
`CacheContext.batch`) they run on the session's connection instead and join
its transaction.

SQL here uses the driver's own parameter marks: ``?`` on SQLite, ``%s`` on
PostgreSQL and MySQL (`Writer.sql`).
"""

from pony.orm import core


class Writer:
    """Runs single-row writes of one Pony database; see the module docstring."""

    def __init__(self, db) -> None:
        self.db = db
        self.provider = db.provider
        dialect = db.provider.dialect
        self.mark = "?" if dialect == "SQLite" else "%s"
        self.autocommit = dialect == "SQLite"  # Pony opens SQLite with isolation_level=None
        self.returning = " RETURNING id" if dialect == "PostgreSQL" else ""

    def sql(self, text: str) -> str:
        """*text* with each ``?`` turned into this driver's parameter mark."""
        return text.replace("?", self.mark)

    def insert(self, sql: str, params: tuple, read_back: str | None = None):
        """Run one INSERT (written with `sql`), committed, and return the new row's id.

        With *read_back* (a SELECT of one value taking the id), return
        ``(id, value)``, read on the same connection before the commit.
        """

        def result(cursor):
            new_id = self._new_id(cursor)
            if read_back is None:
                return new_id
            cursor.execute(read_back, (new_id,))
            return new_id, cursor.fetchone()[0]

        return self._write(sql + self.returning, params, result)

    def _new_id(self, cursor) -> int:
        return cursor.fetchone()[0] if self.returning else cursor.lastrowid

    def _write(self, sql: str, params: tuple, result):
        if core.local.db_session is not None:  # a batch: join its transaction
            cursor = self.db.get_connection().cursor()
            cursor.execute(sql, params)
            return result(cursor)
        connection, is_new = self.provider.connect()
        if is_new:
            self.db.call_on_connect(connection)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            value = result(cursor)
            if not self.autocommit:
                connection.commit()
        except BaseException:
            if not self.autocommit:
                self.provider.drop(connection)
            raise
        return value
