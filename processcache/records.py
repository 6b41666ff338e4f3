"""Plain immutable records returned to users instead of live ORM objects.

They can be kept after the database is closed, passed between threads, and
compared; reading them never touches the database. They are NamedTuples:
loads build one per row, and a tuple is built several times faster than a
frozen dataclass (whose class is also slower to create at import).
"""

from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from .logs import LogType


class Entry(NamedTuple):
    """One cached value under a key. Keys are not unique: a key holds a list."""

    id: int
    key: str
    value: Any
    machine: str
    created_at: datetime
    expires_at: datetime | None = None


#: Entry from a 6-tuple without NamedTuple's Python-level ``__new__``: with
#: `map`, a load builds its 100,000 records without a Python frame per record.
entry_of_tuple = partial(tuple.__new__, Entry)


class LogRecord(NamedTuple):
    """One log message of a job, and the run that wrote it (if any)."""

    id: int
    type: LogType
    message: str
    machine: str
    created_at: datetime
    run_id: int | None = None
    level: str | None = None
    job: str | None = None
    group: str | None = None


class RunRecord(NamedTuple):
    """One execution of a job on a machine."""

    id: int
    group: str
    job: str
    machine: str
    pid: int
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration: float | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None
    signal: int | None = None

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"

    @property
    def name(self) -> str:
        """``group/job``, as the CLI names a job."""
        return f"{self.group}/{self.job}"
