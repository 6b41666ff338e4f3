"""The one seam between processcache and its database: Pony's internals and the drivers, behind a small executor.

Every store (cache, runs, jobs and logs, reports) runs SQL through a
`Backend` and nothing else: `select`, `values`, `value`, `execute`,
`insert`, `insert_many` and `write`, inside `transaction()` or on their own,
with `retrying` around what may be tried again after a lost connection. SQL
is written once, with Pony's ``$name`` parameters, in the plain SQL the
three databases share; what differs between them is a `Dialect`'s
(`dialects.py`). This module alone touches Pony's private API and the
driver connections, so a Pony release that renames one of them breaks one
file, whose contract `tests/storage/test_backend.py` checks on all three databases.
Pony also declares the entities and creates the schema (`schema.py`).

A statement outside a transaction runs straight on the connection Pony
keeps for this thread, committed at once: a write through a Pony session
spends about 25 µs in Pony's own bookkeeping (session cache, transaction
mode, statistics), half the cost of an insert on SQLite, and appends of
entries and logs are the hot path of cron jobs. Where the driver allows,
such a statement is its own durable transaction, one round trip: SQLite
(Pony opens it with ``isolation_level=None``), PostgreSQL and MySQL in
autocommit mode, switched off again for a transaction. Such a statement is
tried again after a lost connection (`retry.py`): a non-idempotent one
passes a *find* check (`write`) or runs inside a transaction.

Transactions are processcache's own, told apart from any Pony session the
application holds in the same thread. Pony keeps one ``db_session`` flag per
thread for every Pony ``Database`` in the process, and flattens nested
sessions into the outermost. An application that uses Pony for its own data
and calls processcache inside its own ``with db_session:`` would otherwise
hold processcache's writes in its transaction: uncommitted until it ends,
gone if it rolls back or the process dies. So:

- outside any Pony session, a transaction is a ``db_session`` of its own;
- inside a session processcache did not open, it commits (or rolls back)
  processcache's database alone when it ends, leaving the application's
  database to the application;
- inside one of processcache's own, it joins it; with *savepoint* it is a
  savepoint instead, so an inner block that raises rolls back its own
  writes only (a `CacheContext.batch` inside a batch).

A Database opened ``read_only=True`` refuses every write here, before it
reaches the driver (`ReadOnlyError`): a write transaction, a schema change,
and any statement but a read (``SELECT``, ``SET``, ``SHOW``, ``EXPLAIN``). The
database refuses them too where a session setting is cheap and stays with
the client (`Dialect.read_only_session`).

Work that must not share the transaction's fate (the logs written inside a
batch, which explain why it failed) is deferred with `after` to the moment
the outermost transaction has ended, committed or rolled back.
"""

import contextlib
import functools
import gc
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pony import orm
from pony.orm import core
from pony.orm.core import ConnectionClosedError, TransactionIntegrityError
from pony.orm.dbapiprovider import DBException, IntegrityError

from ..errors import ConfigError, DatabaseUnavailableError, MissingDriverError, ReadOnlyError, SchemaError
from . import config as configuration
from . import retry
from .clock import moved
from .dialects import SQLITE_MOVED, Dialect, dialect_for
from .pool import Shared, share
from .timeutil import backoff

if TYPE_CHECKING:
    from .database import Database

#: Any failure the database or its driver reported (what code that must not fail on it catches).
DriverError = DBException

_PARAM = re.compile(r"\$(\w+)")
_UNIQUE_ATTEMPTS = 5
_PAGE = 1000
#: How long a statement of a schema change may take to answer (seconds): an index built over a farm's ledger.
SCHEMA_READ_TIMEOUT = 3600.0
#: The statements a read-only Database runs (`Backend.refuse_if_read_only`): reads, and settings of its own session.
_READS = frozenset({"SELECT", "SET", "SHOW", "EXPLAIN"})


class ConstraintViolation(Exception):
    """A statement broke a unique or foreign key: another process got there first, or rows still refer to the row."""


class Backend:
    """The executor of one processcache database; see the module docstring.

    *declare* declares the entities on the Pony database (`schema.declare`);
    the first connection is opened here, waited for within the retry budget.
    """

    def __init__(self, database_config: configuration.DatabaseConfig, read_only: bool,
                 declare: Callable[[Any, Dialect], dict], wait: float | None = None) -> None:
        self.config = database_config
        self.url = database_config.safe_url
        self.read_only = read_only
        self.dialect = dialect_for(database_config.provider)
        self.retry_budget = retry.RetryBudget(database_config.retry_for)
        #: The Pony database: for `schema.py`, which declares and creates the tables, and no one else.
        self.pony = orm.Database()
        self.entities = declare(self.pony, self.dialect)
        self._local = threading.local()
        self._savepoints = itertools.count(1)
        if self.dialect.embedded:
            self._prepare_sqlite()
        if read_only and self.dialect.read_only_session:
            self._read_only_sessions(self.dialect.read_only_session)
        self._bind(wait)
        if self.dialect.resets_sessions:
            _end_sessions_without_discard(self.pony.provider.pool)
        #: The connections this process's threads share (servers only: a SQLite file needs no pool).
        self.pool = None if self.dialect.embedded else Shared(database_config.pool, self.url)
        if self.pool is not None:
            share(self.pony.provider.pool, self.pool)
        self.pony.generate_mapping(create_tables=False, check_tables=False)
        if database_config.schema is not None:
            self._use_schema(database_config.schema)

    # -- transactions ---------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside one of processcache's transactions on this database."""
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def transaction(self, immediate: bool = False, savepoint: bool = False) -> Iterator[None]:
        """A transaction: committed at the end of the block, rolled back on an exception.

        *immediate* takes SQLite's write lock at the start, so a read that
        decides a write cannot be overtaken by another writer. Inside another
        of processcache's transactions it joins that one, or with *savepoint*
        is a savepoint in it. An *immediate* one writes: refused read-only.
        """
        if immediate:
            self.refuse_if_read_only("a write transaction")
        if self.in_transaction:
            with self._savepoint() if savepoint else self._depth():
                yield
            return
        self._before_transaction()
        if core.local.db_session is None:
            session = orm.db_session(immediate=immediate)
        else:
            session = self._inside_foreign_session()
        with self._outermost(session):
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction whose statements all see the database as it was at its first: what shows many
        things at once (the report: a run that ends meanwhile must not be running in one part and done in
        another). Inside another transaction it joins that one, as it is."""
        outermost = not self.in_transaction
        with self.transaction():
            if outermost:
                # SQLite's BEGIN opens the transaction itself: run as a read, which Pony leaves be (as a write,
                # Pony would BEGIN first); the servers' SET TRANSACTION goes first in the one a write opens
                self._cursor_in_transaction(self.dialect.snapshot, {}, write=not self.dialect.embedded)
            yield

    @contextlib.contextmanager
    def ddl(self) -> Iterator[None]:
        """A schema-changing transaction (Pony's ``ddl`` session); the statements inside it join it.

        Its statements may wait `SCHEMA_READ_TIMEOUT` for an answer, not the
        URL's ``read_timeout``: an upgrade builds indexes over every run and
        log (MariaDB took longer than 15 s at 10,000,000 logs, and the cut-off
        failed every run that found the database to upgrade), and a process
        waits its turn for the schema lock meanwhile.
        """
        self.refuse_if_read_only("a schema change")
        self._before_transaction()
        with self._outermost(orm.db_session(ddl=True)), self.dialect.patient(self.pony.get_connection(),
                                                                             SCHEMA_READ_TIMEOUT):
            yield

    def reading_connection(self):
        """Inside a transaction, its driver connection for reads (table and index probes), without making it a
        write transaction as Pony's ``get_connection`` does (SQLite's ``BEGIN IMMEDIATE``, which a read-only
        file or ``query_only`` refuses)."""
        cache = self.pony._get_cache()
        if not cache.in_transaction:
            cache.prepare_connection_for_query_execution()
        return cache.connection

    def after(self, callback: Callable[[], None]) -> None:
        """Call *callback* once this thread's outermost transaction has ended (at once outside any)."""
        if not self.in_transaction:
            callback()
            return
        self._local.after.append(callback)

    # -- statements -----------------------------------------------------------------

    def select(self, sql: str, params: dict | None = None) -> list[tuple]:
        """The rows of a SELECT, as tuples.

        In a transaction it reads in it, seeing its writes; outside, on its
        own, tried again after a lost connection.
        """
        params = params or {}
        if self.in_transaction:
            return list(self._cursor_in_transaction(sql, params, write=False).fetchall())
        text, values = self._positional(sql, params)
        return self.retrying(lambda: self._fetch(text, values))

    def values(self, sql: str, params: dict | None = None) -> list:
        """The first column of a SELECT's rows."""
        return [row[0] for row in self.select(sql, params)]

    def value(self, sql: str, params: dict | None = None) -> Any:
        """The first value of a SELECT's first row; None without a row."""
        found = self.select(sql, params)
        return found[0][0] if found else None

    def execute(self, sql: str, params: dict | None = None) -> int:
        """Run an UPDATE, DELETE or DDL statement; return how many rows it changed.

        Outside a transaction it commits at once and is tried again after a
        lost connection: use it so for statements that may run twice.
        """
        params = params or {}
        self.refuse_if_read_only(sql)
        if self.in_transaction:
            return self._cursor_in_transaction(sql, params, write=True).rowcount
        text, values = self._positional(sql, params)
        return self.retrying(lambda: self._commit(text, values, lambda cursor: cursor.rowcount))

    def insert(self, table: str, values: dict) -> int:
        """Insert one row into *table* inside the current transaction; return its id (None for a table without)."""
        if not self.in_transaction:
            raise RuntimeError("Backend.insert runs inside a transaction: use write() for a single durable insert")
        self.refuse_if_read_only(f"INSERT INTO {table}")
        self._echo(f"INSERT INTO {table} ({', '.join(values)})", values)
        with self._violations():
            return self.pony.insert(table, returning="id" if table in _TABLES_WITH_ID else None, **values)

    def insert_many(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
        """Insert *rows* (tuples in *columns* order) inside the current transaction; return their ids in order."""
        if not rows:
            return []
        self.refuse_if_read_only(f"INSERT INTO {table}")
        self._echo(f"INSERT INTO {table} ({', '.join(columns)}): {len(rows)} rows", {})
        cursor = self.pony.get_connection().cursor()
        with self._violations():
            return self.dialect.insert_many(cursor, table, columns, rows)

    def delete_ids(self, table: str, ids: list[int]) -> None:
        """Delete the rows of *table* with these ids, a thousand a statement, inside the current transaction."""
        for start in range(0, len(ids), _PAGE):
            self.execute(f"DELETE FROM {table} WHERE id IN ({id_list(ids[start:start + _PAGE])})")

    def delete_in_batches(self, table: str, where: str, params: dict, batch: int, dry_run: bool = False,
                          progress: Callable[[int], None] | None = None,
                          before: Callable[[str], None] | None = None) -> int:
        """Delete the rows of *table* that ``SELECT r.id {where}`` finds, *batch* at a time; return how many.

        Each batch is its own short transaction, so a busy database is never
        locked for long. *dry_run* only counts; *progress* gets each batch's
        size; *before* gets each batch's ids (``1, 2, 3``) inside its
        transaction, before the delete.
        """
        if dry_run:
            return int(self.value(f"SELECT COUNT(*) {where}", params))
        deleted = 0
        while True:
            with self.transaction():
                found = self.values(f"SELECT r.id {where} ORDER BY r.id LIMIT {int(batch)}", params)
                if found:
                    ids = id_list(found)
                    if before is not None:
                        before(ids)
                    self.execute(f"DELETE FROM {table} WHERE id IN ({ids})")
            if not found:
                return deleted
            deleted += len(found)
            if progress is not None:
                progress(len(found))

    def write(self, sql: str, params: dict, *, read_back: str | None = None,
              find: tuple[str, dict] | None = None, refused: Callable[[], Exception] | None = None) -> Any:
        """Run one INSERT into a table with an ``id``, committed (or in the current transaction); return the new id.

        With *read_back* (a SELECT of one value taking ``$id``), return
        ``(id, value)``, read on the same connection before the commit.
        *find* is ``(select, params)``: a SELECT of the row's id by its
        identity, run before the INSERT is tried again after a lost
        connection, so the row is never stored twice. *refused* makes the
        error to raise when the INSERT stored no row (a fenced
        ``INSERT ... SELECT`` whose lock is no longer held).
        """
        self.refuse_if_read_only(sql)
        text, values = self._positional(sql + self.dialect.returning, params)
        back = read_back and self._positional(read_back, {"id": None})[0]

        def result(cursor):
            if refused is not None and cursor.rowcount == 0:
                raise refused()
            new_id = cursor.fetchone()[0] if self.dialect.returning else cursor.lastrowid
            if back is None:
                return new_id
            cursor.execute(back, (new_id,))
            return new_id, cursor.fetchone()[0]

        if self.in_transaction:
            return result(self._execute_in_transaction(text, values))

        def done() -> Any:
            assert find is not None
            found = self.value(*find)
            if found is None or read_back is None:
                return found
            return found, self.value(read_back, {"id": found})

        return self.retrying(lambda: self._commit(text, values, result), done if find is not None else None)

    def insert_unique(self, table: str, key: dict, extra: dict | None = None, column: str = "id") -> Any:
        """The *column* (the id) of *table*'s row whose unique columns hold *key*, inserted (with *extra*) unless there.

        Processes creating the same row at once race: the loser's insert
        breaks the unique key, and it reads the winner's row. Tried again
        after a lost connection, which is safe: the row is looked for first.
        """
        where = " AND ".join(f"{name} = ${name}" for name in key)

        def get_or_create() -> int:
            with self.transaction():
                found = self.value(f"SELECT {column} FROM {table} WHERE {where}", key)
                if found is not None:
                    return found
                new_id = self.insert(table, {**key, **(extra or {})})
                return new_id if column == "id" else key[column]

        for _ in range(_UNIQUE_ATTEMPTS):
            try:
                return self.retrying(get_or_create)
            except ConstraintViolation:
                continue
        raise ConstraintViolation(f"could not create a row in {table}: its unique key kept conflicting")

    def refuse_if_read_only(self, statement: str) -> None:
        """`ReadOnlyError` for *statement* (SQL, or a write in words) on a Database opened read-only, unless a read."""
        words = statement.split()
        if not self.read_only or words[0].upper() in _READS:
            return
        what = " ".join(words[:3 if words[1:2] in (["INTO"], ["FROM"]) else 2]) if words[0].isupper() else statement
        raise ReadOnlyError(f"{self.url} is open read-only (read_only=True): {what} refused; a read-only Database"
                            " records no run, log, cache entry or lock and changes no schema"
                            " (processcache.read_cache() reads a job's cache without a run)")

    def retrying(self, operation: Callable[[], Any], done: Callable[[], Any] | None = None) -> Any:
        """Run *operation*, again after a lost connection within the retry budget (`retrying`)."""
        return retrying(self, operation, done)

    def now(self) -> float:
        """The database server's clock, in seconds since the epoch."""
        return float(self.value(f"SELECT {self.dialect.now}"))

    # -- connections ----------------------------------------------------------------

    def is_disconnect(self, exc: BaseException) -> bool:
        """Whether *exc* means the connection went away (not a bad statement)."""
        if isinstance(exc, ConnectionClosedError):
            return True
        for failed in getattr(exc, "exceptions", ()):  # Pony's CommitException/RollbackException: (type, value, tb)s
            if self.is_disconnect(failed[1]):
                return True
        original = getattr(exc, "original_exc", exc)
        return self.pony.provider.should_reconnect(original) or retry.is_lost(original)

    def drop_connection(self) -> None:
        """Forget this thread's pooled connection so the next use opens a new one: it may be dead or mid-transaction."""
        if self.dialect.embedded:
            return  # a file's connection is not lost
        pool = self.pony.provider.pool
        connection = getattr(pool, "con", None)
        if connection is not None:
            try:
                pool.drop(connection)
            except Exception:
                pool.con = None  # closing a broken connection can fail too

    def close(self) -> None:
        """Close this thread's connection.

        Pony never closes an in-memory SQLite database's (its data would go
        with it); closing the Database means it is done with, so it is
        closed here rather than left to the garbage collector, which Python
        3.13 warns about.
        """
        pool = self.pony.provider.pool
        if self.dialect.embedded and pool.con is not None and (pool.is_shared_memory_db or pool.filename == ":memory:"):
            pool.con.close()
            pool.con = None
        self.pony.disconnect()

    def table_names(self) -> list[str]:
        """processcache's tables, as this release declares them."""
        return list(self.pony.schema.tables)

    def has_table(self, name: str) -> bool:
        """Whether the database holds a table *name*, processcache's or another program's."""
        with self.transaction():
            return bool(self.pony.provider.table_exists(self.reading_connection(), name))

    # -- inside -----------------------------------------------------------------------

    def _echo(self, sql: str, params: dict) -> None:
        """With ``?echo=1`` in the URL, each statement and its parameters on stderr (the original's Sequelize
        ``logging``): for looking at what processcache sends, never for cron, whose mail would hold it all.
        The tables Pony creates are not shown (``db sync --mode check`` says what is missing)."""
        if self.config.echo:
            shown = f" {params}" if params else ""
            sys.stderr.write(f"processcache SQL: {sql}{shown}\n")

    def _positional(self, sql: str, params: dict) -> tuple[str, tuple]:
        self._echo(sql, params)
        text, names = _positional(sql, self.dialect.mark)
        return text, tuple(params[name] for name in names)

    def _cursor_in_transaction(self, sql: str, params: dict, write: bool):
        self._echo(sql, params)
        with self._violations():
            # Pony evaluates the parameters with the dict as globals, which adds __builtins__ to it: a copy.
            return self.pony._exec_raw_sql(sql, dict(params), None, 0, start_transaction=write)

    def _execute_in_transaction(self, text: str, values: tuple):
        cursor = self.pony.get_connection().cursor()
        with self._violations():
            cursor.execute(text, values)
        return cursor

    @contextlib.contextmanager
    def _violations(self) -> Iterator[None]:
        """A broken key as `ConstraintViolation`, whether Pony wrapped the driver's error or the driver raised it."""
        try:
            yield
        except (IntegrityError, TransactionIntegrityError, self.pony.provider.dbapi_module.IntegrityError) as exc:
            raise ConstraintViolation(str(exc)) from None

    def _connection(self):
        """This thread's pooled connection, opened if need be, committing each statement where the driver can."""
        connection, is_new = self.pony.provider.connect()
        if is_new:
            self.pony.call_on_connect(connection)
        self.dialect.set_autocommit(connection, True)
        return connection

    def _before_transaction(self) -> None:
        """Ready this thread's connection for a transaction (`Dialect.before_transaction`): the one it holds, or,
        with a shared pool, the one it takes now (the transaction's statements then run on it)."""
        if self.pool is not None:
            connection, is_new = self.pony.provider.connect()
            if is_new:
                self.pony.call_on_connect(connection)
        else:
            connection = getattr(self.pony.provider.pool, "con", None)
        if connection is not None:
            self.dialect.before_transaction(connection)

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        connection = self._connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())  # PyMySQL's is a tuple
        except BaseException:
            self.drop_connection()
            raise
        self._give_back()
        return rows

    def _commit(self, sql: str, params: tuple, result: Callable[[Any], Any]) -> Any:
        connection = self._connection()
        try:
            with self._violations():
                cursor = connection.cursor()
                cursor.execute(sql, params)
                answer = result(cursor)
        except BaseException:
            self.drop_connection()
            raise
        self._give_back()
        return answer

    def _give_back(self) -> None:
        """Hand this thread's connection to the pool, once no transaction or Pony session of this thread needs it."""
        if self.pool is not None and not self.in_transaction and core.local.db_session is None:
            self.pony.provider.pool.give_back()

    @contextlib.contextmanager
    def _outermost(self, session) -> Iterator[None]:
        self._local.after = []
        try:
            with self._violations(), session, self._depth():  # a commit can break a key too
                yield
        except BaseException as exc:
            if self.pool is not None and self.is_disconnect(exc):
                self.drop_connection()  # not for another thread to meet
            self._give_back()
            self._run_after(quiet=True)  # the transaction's own error is the one to see
            raise
        self._give_back()
        self._run_after(quiet=False)

    def _run_after(self, quiet: bool) -> None:
        callbacks, self._local.after = self._local.after, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                if not quiet:
                    raise

    @contextlib.contextmanager
    def _depth(self) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"processcache_{next(self._savepoints)}"
        cursor = self.pony.get_connection().cursor()
        cursor.execute(f"SAVEPOINT {name}")
        try:
            with self._depth():
                yield
        except BaseException:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        cursor.execute(f"RELEASE SAVEPOINT {name}")

    @contextlib.contextmanager
    def _inside_foreign_session(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.pony.rollback()
            raise
        self.pony.commit()

    # -- opening --------------------------------------------------------------------------

    def _prepare_sqlite(self) -> None:
        filename = self.config.bind_args["filename"]
        if filename != ":sharedmemory:":
            from . import sqlitefiles

            sqlitefiles.prepare(filename, self.read_only)
            if self.read_only:
                self.config.bind_args["factory"] = sqlitefiles.read_only_connection(filename)
        pragmas = self.config.pragmas
        read_only = self.read_only

        @self.pony.on_connect(provider="sqlite")
        def _set_pragmas(_db, connection):
            # Pony decodes every text value in Python; processcache stores only
            # valid UTF-8, which sqlite3 decodes in C, a third faster on loads.
            connection.text_factory = str
            connection.create_function(SQLITE_MOVED, 0, moved, deterministic=True)  # tests' time (`dialects`)
            cursor = connection.cursor()
            for name, value in pragmas.items():
                if name == "journal_mode":
                    if not read_only:  # a reader takes the file as its writers left it
                        _switch_journal(cursor, value, int(pragmas["busy_timeout"]) / 1000)
                else:
                    cursor.execute(f"PRAGMA {name} = {value}")

    def _read_only_sessions(self, statement: str) -> None:
        """Run *statement* on each new connection: the database, too, refuses this Database's writes."""

        @self.pony.on_connect(provider=self.config.provider)
        def _read_only(_db, connection):
            connection.cursor().execute(statement)

    def _use_schema(self, schema: str) -> None:
        """Look for the tables in *schema* (Pony looks in ``public``), once sure the server put it on the search path.

        A pooler that drops libpq's ``options`` (pgbouncer, unless told to
        keep them) would leave the default path, and processcache would
        read and write an application's tables of the same names.
        """
        self.pony.provider.default_schema_name = schema
        path = self.value("SHOW search_path")
        if path != schema:
            raise ConfigError(f"the search path of {self.url} is {path!r}, not {schema!r}: something between here and"
                              f" the server dropped libpq's options (a pooler); set it for the role instead:"
                              f" ALTER ROLE ... SET search_path = {schema}")

    def _bind(self, wait: float | None) -> None:
        """Bind Pony (it opens a first connection), waiting within the retry budget for a server that is away.

        Cron may start a job while the server restarts or fails over; bad
        settings (a wrong password, say) fail at once. With *wait*, tried
        for that many seconds from now instead (`connect`'s *wait*).
        """
        attempts = retry.Attempts(self.config.retry_for if wait is None else wait)
        if wait is not None:
            attempts.started = time.monotonic()
        while True:
            try:
                self.pony.bind(provider=self.config.provider, **self.dialect.driver_args(self.config))
                return
            except ImportError:
                raise MissingDriverError(*self.dialect.driver) from None
            except Exception as exc:
                if retry.is_unreachable(exc) and attempts.wait():
                    continue
                if retry.is_unreachable(exc):
                    raise retry.unreachable(self.url, self.config, exc, attempts) from None
                advice = "" if attempts.started is None else (
                    f"; {attempts.spent()}: check that the server is up and reachable"
                    " (retry_for= in the URL sets how long to keep trying)")
                raise DatabaseUnavailableError(
                    f"cannot open the database {self.url}: {retry.reason(self.config, exc)}{advice}") from None


#: Tables whose rows have an ``id`` (the lock and meta tables are keyed by name).
_TABLES_WITH_ID = frozenset({"processes", "process_jobs", "process_cache", "process_job_runs", "process_job_logs",
                             "process_job_attempts", "process_alert_deliveries"})


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


def id_list(ids: Iterable[Any]) -> str:
    """Ids for ``IN (...)``, written as the integers they must be."""
    return ", ".join(str(int(i)) for i in ids)


@functools.lru_cache(maxsize=256)
def _positional(sql: str, mark: str) -> tuple[str, tuple[str, ...]]:
    """*sql* with each ``$name`` turned into the driver's *mark*, and the names in order (a few shapes recur)."""
    names: list[str] = []

    def mark_of(match: re.Match) -> str:
        names.append(match.group(1))
        return mark

    text = _PARAM.sub(mark_of, sql)
    return text, tuple(names)


def _end_sessions_without_discard(pool) -> None:
    """End each Pony session on PostgreSQL with a rollback only, not also DISCARD ALL.

    Pony resets the connection after every session with DISCARD ALL, one
    more round trip each time (a run takes several sessions). It clears
    state processcache never leaves: temporary tables, prepared statements,
    session settings; its locks last one transaction. The pool is Pony's
    per-thread pool object, so its class is swapped, not an attribute set.
    """
    pool.__class__ = type("PGPoolWithoutDiscard", (type(pool),), {"release": _rollback_only})


def _rollback_only(pool, connection) -> None:
    try:
        connection.rollback()
    except Exception:
        pool.drop(connection)
        raise


def _switch_journal(cursor, mode: str, timeout: float) -> None:
    """Set the journal mode, trying again while another process holds the lock it needs.

    Processes that open a new file at once all switch it to WAL, which takes
    an exclusive lock; SQLite refuses some of them at once, without waiting
    in the busy handler, where waiting could deadlock (3 of 80 opens here).
    Once the file is in WAL mode the switch is a no-op.
    """
    import sqlite3  # loaded with Pony's SQLite provider already; a server URL never needs it

    for _ in backoff(time.monotonic() + timeout):
        try:
            cursor.execute(f"PRAGMA journal_mode = {mode}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
    cursor.execute(f"PRAGMA journal_mode = {mode}")  # the last try: its error is the one reported


# -- what a lost connection, a missing table or a denied statement means for an operation ---------


def retrying(backend: Backend, operation: Callable[[], Any], done: Callable[[], Any] | None = None) -> Any:
    """Run *operation*; after a lost connection, check *done*, then run it again, within the retry budget.

    Inside a batch it runs once: the lost connection took the batch's
    transaction with it, and only the whole batch can be run again. A
    missing table raises `missing_table`'s SchemaError, here or in a batch.
    """
    with _explained_in_one_line(backend):
        if backend.in_transaction:
            return operation()
        return _with_retries(backend, operation, done)


def _with_retries(backend: Backend, operation: Callable[[], Any], done: Callable[[], Any] | None) -> Any:
    attempts = backend.retry_budget.attempts()
    check = None
    while True:
        try:
            if check is not None:
                found = check()
                if found:  # stored before the connection went
                    return found
            return operation()
        except Exception as exc:
            if not backend.is_disconnect(exc):
                raise
            backend.drop_connection()
            if not attempts.wait():
                raise backend.retry_budget.give_up(
                    f"lost the connection to {backend.url} ({retry.reason(backend.config, exc)}) and"
                    f" {attempts.spent()}: check that the server is up and reachable, then run again"
                    " (retry_for= in the URL sets how long to keep trying)") from None
            check = done


def missing_table(backend: Backend, exc: BaseException) -> SchemaError | None:
    """The one-line error for a processcache table that does not exist, or None when *exc* says something else.

    An operator dropped it by hand, or restored a partial backup: trying
    again cannot help, and the driver's traceback does not say what to do.
    `db sync --mode check` lists all that is missing; `db sync` recreates
    it, empty. A table that is not processcache's (an application's own
    statement inside a batch) is left to its error.
    """
    if not retry.is_missing_table(exc):
        return None
    said = retry.reason(backend.config, exc)
    for table in backend.table_names():
        if re.search(rf"\b{table}\b", said):
            return SchemaError(f"table {table} is missing from {backend.url}: `processcache db sync --mode check`"
                               " lists what is missing, `processcache db sync` recreates it (empty)")
    return None


def denied(backend: Backend, exc: BaseException) -> DatabaseUnavailableError | None:
    """The one-line error for a statement the database user has no right to run, or None.

    A monitoring user given SELECT alone runs the read commands; a run or
    a cache change needs more, and the driver's traceback does not say so.
    """
    if not retry.is_denied(exc):
        return None
    return DatabaseUnavailableError(
        f"the database user may not change {backend.url} ({retry.reason(backend.config, exc)}): running jobs and"
        " changing the cache need SELECT, INSERT, UPDATE and DELETE on processcache's tables; the read commands"
        " (check, jobs, runs, logs, cache list/get) need SELECT alone")


@contextlib.contextmanager
def _explained_in_one_line(backend: Backend) -> Iterator[None]:
    """Raise the one line of `missing_table` or `denied` in place of the driver's error it explains."""
    try:
        yield
    except Exception as exc:
        explained = missing_table(backend, exc) or denied(backend, exc)
        if explained is None:
            raise
        raise explained from None


@contextlib.contextmanager
def one_line_when_lost(database: "Database", what: str | None = None) -> Iterator[None]:
    """A lost connection (or a missing table) in one line, not the driver's traceback.

    *what* names a transaction the caller cannot run again by itself (a
    batch, an import): it was rolled back, unless the connection went while
    it committed, which no one can tell from here. Without *what*, around a
    whole CLI command, whose writes are retried or committed in batches
    already: running it again is safe.
    """
    backend = database.backend
    try:
        with _explained_in_one_line(backend):
            yield
    except Exception as exc:
        if not backend.is_disconnect(exc):
            raise
        backend.drop_connection()
        lost = f"lost the connection to {backend.url}" + (f" during {what}" if what else "")
        advice = ("check that the server is up, then run the command again" if what is None else
                  "it was rolled back, unless the connection went while it committed; look at the cache before"
                  " running it again")
        raise DatabaseUnavailableError(f"{lost} ({retry.reason(backend.config, exc)}): {advice}") from None
