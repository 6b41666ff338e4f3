"""The original process-cache's database: recognised, never used in place, imported on request.

The TypeScript library process-cache (Sequelize) wrote four tables under
the names processcache keeps, with columns of its own (`ORIGINAL_COLUMNS`):
``process`` and ``job`` where processcache has ``process_id`` and
``job_id``, ``key``/``value`` for ``entry_key``/``entry_value``, ``type``
for ``log_type``, and times as unix seconds in ``createdAt`` (an INT) where
processcache keeps ``created_at`` in UTC with microseconds. `Schema.create`
refuses such tables before it creates anything, and says to import them
(`is_original`).

`import_original` copies every process, job, cache entry and log into a
processcache database, in the original's id order, so the new ids keep
their order:

- **All or nothing per job, resumable, idempotent.** Each job's entries and
  logs are written in one transaction, which first reads what the job
  holds already: a row whose (machine, key, value, time) or (machine, type,
  message, time) is there is not written again, and a row the original
  holds twice is kept twice. An import killed midway leaves whole jobs
  imported and the others untouched; the next import adds the rest, and a
  complete one adds nothing.
- **Values** are the strings the original stored: ``get_cache`` returns the
  str, ``"42"`` included (the original kept text only).
- **Times** are the original's unix seconds, read as UTC.
- **Machines** are kept as written; logs and entries keep theirs. The
  original scoped a cache to its machine: a ported job that should see only
  its machine's entries declares ``scope="machine"``.
- **Log types** GENERIC, WARNING and ERROR are kept; any other text the
  original's ``type`` column holds becomes GENERIC with that text as the
  log's level, so nothing is lost and every log is readable.
- **Names the original allowed and processcache refuses** are imported under
  the nearest name processcache takes, and each rename is reported: ``/``
  and ``@`` (which separate GROUP/JOB@MACHINE) become ``-``; a group or job
  name with no letter or digit becomes ``process-ID`` or ``job-ID`` (the
  original's id); an empty machine becomes ``unknown`` (the original's own
  default for a log's machine); an empty key becomes ``(empty key)``. A
  ported job then uses the new name.
- Rows whose job no longer exists in the original (its foreign keys were
  not always there) are counted as orphans and left out.

The original's tables are read only, never changed, unless
*rename_original* moves them out of the way (``original_processes``, ...)
so processcache can use that database in place; that step is its own, and
an import after it reads the moved tables.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..cache.codec import encode_value
from ..errors import InvalidNameError, ProcessCacheError
from ..names import check_text, normalize, normalize_name
from ..records import LogType
from .texts import storable
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

#: The original's tables and the columns that tell them apart from anyone else's (Sequelize's names).
ORIGINAL_COLUMNS = {
    "processes": ("id", "name", "createdAt"),
    "process_jobs": ("id", "process", "name", "createdAt"),
    "process_job_logs": ("id", "process", "job", "machine", "type", "message", "createdAt"),
    "process_cache": ("id", "process", "job", "machine", "key", "value", "createdAt"),
}
EMPTY_MACHINE = "unknown"
EMPTY_KEY = "(empty key)"
_ENTRY_COLUMNS = ("job_id", "machine", "entry_key", "entry_value", "created_at", "expires_at")
_LOG_COLUMNS = ("job_id", "run_id", "machine", "log_type", "level", "message", "created_at")
_CHUNK = 1000


def is_original(table: str, columns: Iterable[str]) -> bool:
    """Whether *table*, with these *columns*, is one the original process-cache wrote."""
    wanted = ORIGINAL_COLUMNS.get(table)
    return wanted is not None and {name.lower() for name in wanted} <= {name.lower() for name in columns}


@dataclass
class ImportCounts:
    """What `import_original` did: rows written, rows found already there, and the names it had to change."""

    groups: int = 0
    jobs: int = 0
    entries: int = 0
    logs: int = 0
    entries_there: int = 0
    logs_there: int = 0
    orphans: int = 0
    renamed: list[str] = field(default_factory=list)


def original_rows(source: "Database", tables: dict[str, str] | None = None) -> int:
    """How many entries and logs the original's database *source* holds: what `import_original` goes through."""
    reader = _Reader(source, tables)
    return reader.count("process_cache") + reader.count("process_job_logs")


def import_original(source: "Database", target: "Database", progress: Callable[[int], None] | None = None,
                    tables: dict[str, str] | None = None) -> ImportCounts:
    """Import the original's database *source* into the processcache database *target*; see the module docstring.

    *progress* is called with the number of entries and logs of each job as
    it is done. *tables* says where the original's tables are when they are
    not under their own names (as `rename_original` returns it).
    """
    reader = _Reader(source, tables)
    counts = ImportCounts()
    groups = {process_id: _name(name, "process", process_id, counts)
              for process_id, name in reader.rows("SELECT id, name FROM {processes} ORDER BY id")}
    jobs = reader.rows("SELECT id, process, name FROM {process_jobs} ORDER BY id")
    counts.groups, counts.jobs = len(groups), len(jobs)
    known = {job_id for job_id, _, _ in jobs}
    counts.orphans = sum(1 for table in ("process_cache", "process_job_logs")
                         for (job,) in reader.rows(f"SELECT job FROM {{{table}}}") if job not in known)
    for job_id, process_id, name in jobs:
        group = groups.get(process_id) or _name(f"process-{process_id}", "process", process_id, counts)
        done = _import_job(reader, target, job_id, group, _name(name, "job", job_id, counts), counts)
        if progress is not None:
            progress(done)
    return counts


def _name(name: str, what: str, original_id: int, counts: ImportCounts) -> str:
    """The processcache name of the original's group or job *name*, the change reported in *counts*."""
    try:
        return normalize_name(name, what)
    except InvalidNameError:
        instead = normalize("".join("-" if char in "/@" else char for char in name)).strip("-")
        if not any(char.isalnum() for char in instead) or len(instead) > 255:
            instead = f"{what}-{original_id}"
        counts.renamed.append(f"{what} {name!r} as {instead!r}")
        return instead


def _import_job(reader: "_Reader", target: "Database", job_id: int, group: str, job: str,
                counts: ImportCounts) -> int:
    """Import one job's entries and logs in one transaction; return how many source rows it went through."""
    entries = [(_machine(machine, counts), _key(key, counts), encode_value(value), _time(created))
               for machine, key, value, created in reader.rows(
                   "SELECT machine, {key}, value, createdAt FROM {process_cache} WHERE job = $job ORDER BY id",
                   {"job": job_id})]
    logs = [(_machine(machine, counts), *_type(kind), storable(message) or "", _time(created))
            for machine, kind, message, created in reader.rows(
                "SELECT machine, type, message, createdAt FROM {process_job_logs} WHERE job = $job ORDER BY id",
                {"job": job_id})]
    new_job = target.store.job_id(group, job)
    backend = target.backend
    with backend.transaction(immediate=True):
        lock = backend.dialect.lock_job_row()
        if lock:  # two imports at once take turns on the job, so neither doubles the other's rows
            backend.select(lock, {"job_id": new_job})
        there = _stored(backend, "SELECT machine, entry_key, entry_value, created_at FROM process_cache"
                                 " WHERE job_id = $job_id", new_job)
        new_entries = [(new_job, *row[:3], db_time(row[3]), None) for row in _missing(entries, there)]
        there = _stored(backend, "SELECT machine, log_type, level, message, created_at FROM process_job_logs"
                                 " WHERE job_id = $job_id AND run_id IS NULL", new_job)
        new_logs = [(new_job, None, *row[:4], db_time(row[4])) for row in _missing(logs, there)]
        for start in range(0, max(len(new_entries), len(new_logs)), _CHUNK):
            backend.insert_many("process_cache", _ENTRY_COLUMNS, new_entries[start:start + _CHUNK])
            backend.insert_many("process_job_logs", _LOG_COLUMNS, new_logs[start:start + _CHUNK])
    counts.entries += len(new_entries)
    counts.entries_there += len(entries) - len(new_entries)
    counts.logs += len(new_logs)
    counts.logs_there += len(logs) - len(new_logs)
    return len(entries) + len(logs)


def _stored(backend, sql: str, job_id: int) -> Counter:
    """The rows *sql* reads, the time as an aware UTC datetime (the last column), counted."""
    return Counter((*row[:-1], py_time(row[-1])) for row in backend.select(sql, {"job_id": job_id}))


def _missing(rows: list[tuple], there: Counter) -> list[tuple]:
    """*rows* less those *there* holds already, each one as often as it is held."""
    missing = []
    for row in rows:
        if there[row]:
            there[row] -= 1
        else:
            missing.append(row)
    return missing


def _machine(machine: str, counts: ImportCounts) -> str:
    return _not_empty(machine, "machine", EMPTY_MACHINE, counts)


def _key(key: str, counts: ImportCounts) -> str:
    return _not_empty(key, "key", EMPTY_KEY, counts)


def _not_empty(text: str, what: str, instead: str, counts: ImportCounts) -> str:
    """*text* checked as processcache stores it; *instead* for an empty one, which processcache refuses."""
    if text:
        return check_text(text, what, ProcessCacheError)
    change = f"{what} '' as {instead!r}"
    if change not in counts.renamed:
        counts.renamed.append(change)
    return instead


def _type(kind: str) -> tuple[str, str | None]:
    """(log type, level) of the original's ``type``: one of the three, else GENERIC with the text as its level."""
    try:
        return LogType.parse(kind).value, None
    except ValueError:
        return LogType.GENERIC.value, kind[:16]


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), timezone.utc)


def rename_original(database: "Database") -> dict[str, str]:
    """Move the original's tables out of processcache's way, in one step; return where each one is now.

    Tables moved by an earlier call stay where they are (`Dialect.aside`
    says where: ``original_processes``, ..., or on PostgreSQL the schema
    ``process_cache_original`` with their indexes and sequences). A table of
    the original's name that is not the original's is left alone: the
    import then says it holds no original tables.
    """
    backend = database.backend
    moved, statements = backend.dialect.aside(list(ORIGINAL_COLUMNS))
    if not all(backend.has_table(name) for name in moved.values()):
        with backend.ddl():
            for statement in statements:
                backend.execute(statement)
    return moved


class _Reader:
    """Reads the original's tables, wherever they are, quoting the columns that need it on each database."""

    def __init__(self, source: "Database", tables: dict[str, str] | None) -> None:
        self.backend = source.backend
        self.names = {**(tables or {table: table for table in ORIGINAL_COLUMNS}),
                      "key": self.backend.dialect.quote("key"),
                      "createdAt": self.backend.dialect.quote("createdAt")}
        self._check(source.url)

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        sql = sql.replace("createdAt", "{createdAt}").format(**self.names)
        return self.backend.retrying(lambda: self.backend.select(sql, params))

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT COUNT(*) FROM {{{table}}}")[0][0])

    def _check(self, url: str) -> None:
        """ProcessCacheError, before anything is written, unless the source holds the original's four tables."""
        missing = [name for table, name in self.names.items() if table in ORIGINAL_COLUMNS
                   and not self.backend.has_table(name)]
        if missing:
            raise ProcessCacheError(f"{url} holds no table {', '.join(missing)} of the original process-cache:"
                                    " give the URL of the database the original wrote")
