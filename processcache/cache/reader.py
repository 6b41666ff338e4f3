"""`read_cache`: a job's cache, logs and last success, read without a run (a notebook's look at a job).

`cache_session` records a run: its start, its end, its status, its
output. Opened to look at a job's data from a notebook, that run would be a
``succeeded`` run of the job like any other, and the job's next run would
resume from it (``last_success()``). A `CacheReader` records nothing: it
reads the job's entries in the job's own scope (as its runs see them),
its logs and its last success, and has no method that writes. Opened with
a URL, its Database is opened ``read_only=True`` as well, so the database
refuses a write that came another way (`ReadOnlyError`).

>>> from processcache import cache_session, read_cache
>>> with cache_session("example", "reader-doc", database="sqlite://:memory:") as ctx:
...     _ = ctx.create_cache("token", "abc")
...     with read_cache("example", "reader-doc", database=ctx.database) as cache:
...         cache.latest("token"), cache.has_cache_key("nope")
('abc', False)
"""

from typing import Any

from ..options import JobOptions
from ..records import Entry, LogRecord, LogType, RunRecord
from ..storage import Database, connect
from .context import JOB_SCOPE, CacheContext


class CacheReader:
    """A job's data as its runs see it, read-only; made by `read_cache`. See the module docstring.

    Every read goes to the database now, as `CacheContext`'s do, except
    `tree` and `results`: a snapshot read on first use, read again by
    `sync_cache`.
    """

    def __init__(self, database: Database, group: str, job: str, machine: str | None = None,
                 owned: bool = False) -> None:
        self.database = database
        self._owned = owned
        database.history.job_id(f"{group}/{job}")  # a mistyped name is an error, never a new job
        self._ctx = CacheContext(database, group, job, machine)
        self._ctx.options = JobOptions(scope=database.runs.scope_of(self._ctx.job_id) or "job")
        self.group, self.job, self.machine = self._ctx.group, self._ctx.job, self._ctx.machine
        self.job_id = self._ctx.job_id

    def __repr__(self) -> str:
        return f"<CacheReader {self.group}/{self.job} on {self.machine}>"

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Database `read_cache` opened for a URL (one it was handed stays open)."""
        if self._owned:
            self.database.close()

    def get_cache(self, key: str, machine: Any = JOB_SCOPE) -> list[Entry]:
        """The entries under *key*, oldest first."""
        return self._ctx.get_cache(key, machine)

    def latest(self, key: str, default: Any = None, machine: Any = JOB_SCOPE) -> Any:
        """The newest value under *key*, or *default*."""
        return self._ctx.latest(key, default, machine)

    def has_cache(self, machine: Any = JOB_SCOPE) -> bool:
        """Whether the job holds any entry."""
        return self._ctx.has_cache(machine)

    def has_cache_key(self, key: str, machine: Any = JOB_SCOPE) -> bool:
        """Whether *key* holds any entry."""
        return self._ctx.has_cache_key(key, machine)

    def get_full_cache(self, machine: Any = JOB_SCOPE) -> dict[str, list[Entry]]:
        """Every key with its entries, oldest first."""
        return self._ctx.get_full_cache(machine)

    @property
    def tree(self) -> dict[str, list[Entry]]:
        """Every key with its entries, oldest first: read on first use, again by `sync_cache`."""
        return self._ctx.tree

    @property
    def results(self) -> dict[int, Entry]:
        """The entries of `tree` by id."""
        return self._ctx.results

    def sync_cache(self) -> dict[str, list[Entry]]:
        """Read `tree` and `results` again, and return the tree."""
        return self._ctx.sync_cache()

    def get_logs(self, offset: int = 0, limit: int | None = None, type: LogType | str | None = None,
                 machine: Any = JOB_SCOPE, whole_group: bool = False, output: bool = False) -> list[LogRecord]:
        """The job's logs, oldest first, as `CacheContext.get_logs` reads them."""
        return self._ctx.get_logs(offset, limit, type, machine, whole_group, output)

    def last_success(self, machine: Any = JOB_SCOPE) -> RunRecord | None:
        """The job's newest successful run: the one its next run resumes from."""
        return self._ctx.last_success(machine)


def read_cache(group: str, job: str, database: "Database | str | None" = None, *,
               machine: str | None = None) -> CacheReader:
    """Open *group*/*job*'s cache, logs and last success to read, recording no run (see `CacheReader`).

    *database* is a URL (opened ``read_only=True``, closed by the reader's
    ``close()`` or its ``with`` block), a connected `Database` (used as it
    is, left open), or None for ``PROCESSCACHE_DATABASE_URL`` or the default
    SQLite file. A job that is not in the database is a `ProcessCacheError`
    naming the jobs there. *machine* (default: this host) matters for a job
    of ``scope="machine"`` only, whose entries are each machine's own.
    """
    if isinstance(database, Database):
        return CacheReader(database, group, job, machine)
    db = connect(database, read_only=True)
    try:
        return CacheReader(db, group, job, machine, owned=True)
    except BaseException:
        db.close()
        raise
