"""The local spool: what runs did while their database was down, kept on this machine until it is back.

A run with ``if_database_down="run"`` that cannot reach its database runs
anyway (`processcache.run.downtime`), and what it did is kept here: its record
(start, end, status, exit code, error), its logs and captured output, and
its cache writes. Each spooled run has a unique id, which the ledger keeps
(`processcache.storage.replay`), so that it is stored there exactly once.

Where: ``spool.sqlite`` in the user's data folder, beside the default
database (``~/.local/share/processcache`` on Linux; ``$XDG_DATA_HOME``
moves it), or the file ``PROCESSCACHE_SPOOL`` names. The folder is created
0700 and the file 0600: a run's logs and cache values may be secrets.
One SQLite file in WAL mode with ``synchronous=FULL``: every write is on
disk when the call returns, and processes spooling at once take turns.

How much: at most `DEFAULT_LIMIT` (64 MiB) of runs, logs and writes, or
``PROCESSCACHE_SPOOL_LIMIT`` (``1MiB``, ``512MiB``). A run that finds the
spool full runs unrecorded, saying so on stderr; one that fills it keeps
its record and its end, and a count of what it could not keep, which its
replay writes as a WARNING. The limit counts pages in use, so a flush
frees room at once.

When: the next processcache command on this machine that reaches the
database (any run, ``check``, any command that opens it) stores what is
waiting for it, oldest first (`flush`); ``processcache spool`` lists it and
``processcache spool flush`` stores it by hand. A run still going is left
for later; one whose process died before it ended is stored ``lost``.
"""

import contextlib
import os
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SpoolFullError
from ..options import parse_size
from .replay import Replayed, SpooledLog, SpooledRun, SpooledWrite, replay

if TYPE_CHECKING:
    from .database import Database

#: The spool's file, when ``PROCESSCACHE_SPOOL`` does not name one: beside the default SQLite database.
FILE_NAME = "spool.sqlite"
#: Bytes the spool holds at most (pages in use): about a day of a minutely job's logs at 40 KiB a run.
DEFAULT_LIMIT = 64 * 2**20
#: Room kept past the limit for the ends of runs already spooled: a run that began is always ended.
_END_RESERVE = 2**20
#: Milliseconds a process waits for another's write to the spool.
_BUSY_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, spool_id TEXT NOT NULL UNIQUE, database TEXT NOT NULL,
    grp TEXT NOT NULL, job TEXT NOT NULL, machine TEXT NOT NULL, pid INTEGER NOT NULL, status TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, duration REAL, error TEXT, traceback TEXT, result TEXT,
    exit_code INTEGER, signal INTEGER, attempts INTEGER, scope TEXT NOT NULL, dropped INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER, lock TEXT);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, spool_id TEXT NOT NULL, type TEXT NOT NULL, level TEXT,
    message TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_of_run ON logs (spool_id, seq);
CREATE TABLE IF NOT EXISTS writes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, spool_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    ttl REAL, replace INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS writes_of_run ON writes (spool_id, seq);
"""


class Waiting(NamedTuple):
    """A spooled run as ``processcache spool`` lists it."""

    spool_id: str
    database: str
    group: str
    job: str
    machine: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    logs: int
    writes: int


class Flushed(NamedTuple):
    """What a `flush` stored: the ledger ids of the runs it replayed, those found stored already, and what it left."""

    stored: list[int]
    found: list[int]
    left: int


def default_path() -> str:
    """The spool's file: ``PROCESSCACHE_SPOOL``, or `FILE_NAME` in the user's data folder."""
    named = os.environ.get("PROCESSCACHE_SPOOL")
    if named:
        return os.path.abspath(named)
    if sys.platform.startswith("linux"):  # platformdirs' answer on Linux, without importing it on every run
        data = os.environ.get("XDG_DATA_HOME", "").strip() or os.path.expanduser("~/.local/share")
        return os.path.join(data, "processcache", FILE_NAME)
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("processcache", appauthor=False), FILE_NAME)


def limit() -> int:
    """The spool's limit in bytes: ``PROCESSCACHE_SPOOL_LIMIT``, else `DEFAULT_LIMIT`."""
    return parse_size(os.environ.get("PROCESSCACHE_SPOOL_LIMIT") or DEFAULT_LIMIT, "PROCESSCACHE_SPOOL_LIMIT")


class Spool:
    """This machine's spool file; opened on first use, created private."""

    def __init__(self, path: str | None = None, limit_bytes: int | None = None) -> None:
        self.path = path or default_path()
        self.limit = limit() if limit_bytes is None else limit_bytes
        self._connection: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    # -- a spooled run's life ------------------------------------------------------------------

    def start(self, database: str, group: str, job: str, machine: str, scope: str, started_at: datetime,
              run_id: int | None = None, lock: str | None = None) -> str:
        """Keep a new run (``running``) and return its spool id; `SpoolFullError` when the spool is full.

        *run_id* and *lock*: a run the ledger holds already, whose database went away mid-run, and the lock it held.
        """
        spool_id = str(uuid.uuid4())
        with self._writing(room_needed=True):
            self._db.execute("INSERT INTO runs (spool_id, database, grp, job, machine, pid, status, started_at, scope,"
                             " run_id, lock) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                             (spool_id, database, group, job, machine, os.getpid(), _text(started_at), scope, run_id,
                              lock))
        return spool_id

    def add_log(self, spool_id: str, log_type: str, level: str | None, message: str, created_at: datetime) -> bool:
        """Keep one log of a run; False (counted, for its replay to say) when the spool is full."""
        return self._add(spool_id, "INSERT INTO logs (spool_id, type, level, message, created_at)"
                         " VALUES (?, ?, ?, ?, ?)", (spool_id, log_type, level, message, _text(created_at)))

    def add_write(self, spool_id: str, key: str, value: str, ttl: float | None, replace: bool,
                  created_at: datetime) -> bool:
        """Keep one cache write of a run; False (counted) when the spool is full."""
        return self._add(spool_id, "INSERT INTO writes (spool_id, key, value, ttl, replace, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (spool_id, key, value, ttl, int(replace), _text(created_at)))

    def finish(self, spool_id: str, status: str, finished_at: datetime, duration: float, error: str | None,
               traceback: str | None, result: str | None, exit_code: int | None, signal: int | None,
               attempts: int | None) -> None:
        """Keep how the run ended (room is kept for it past the limit)."""
        with self._writing(room_needed=False):
            self._db.execute("UPDATE runs SET status = ?, finished_at = ?, duration = ?, error = ?, traceback = ?,"
                             " result = ?, exit_code = ?, signal = ?, attempts = ? WHERE spool_id = ?",
                             (status, _text(finished_at), duration, error, traceback, result, exit_code, signal,
                              attempts, spool_id))

    def _add(self, spool_id: str, sql: str, values: tuple) -> bool:
        try:
            with self._writing(room_needed=True):
                self._db.execute(sql, values)
            return True
        except SpoolFullError:
            with self._writing(room_needed=False):
                self._db.execute("UPDATE runs SET dropped = dropped + 1 WHERE spool_id = ?", (spool_id,))
            return False

    # -- what waits, and its way to the ledger ---------------------------------------------------

    def waiting(self, database: str | None = None) -> list[Waiting]:
        """The runs waiting (for *database*, a safe URL, or every one), oldest first."""
        if not self.exists():
            return []
        where, args = ("WHERE database = ?", (database,)) if database is not None else ("", ())
        rows = self._db.execute(
            "SELECT spool_id, database, grp, job, machine, status, started_at, finished_at,"
            " (SELECT COUNT(*) FROM logs l WHERE l.spool_id = r.spool_id),"
            f" (SELECT COUNT(*) FROM writes w WHERE w.spool_id = r.spool_id) FROM runs r {where} ORDER BY seq",
            args).fetchall()
        return [Waiting(row[0], row[1], row[2], row[3], row[4], row[5], _time(row[6]), row[7] and _time(row[7]),
                        row[8], row[9]) for row in rows]

    def has_waiting(self, database: str) -> bool:
        """Whether any run waits for *database*: one stat of the file when there is none."""
        if not self.exists():
            return False
        return self._db.execute("SELECT 1 FROM runs WHERE database = ? LIMIT 1", (database,)).fetchone() is not None

    def load(self, spool_id: str) -> SpooledRun | None:
        """A run whole, with its logs and writes; a run whose process died before its end comes back ``lost``."""
        row = self._db.execute("SELECT spool_id, grp, job, machine, pid, status, started_at, finished_at, duration,"
                               " error, traceback, result, exit_code, signal, attempts, scope, dropped, run_id, lock"
                               " FROM runs"
                               " WHERE spool_id = ?", (spool_id,)).fetchone()
        if row is None:
            return None
        logs = [SpooledLog(kind, level, message, _time(at)) for kind, level, message, at in self._db.execute(
            "SELECT type, level, message, created_at FROM logs WHERE spool_id = ? ORDER BY seq", (spool_id,))]
        writes = [SpooledWrite(key, value, ttl, bool(replace), _time(at)) for key, value, ttl, replace, at in
                  self._db.execute("SELECT key, value, ttl, replace, created_at FROM writes WHERE spool_id = ?"
                                   " ORDER BY seq", (spool_id,))]
        run = SpooledRun(row[0], row[1], row[2], row[3], row[4], row[5], _time(row[6]), row[7] and _time(row[7]),
                         row[8], row[9], row[10], row[11], row[12], row[13], row[14], row[15], row[16], logs, writes,
                         row[17], row[18])
        if run.status == "running":
            run = run._replace(status="lost", error="its process ended before its end was kept (killed while the"
                                                    " database was down)", finished_at=None)
        return run

    def forget(self, spool_id: str) -> None:
        """Delete a run that the ledger holds now."""
        with self._writing(room_needed=False):
            for table in ("logs", "writes", "runs"):
                self._db.execute(f"DELETE FROM {table} WHERE spool_id = ?", (spool_id,))

    def flush(self, db: "Database") -> Flushed:
        """Store every finished run waiting for *db* in it, oldest first, each once; return what was done.

        A run still going (its process alive on this machine) is left for a
        later flush. Each run is forgotten only once the ledger holds it.
        """
        stored: list[int] = []
        found: list[int] = []
        left = 0
        for waiting in self.waiting(db.url):
            if waiting.status == "running" and _alive(self._pid(waiting.spool_id)):
                left += 1
                continue
            run = self.load(waiting.spool_id)
            if run is None:  # another process flushed it meanwhile
                continue
            done: Replayed = replay(db, run)
            (stored if done.stored else found).append(done.run_id)
            self.forget(run.spool_id)
        return Flushed(stored, found, left)

    def _pid(self, spool_id: str) -> int:
        row = self._db.execute("SELECT pid FROM runs WHERE spool_id = ?", (spool_id,)).fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- the file -------------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path):  # created private: the WAL and its index take the file's mode
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        connection.execute("PRAGMA journal_mode = wal")
        connection.execute("PRAGMA synchronous = full")  # on disk when the call returns
        page = connection.execute("PRAGMA page_size").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {(self.limit + _END_RESERVE) // page + 16}")
        connection.executescript(_SCHEMA)
        return connection

    @contextlib.contextmanager
    def _writing(self, room_needed: bool) -> Iterator[None]:
        """One write transaction; with *room_needed*, `SpoolFullError` when the pages in use reach the limit."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if room_needed and self._used() >= self.limit:
                raise SpoolFullError(self.full_message())
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _used(self) -> int:
        db = self._db
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * db.execute("PRAGMA page_size").fetchone()[0]

    def full_message(self) -> str:
        count = self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return (f"the spool {self.path} is full ({_mib(self.limit)} MiB, {count} runs waiting for a database that"
                " was down): `processcache spool flush` stores them once it is back; PROCESSCACHE_SPOOL_LIMIT"
                " raises the limit")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _mib(size: int) -> str:
    return f"{size / 2**20:g}"
