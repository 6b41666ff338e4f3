"""Cache entries: every read and write of ``process_cache``.

Entries past their expiry (judged by the database server's clock) are
invisible to every read, as if gone, until `prune_expired` deletes them.
Reads come back in bulk through plain SQL (`Backend.select`), never as one
ORM object per row. Writes are committed when a method returns, unless an outer
session (`CacheContext.batch`) holds them in its transaction.

Keys are also compared in Python where exactness matters: MySQL's
collations ignore trailing spaces even when binary.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from itertools import repeat
from typing import TYPE_CHECKING, Any

from ..cache.codec import decode_value, decode_values
from ..errors import InvalidValueError
from ..records import Entry, KeyStats, entry_of_tuple
from .backend import Backend, gc_paused, one_line_when_lost
from .fence import NO_FENCE, Fence
from .texts import same_text
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

_INSERT_COLUMNS = ("job_id", "machine", "entry_key", "entry_value", "created_at", "expires_at")
_EXPIRY = "SELECT expires_at FROM process_cache WHERE id = $id"
#: A single entry by its identity: after a lost connection, whether its INSERT got through.
_FIND = (f"SELECT MAX(id) FROM process_cache WHERE job_id = $job_id AND {same_text('machine', '$machine')}"
         " AND entry_key = $key AND created_at = $created_at")


class CacheStore:
    """The cache entries of one database."""

    def __init__(self, database: "Database") -> None:
        self.backend: Backend = database.backend
        dialect = self.backend.dialect
        self.now = dialect.now
        self._lock_job = dialect.lock_job_row()
        self.database = database
        self.transaction = self.backend.transaction
        self.clock = database.clock
        created = dialect.aware_time("created_at")
        self._columns = f"id, entry_key, entry_value, machine, {created}, expires_at"
        # Reading one machine's entries, its name is known: not fetching it
        # spares a string per row (5 % of a load).
        self._columns_of_one = f"id, entry_key, entry_value, {created}, expires_at"
        self._max_value: int | None = None
        insert = ("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
                  " VALUES ($job_id, $machine, $key, $text, $created_at, {})")
        self._insert = insert.format("NULL")
        self._insert_expiring = insert.format(f"{self.now} + $ttl")
        # The same, fenced: a row only while the lock named is held by the token given (`fence.py`).
        fenced = ("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
                  " SELECT $job_id, $machine, $key, $text, $created_at, {} FROM process_job_locks"
                  " WHERE name = $lock AND run_id = $token" + dialect.for_share)
        self._insert_fenced = fenced.format("NULL")
        self._insert_expiring_fenced = fenced.format(f"{self.now} + $ttl")

    def check_size(self, texts: Sequence[str]) -> None:
        """Refuse a value larger than the server takes in one statement, before writing anything.

        MySQL and MariaDB refuse a statement over ``max_allowed_packet`` by
        closing the connection, which would look like a lost server.
        """
        if self._max_value is None:
            self._max_value = self.backend.dialect.value_limit(self.backend.value) or 0
        largest = max(map(len, texts), default=0)
        if self._max_value and largest > self._max_value:
            raise InvalidValueError(
                f"the value is {largest / 2**20:.1f} MiB as stored JSON (non-ASCII text takes 6 bytes a"
                f" character); this MySQL server takes {self._max_value / 2**20:.1f} MiB at most: raise its"
                " max_allowed_packet or store less")

    def add(self, job_id: int, machine: str, key: str, text: str, ttl: float | None = None,
            fence: Fence = NO_FENCE) -> Entry:
        """Append one entry (its value already encoded as *text*), committed on return.

        With a *fence* (a run's lock: one at most), only while its lock is
        held, checked by the INSERT itself.
        """
        self.check_size([text])
        return self._add(job_id, machine, key, text, ttl, fence)

    def _add(self, job_id: int, machine: str, key: str, text: str, ttl: float | None,
             fence: Fence = NO_FENCE) -> Entry:
        created_at = self.clock.now()
        params = {"job_id": job_id, "machine": machine, "key": key, "text": text, "created_at": db_time(created_at),
                  "ttl": ttl}
        if fence:
            sql = self._insert_expiring_fenced if ttl is not None else self._insert_fenced
            params["lock"], params["token"] = fence.holds[0]
        else:
            sql = self._insert_expiring if ttl is not None else self._insert
        find = (_FIND, params)
        refused = fence.lost if fence else None
        if ttl is None:
            entry_id = self.backend.write(sql, params, find=find, refused=refused)
            return Entry(entry_id, key, decode_value(text), machine, created_at)
        entry_id, expires_at = self.backend.write(sql, params, read_back=_EXPIRY, find=find, refused=refused)
        return Entry(entry_id, key, decode_value(text), machine, created_at, _epoch_time(expires_at))

    def add_many(self, job_id: int, machine: str, items: list[tuple[str, str]], ttl: float | None = None,
                 fence: Fence = NO_FENCE) -> list[Entry]:
        """Append many (key, encoded value) entries in one transaction, stored once even when retried.

        All share one microsecond time stamp: after a lost connection, the
        rows found under it tell whether the commit got through before the
        whole transaction is tried again.
        """
        if not items:
            return []
        keys, texts = zip(*items)
        self.check_size(texts)
        created_at = self.clock.now()
        stamp = db_time(created_at)

        def insert() -> tuple[list[int], float | None]:
            with self.transaction():
                fence.check(self.backend)
                expires_at = None if ttl is None else self.backend.now() + ttl
                rows = [(job_id, machine, key, text, stamp, expires_at) for key, text in items]
                return self.backend.insert_many("process_cache", _INSERT_COLUMNS, rows), expires_at

        def stored() -> tuple[list[int], Any] | None:
            found = self.backend.select("SELECT id, expires_at FROM process_cache WHERE job_id = $job_id AND"
                                        f" {same_text('machine', '$machine')} AND created_at = $stamp ORDER BY id",
                                        {"job_id": job_id, "machine": machine, "stamp": stamp})
            if len(found) < len(items):
                return None
            return [row[0] for row in found[-len(items):]], found[-1][1]

        ids, expires_at = self.backend.retrying(insert, stored)
        return list(map(entry_of_tuple, zip(ids, keys, decode_values(texts), repeat(machine), repeat(created_at),
                                            repeat(_epoch_time(expires_at)))))

    def restore(self, job_id: int, rows: Sequence[tuple[str, str, str, datetime, float | None]],
                append: bool = False, progress: Callable[[int], None] | None = None) -> int:
        """Insert exported (machine, key, text, created_at, expires_at) rows as they were, in one transaction.

        Returns how many were inserted. Unless *append*, a row already stored
        (same machine, key, value and creation time, expired or not) is not
        stored again, so importing one file twice, or a retried import, is a
        no-op; rows repeated in the file are kept as often as it holds them.
        *progress* is called with the number of rows dealt with.
        """
        self.check_size([row[2] for row in rows])
        with one_line_when_lost(self.database, "the import"), self.transaction(immediate=True):
            self._lock_job_row(job_id)  # two imports of one file take turns, so neither doubles the other's
            stored = Counter() if append else self._stored_identities(job_id)
            new = []
            for machine, key, text, created, expires in rows:
                identity = (machine, key, text, created.astimezone(timezone.utc))
                if stored[identity]:
                    stored[identity] -= 1
                else:
                    new.append((job_id, machine, key, text, db_time(created), expires))
            if progress is not None:
                progress(len(rows) - len(new))
            for start in range(0, len(new), 1000):
                self.backend.insert_many("process_cache", _INSERT_COLUMNS, new[start:start + 1000])
                if progress is not None:
                    progress(len(new[start:start + 1000]))
        return len(new)

    def _stored_identities(self, job_id: int) -> Counter:
        rows = self.backend.select("SELECT machine, entry_key, entry_value, created_at FROM process_cache"
                                   " WHERE job_id = $job_id", {"job_id": job_id})
        return Counter((machine, key, text, py_time(created)) for machine, key, text, created in rows)

    def entries(self, job_id: int, machine: str | None, key: str | None = None) -> list[Entry]:
        """Live entries of a job, oldest first; *machine* None means every machine."""
        with gc_paused():
            found = self.backend.select(*self.entries_query(job_id, machine, key))
            entries = _entries_of([r for r in found if r[1] == key] if key is not None else found, machine)
            del found  # freed now: the collector's pass when it resumes walks the entries, not the rows too
        return entries

    def entries_query(self, job_id: int, machine: str | None, key: str | None = None) -> tuple[str, dict]:
        """The SELECT of `entries` and its parameters (tests EXPLAIN it).

        With a key, ORDER BY (key, id) is the order of the (job, machine, key,
        id) index, so every database reads just that key's rows, in order
        (see `_filter` for why the key is a range).
        """
        where, params = self._filter(job_id, machine, key)
        order = "entry_key, id" if key is not None else "id"
        columns = self._columns if machine is None else self._columns_of_one
        return f"SELECT {columns} FROM process_cache WHERE {where} ORDER BY {order}", params

    def has(self, job_id: int, machine: str | None, key: str | None = None) -> bool:
        """Whether any live entry exists, without reading the values."""
        where, params = self._filter(job_id, machine, key)
        if key is not None:  # the equal length keeps out a key that differs by trailing spaces, as `latest` does
            where += " AND LENGTH(entry_key) = LENGTH($key)"
        return bool(self.backend.select(f"SELECT id FROM process_cache WHERE {where} LIMIT 1", params))

    def latest(self, job_id: int, machine: str | None, key: str) -> Entry | None:
        """The newest live entry under *key*: one row read, however many the key holds.

        The equal length keeps out a key that differs by trailing spaces,
        which MySQL's comparisons ignore; the index still walks only this
        key's rows, newest first.
        """
        where, params = self._filter(job_id, machine, key)
        for r in self.backend.select(f"SELECT {self._columns} FROM process_cache WHERE {where}"
                                     " AND LENGTH(entry_key) = LENGTH($key) ORDER BY entry_key DESC, id DESC LIMIT 1",
                                     params):
            if r[1] == key:
                return Entry(r[0], r[1], decode_value(r[2]), r[3], py_time(r[4]), _epoch_time(r[5]))
        return None

    def replace(self, job_id: int, machine: str, key: str, text: str, ttl: float | None = None,
                fence: Fence = NO_FENCE, across_machines: bool = False) -> Entry:
        """Make one entry, *machine*'s, the only one under *key* (of every machine's, *across_machines*), atomically.

        A reader sees the old list or the new entry, never an empty or doubled
        key: the delete and the insert commit together, and writers of the
        same job take turns on the job's row (on SQLite the session starts
        with the write lock, so no append can slip in between the read of
        what to delete and the delete). Tried again whole after a lost
        connection: the key then holds the one new entry either way.
        """
        self.check_size([text])

        def replace() -> Entry:
            with self.transaction(immediate=True):
                fence.check(self.backend)
                self._lock_job_row(job_id)
                self._delete(job_id, None if across_machines else machine, key)
                return self._add(job_id, machine, key, text, ttl)

        return self.backend.retrying(replace)

    def delete(self, job_id: int, machine: str | None, key: str | None = None, fence: Fence = NO_FENCE) -> int:
        """Delete every entry under *key* (or every key) of *machine* (or every machine); return how many went.

        Tried again after a lost connection."""

        def delete() -> int:
            with self.transaction(immediate=True):
                fence.check(self.backend)
                self._lock_job_row(job_id)
                return self._delete(job_id, machine, key)

        return self.backend.retrying(delete)

    def _delete(self, job_id: int, machine: str | None, key: str | None) -> int:
        """Delete the entries, expired ones too; count the live ones only, the ones every read showed."""
        where, params = self._filter(job_id, machine, key, live_only=False)
        live = f"CASE WHEN expires_at IS NULL OR expires_at > {self.now} THEN 1 ELSE 0 END"
        rows = [r for r in self.backend.select(f"SELECT id, entry_key, {live} FROM process_cache WHERE {where}",
                                               params)
                if key is None or r[1] == key]
        self.backend.delete_ids("process_cache", [r[0] for r in rows])
        return sum(int(r[2]) for r in rows)

    def _lock_job_row(self, job_id: int) -> None:
        if self._lock_job:
            self.backend.select(self._lock_job, {"job_id": job_id})

    def key_stats(self, job_id: int, machine: str | None) -> list[KeyStats]:
        """Every live key with its number of entries, their size in bytes and the newest time."""
        where, params = self._filter(job_id, machine, None)
        rows = self.backend.select("SELECT entry_key, COUNT(*), SUM(LENGTH(entry_value)), MAX(created_at)"
                                   f" FROM process_cache WHERE {where} GROUP BY entry_key ORDER BY entry_key", params)
        return [KeyStats(r[0], int(r[1]), int(r[2]), py_time(r[3])) for r in rows]

    def export_rows(self, job_id: int, machine: str | None) -> list[tuple]:
        """Live rows as stored, oldest first: (machine, key, text, created_at, expires_at)."""
        where, params = self._filter(job_id, machine, None)
        rows = self.backend.select("SELECT machine, entry_key, entry_value, created_at, expires_at"
                                   f" FROM process_cache WHERE {where} ORDER BY id", params)
        return [(r[0], r[1], r[2], py_time(r[3]), None if r[4] is None else float(r[4])) for r in rows]

    def prune_expired(self, dry_run: bool = False, batch: int = 1000,
                      progress: Callable[[str, int], None] | None = None) -> int:
        """Delete expired entries for good, in short batches; return how many."""
        where = f"FROM process_cache r WHERE r.expires_at IS NOT NULL AND r.expires_at <= {self.now}"
        return self.backend.delete_in_batches("process_cache", where, {}, batch, dry_run,
                                              progress and (lambda rows: progress("entries", rows)))

    def _filter(self, job_id: int, machine: str | None, key: str | None, live_only: bool = True) -> tuple[str, dict]:
        params = {"job_id": job_id, "machine": machine, "key": key}
        clauses = ["job_id = $job_id"]
        if machine is not None:
            clauses.append(same_text("machine", "$machine"))
        if key is not None:
            # A range, not "=": PostgreSQL without statistics (a young table,
            # a bulk load since the last ANALYZE) costs "=" on the key index and
            # the (job, machine, id) index alike and took the latter, filtering
            # the whole job. Only the key index yields a key range in order.
            clauses.append("entry_key >= $key AND entry_key <= $key")
        if live_only:
            clauses.append(f"(expires_at IS NULL OR expires_at > {self.now})")
        return " AND ".join(clauses), params


def _entries_of(found: list[tuple], machine: str | None) -> list[Entry]:
    """Entries of (id, key, text, machine, created_at, expires_at) rows, column by column.

    Rows of one *machine* come without their machine column.

    The per-row Python of a comprehension (indexing, helper calls, the
    NamedTuple constructor) was two thirds of a 100,000-entry load after the
    fetch; column-wise, the loops run in C. Entries written together share a
    time stamp, so each distinct stamp is parsed once.
    """
    if not found:
        return []
    machines: Iterable[str]
    if machine is None:
        ids, keys, texts, machines, created, expires = zip(*found)
    else:
        (ids, keys, texts, created, expires), machines = zip(*found), repeat(machine)
    stamps = {stamp: py_time(stamp) for stamp in set(created)}
    expiries: Iterable[datetime | None] = map(_epoch_time, expires) if any(expires) else expires
    return list(map(entry_of_tuple, zip(ids, keys, decode_values(texts), machines,
                                        map(stamps.__getitem__, created), expiries)))


def _epoch_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), timezone.utc)
