"""What differs between SQLite, PostgreSQL and MySQL/MariaDB: one `Dialect` each.

Everything else processcache writes is plain SQL that the three accept as it
is. Nothing outside this module asks which database it is talking to; the
`Backend` and the stores ask their dialect for the fragment or the strategy.
"""

import contextlib
from collections.abc import Iterator
from urllib.parse import parse_qsl

from ..durations import parse_duration
from ..errors import ConfigError

#: The SQL function SQLite's clock adds: how far tests moved its time forward
#: (`clock.moved`, 0.0 otherwise), defined on each connection (`backend.py`).
#: Declared deterministic, SQLite calls it once per statement, as it reads
#: julianday('now') once, not once per row.
SQLITE_MOVED = "processcache_moved"

#: Rows per multi-row INSERT.
PAGE = 1000


POSTGRES_DEFAULTS = {
    "connect_timeout": "10",
    # Probe a connection idle for 15 s every 5 s; 3 unanswered probes end it.
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    # Milliseconds sent data may stay unacknowledged before the kernel gives up.
    "tcp_user_timeout": "30000",
}
DEFAULT_READ_TIMEOUT = 15.0

MYSQL_DEFAULTS = {"connect_timeout": 10.0, "read_timeout": 15.0, "write_timeout": 15.0}


def _seconds(name: str, value: str) -> float:
    seconds = parse_duration(value, f"{name} in the URL")
    if seconds <= 0:
        raise ConfigError(f"{name}={value!r} in the URL: use a positive duration such as 15s")
    return seconds


def boolean(name: str, value: str) -> bool:
    found = _BOOLEANS.get(value.strip().lower())
    if found is None:
        raise ConfigError(f"{name}={value!r} in the URL: use true or false (or 1/0, yes/no)")
    return found


def _whole(name: str, value: str) -> int:
    if not value.strip().isdigit():
        raise ConfigError(f"{name}={value!r} in the URL: use a whole number")
    return int(value)


def _text(_name: str, value: str) -> str:
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

#: PyMySQL's keyword options a URL may set, each with the conversion that gives PyMySQL its type.
MYSQL_OPTIONS = {
    "connect_timeout": _seconds, "read_timeout": _seconds, "write_timeout": _seconds,
    "charset": _text, "collation": _text, "sql_mode": _text, "init_command": _text,
    "password": _text, "unix_socket": _text, "bind_address": _text, "program_name": _text, "max_allowed_packet": _whole,
    "ssl_ca": _text, "ssl_cert": _text, "ssl_key": _text, "ssl_key_password": _text,
    "ssl_disabled": boolean, "ssl_verify_cert": boolean, "ssl_verify_identity": boolean,
}


def _postgres_options(query: str) -> dict:
    """libpq's options as given over `POSTGRES_DEFAULTS`; processcache's ``read_timeout`` in seconds."""
    options = {**POSTGRES_DEFAULTS, "read_timeout": DEFAULT_READ_TIMEOUT}
    for name, value in _options(query):
        if name == "read_timeout":
            options[name] = _seconds(name, value)
        elif name == "connect_timeout" and not (value.isdigit() and int(value) > 0):
            raise ConfigError(f"connect_timeout={value!r} in the URL: use a whole number of seconds such as 10")
        else:
            options[name] = value
    return options


def _mysql_options(query: str) -> dict:
    """PyMySQL's keyword options over `MYSQL_DEFAULTS`, each of the type PyMySQL wants."""
    options: dict = {**MYSQL_DEFAULTS, "charset": "utf8mb4"}  # 3-byte utf8 cannot hold emoji
    for name, value in _options(query):
        convert = MYSQL_OPTIONS.get(name)
        if convert is None:
            raise ConfigError(f"unknown MySQL option {name!r} in the URL: use one of {', '.join(MYSQL_OPTIONS)}")
        options[name] = convert(name, value)
    return options


def _options(query: str) -> list[tuple[str, str]]:
    """A server URL's options, ``passwd`` (PyMySQL's old name) read as ``password`` on either server."""
    return [("password" if name == "passwd" else name, value)
            for name, value in parse_qsl(query, keep_blank_values=True)]


class Dialect:
    """The fragments and strategies of one database; the defaults are the servers' (PostgreSQL and MySQL agree)."""

    #: Pony's provider name, as `config.DatabaseConfig.provider` holds it.
    name = ""
    #: The driver's parameter mark.
    mark = "%s"
    #: The database server's clock as seconds since the epoch (a float). Leases,
    #: heartbeats and expiry are judged by it, never by the machines' clocks.
    now = ""
    #: Appended to an INSERT so that the statement returns the new id ("" where the cursor's lastrowid has it).
    returning = ""
    #: Appended to a SELECT of lock rows that a write depends on: the row cannot
    #: change hands until the transaction ends, so a run whose lease is taken
    #: over meanwhile cannot slip a write in after the takeover (`fence.py`).
    for_share = ""
    #: Appended to a SELECT of a row the transaction will change.
    for_update = " FOR UPDATE"
    #: Statements that take and release the database-wide schema lock (None: not
    #: needed, or released with the transaction).
    schema_lock: tuple[str | None, str | None] = (None, None)
    #: A file on this machine (SQLite), made private and set up on each connection, whose connection is never lost.
    embedded = False
    #: Whether Pony resets the connection after each session with a round trip processcache does not need.
    resets_sessions = False
    #: How to keep processcache's tables apart from an application's of the same names (a one-line error's end).
    apart = ""
    #: The first statement of a read transaction that must see one moment throughout (`Backend.snapshot`):
    #: PostgreSQL's default is READ COMMITTED, a moment per statement, and a MySQL server may be set to it.
    snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    #: Run on each connection of a Database opened read-only, so that the database refuses its writes as well
    #: (None: none that is cheap and safe).
    read_only_session: str | None = "SET SESSION TRANSACTION READ ONLY"
    #: (database, pip extra, module) named when the driver is missing (`MissingDriverError`).
    driver: tuple[str, str, str] = ("", "", "")

    #: Whether a URL may name several hosts, tried in turn (libpq's host lists).
    host_lists = False
    #: ``(is it a standby, seconds behind its primary)``, where the database streams from a primary.
    replay_lag: str | None = None
    #: Run inside a transaction before a report's skip scans: plans made without compiling them.
    plain_plans: str | None = None
    #: Whether ``GROUP BY job_id, machine`` skips through the runs' index by itself (its machines' list).
    groups_by_index = False
    #: Whether a URL's ``?schema=`` may keep processcache's tables apart in the database.
    schemas = False

    def url_options(self, query: str) -> dict:
        """The driver's keyword options from a server URL's query, over this database's defaults."""
        raise ConfigError(f"{self.name} takes no server URL options")

    def driver_password(self, password: str) -> "str | bytes":
        """The password as the driver takes it."""
        return password

    def take_read_timeout(self, args: dict) -> float | None:
        """The longest one wait for an answer lasts, from the driver's *args* (left there if the driver reads it)."""
        return args.get("read_timeout")

    def driver_args(self, database_config) -> dict:
        """The arguments Pony binds the driver with."""
        return database_config.bind_args

    def aware_time(self, column: str) -> str:
        """A stored UTC time stamp as the driver should read it."""
        return column

    def lock_job_row(self) -> str | None:
        """A SELECT that locks one job's row (``$job_id``) until the transaction ends, so writers of a key take turns.

        None where writers take turns already.
        """
        return "SELECT id FROM process_jobs WHERE id = $job_id FOR UPDATE"

    def drop_index(self, index: str, table: str) -> str:
        return f"DROP INDEX {index}"

    def quote(self, name: str) -> str:
        """*name* as an identifier: a column another program named ``key`` or ``createdAt``."""
        return f'"{name}"'

    def aside(self, tables: list[str]) -> tuple[dict[str, str], list[str]]:
        """Where another program's *tables* go to make room for processcache's, and the statements that move them
        there in one schema-changing transaction (`original.rename_original`)."""
        moved = {table: f"original_{table}" for table in tables}
        return moved, [f"ALTER TABLE {old} RENAME TO {new}" for old, new in moved.items()]

    def text_type(self, max_len: int | None) -> str | None:
        """The SQL type of a text column, where Pony's default will not do (None: Pony's)."""
        return None

    def set_autocommit(self, connection, on: bool) -> None:
        """Put a driver connection in or out of autocommit mode (no round trip when it is already so)."""

    def before_transaction(self, connection) -> None:
        """Ready a connection a single write may have left in autocommit mode for one of Pony's sessions."""

    @contextlib.contextmanager
    def patient(self, connection, seconds: float) -> Iterator[None]:
        """Let *connection* wait up to *seconds* for each answer meanwhile, instead of its ``read_timeout``: a
        schema change builds indexes over every row (no read timeout here: SQLite's file answers)."""
        yield

    def insert_many(self, cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
        """Insert *rows* in one statement per page on the transaction's *cursor*; return their ids in order."""
        raise NotImplementedError

    def value_limit(self, select_value) -> int | None:
        """The largest value, in characters of stored JSON, the server takes in one statement; None: no limit.

        *select_value* runs a one-value SELECT.
        """
        return None

    def explain(self, sql: str) -> str:
        """The statement that shows how the database would run *sql* (tests read the plans)."""
        return "EXPLAIN " + sql


class SQLite(Dialect):
    name = "sqlite"
    embedded = True
    apart = "give processcache a file of its own (sqlite:///processcache.db)"
    mark = "?"
    now = f"((julianday('now') - 2440587.5) * 86400.0 + {SQLITE_MOVED}())"
    for_update = ""  # SQLite's writers take turns already
    snapshot = "BEGIN"  # Pony reads in autocommit mode, each statement a moment of its own; its session ends it
    # A file is opened mode=ro (`sqlitefiles`): SQLite refuses its writes already. PRAGMA query_only would refuse
    # the BEGIN IMMEDIATE Pony sends for a raw connection too (`db sync --mode check`); :sharedmemory: is empty.
    read_only_session = None

    def lock_job_row(self) -> str | None:
        return None

    def insert_many(self, cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
        """``executemany``: the writer holds the database's write lock, so the new rowids are consecutive."""
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                           rows)
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    def explain(self, sql: str) -> str:
        return "EXPLAIN QUERY PLAN " + sql


class PostgreSQL(Dialect):
    name = "postgres"
    host_lists = True
    schemas = True
    replay_lag = ("SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
                  " THEN 0 ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END")
    # A skip scan's estimate counts each probe a hundred times, which puts its cost past jit_above_cost:
    # PostgreSQL then compiled the query with LLVM for 0.8 s before running it for 0.1 s.
    plain_plans = "SET LOCAL jit = off"

    def url_options(self, query: str) -> dict:
        return _postgres_options(query)

    def take_read_timeout(self, args: dict) -> float | None:
        return args.pop("read_timeout")  # processcache's own on PostgreSQL (`waits`), not libpq's
    resets_sessions = True
    apart = "add ?schema=processcache to the URL (a schema of its own, created if missing)"
    driver = ("PostgreSQL", "postgres", "psycopg2")
    now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    returning = " RETURNING id"
    for_share = " FOR SHARE"
    schema_lock = ("SELECT pg_advisory_xact_lock(7013370001)", None)
    #: Not ``SET default_transaction_read_only``: under pgbouncer's transaction pooling a session setting stays on
    #: the server connection and makes the next client's writes fail. Readers' own role (SELECT alone) does it.
    read_only_session = None

    def aside(self, tables: list[str]) -> tuple[dict[str, str], list[str]]:
        """Each table's primary key index and id sequence as well, which keep their names in a rename and which
        processcache's tables of the same names would want (``processes_pkey``, ``processes_id_seq``)."""
        moved, statements = super().aside(tables)
        for old, new in moved.items():
            statements += [f"ALTER INDEX IF EXISTS {old}_pkey RENAME TO {new}_pkey",
                           f"ALTER SEQUENCE IF EXISTS {old}_id_seq RENAME TO {new}_id_seq"]
        return moved, statements

    def aware_time(self, column: str) -> str:
        """psycopg2 builds an aware datetime in C from a ``timestamptz``, much faster than setting the zone of
        each naive one in Python (a third of a 100,000-entry load)."""
        return f"({column} AT TIME ZONE 'UTC')"

    def driver_args(self, database_config) -> dict:
        """With the connection class whose waits `waits.wait` bounds."""
        from . import waits

        waits.install()
        factory = waits.connection_factory(database_config.connect_timeout, database_config.read_timeout)
        return {**database_config.bind_args, "connection_factory": factory}

    @contextlib.contextmanager
    def patient(self, connection, seconds: float) -> Iterator[None]:
        """`waits.wait` reads the connection's ``read_timeout``: this connection's own, meanwhile."""
        connection.read_timeout = seconds
        try:
            yield
        finally:
            del connection.read_timeout  # the class's again: the URL's

    def set_autocommit(self, connection, on: bool) -> None:
        """psycopg2 sends BEGIN, the statement and COMMIT otherwise: three round trips for one. (Pony sets the
        mode its sessions need itself.)"""
        if connection.autocommit != on:
            connection.autocommit = on

    def insert_many(self, cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
        """One multi-row ``INSERT ... RETURNING id`` per page (psycopg2's ``execute_values``)."""
        from psycopg2.extras import execute_values

        found = execute_values(cursor, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s RETURNING id", rows,
                               page_size=PAGE, fetch=True)
        return [row[0] for row in found]


#: The MySQL protocol's capability flag CLIENT_FOUND_ROWS (PyMySQL's and mysqlclient's CLIENT.FOUND_ROWS).
_CLIENT_FOUND_ROWS = 2


class MySQL(Dialect):
    name = "mysql"
    groups_by_index = True  # "Using index for group-by": 40 ms at 200,000 runs

    def url_options(self, query: str) -> dict:
        return _mysql_options(query)

    def driver_password(self, password: str) -> "str | bytes":
        # PyMySQL sends a str password as latin-1, which fails on most characters (its error naming
        # the one it failed on) and differs from the UTF-8 that a utf8mb4 client set the password in.
        return password.encode()
    apart = "give processcache a database of its own (CREATE DATABASE processcache; mysql://user@host/processcache)"
    driver = ("MySQL", "mysql", "PyMySQL or mysqlclient")
    now = "CAST(UNIX_TIMESTAMP(SYSDATE(6)) AS DOUBLE)"
    for_share = " LOCK IN SHARE MODE"
    schema_lock = ("SELECT GET_LOCK('processcache_schema', 600)", "SELECT RELEASE_LOCK('processcache_schema')")

    def drop_index(self, index: str, table: str) -> str:
        return f"DROP INDEX {index} ON {table}"

    def quote(self, name: str) -> str:
        return f"`{name}`"

    def aside(self, tables: list[str]) -> tuple[dict[str, str], list[str]]:
        """One statement, which MySQL runs whole or not at all (its DDL commits by itself, statement by statement)."""
        moved = {table: f"original_{table}" for table in tables}
        return moved, ["RENAME TABLE " + ", ".join(f"{old} TO {new}" for old, new in moved.items())]

    def text_type(self, max_len: int | None) -> str | None:
        """utf8mb4 with a binary collation: MySQL compares text case- and accent-insensitively by default, which
        would make the keys "Token" and "token" one key, and its 3-byte ``utf8`` cannot hold emoji."""
        kind = "LONGTEXT" if max_len is None else f"VARCHAR({max_len})"
        return f"{kind} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

    def set_autocommit(self, connection, on: bool) -> None:
        """Without it a write is two round trips (the statement, then COMMIT). PyMySQL knows the mode from the
        server's last reply, so asking costs nothing; a transaction switches it off again (`Backend.transaction`)."""
        if connection.get_autocommit() != on:
            connection.autocommit(on)

    def driver_args(self, database_config) -> dict:
        """With CLIENT_FOUND_ROWS (2 in both drivers' constants): an UPDATE's row count is the rows it matched,
        not the rows whose values it changed, as on the other databases. A renewal that found its lock row and
        wrote the value it held already said 0, "the lock is lost", and an upgrade's UPDATE of a meta row to its
        own value inserted it again."""
        args = dict(database_config.bind_args)
        args["client_flag"] = int(args.get("client_flag", 0)) | _CLIENT_FOUND_ROWS
        return args

    def before_transaction(self, connection) -> None:
        """Pony's MySQL sessions rely on the driver's default, autocommit off."""
        self.set_autocommit(connection, False)

    @contextlib.contextmanager
    def patient(self, connection, seconds: float) -> Iterator[None]:
        """PyMySQL's read timeout is its socket's, which it sets back to ``_read_timeout`` before each read.
        mysqlclient sets its own in C, once: a schema change there waits ``read_timeout`` at most for each
        statement (raise it in the URL for an upgrade)."""
        if getattr(connection, "_sock", None) is None:
            yield
            return
        given = connection._read_timeout
        connection._read_timeout = seconds
        connection._sock.settimeout(seconds)
        try:
            yield
        finally:
            connection._read_timeout = given
            if connection._sock is not None:  # not closed meanwhile
                connection._sock.settimeout(given)

    def insert_many(self, cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
        """One multi-row INSERT per page; InnoDB gives it consecutive ids from ``LAST_INSERT_ID()`` unless
        ``innodb_autoinc_lock_mode = 2``, where rows are inserted one by one."""
        cursor.execute("SELECT @@innodb_autoinc_lock_mode, @@max_allowed_packet")
        mode, packet = cursor.fetchone()
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        ids: list[int] = []
        for chunk in _pages(rows, PAGE if int(mode) != 2 else 1, int(packet) // 2):
            cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * len(chunk)),
                           [value for row in chunk for value in row])
            first = cursor.lastrowid  # LAST_INSERT_ID(): the first row's id
            ids.extend(range(first, first + len(chunk)))
        return ids

    def value_limit(self, select_value) -> int | None:
        """MySQL and MariaDB refuse a statement over ``max_allowed_packet`` by closing the connection, which would
        look like a lost server: a value is refused before that, with room for the rest of the statement."""
        return int(select_value("SELECT @@max_allowed_packet")) - 65536


_DIALECTS = {dialect.name: dialect for dialect in (SQLite(), PostgreSQL(), MySQL())}


def dialect_for(provider: str) -> Dialect:
    """The dialect of a Pony provider name (``sqlite``, ``postgres``, ``mysql``)."""
    return _DIALECTS[provider]


def _pages(rows: list[tuple], most: int, max_bytes: int) -> Iterator[list[tuple]]:
    """Runs of at most *most* rows whose text stays under *max_bytes* (one statement each)."""
    page: list[tuple] = []
    size = 0
    for row in rows:
        length = sum(len(value) for value in row if isinstance(value, str))
        if page and (len(page) == most or size + length > max_bytes):
            yield page
            page, size = [], 0
        page.append(row)
        size += length
    if page:
        yield page
