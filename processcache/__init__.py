"""processcache: keep expensive data between runs of cron jobs, and record every run.

>>> from processcache import job, LogType
>>> @job("example", "hello-doc")
... def hello(ctx):
...     ctx.create_log("Operation running")
>>> hello.run(database="sqlite://:memory:", machine="doc").status
'succeeded'
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .cache.context import ANY, CacheContext, current_context
from .cache.reader import CacheReader, read_cache
from .errors import (
    CommandFailedError,
    ConfigError,
    DatabaseDownError,
    DatabaseUnavailableError,
    ImportLineError,
    InvalidKeyError,
    InvalidNameError,
    InvalidValueError,
    JobLockedError,
    JobSkippedError,
    LeaseLostError,
    LeaseUnconfirmedError,
    LoadError,
    MemoTimeoutError,
    MissingDriverError,
    PoolExhaustedError,
    ProcessCacheError,
    ReadOnlyError,
    RegistryError,
    RunNotRecordedError,
    SchemaError,
    SpoolFullError,
)
from .names import normalize_name
from .options import JobOptions
from .records import (
    RUN_STATUSES,
    AttemptRecord,
    Entry,
    GroupRecord,
    JobRecord,
    JobSummary,
    LockRecord,
    LogRecord,
    LogType,
    Problem,
    RunDetail,
    RunRecord,
    RunStatus,
)
from .registry import JobSpec, Registry, job
from .run.session import cache_session
from .run.timeouts import TimedOut
from .storage import Database, connect

if TYPE_CHECKING:  # for type checkers: at run time, __getattr__ imports it on first use
    from .cache.memo import memoize


def __getattr__(name: str) -> object:
    # memoize lives in memo.py, imported on first use: `processcache run` does not need it.
    if name == "memoize":
        from .cache import memo

        return getattr(memo, name)
    raise AttributeError(f"module 'processcache' has no attribute {name!r}")


__all__ = [
    "ANY",
    "RUN_STATUSES",
    "AttemptRecord",
    "CacheContext",
    "CacheReader",
    "CommandFailedError",
    "ConfigError",
    "Database",
    "DatabaseDownError",
    "DatabaseUnavailableError",
    "Entry",
    "GroupRecord",
    "ImportLineError",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidValueError",
    "JobLockedError",
    "JobSkippedError",
    "JobOptions",
    "JobRecord",
    "JobSpec",
    "JobSummary",
    "LeaseLostError",
    "LeaseUnconfirmedError",
    "LoadError",
    "LockRecord",
    "LogRecord",
    "LogType",
    "MemoTimeoutError",
    "MissingDriverError",
    "PoolExhaustedError",
    "Problem",
    "ProcessCacheError",
    "ReadOnlyError",
    "Registry",
    "RegistryError",
    "RunDetail",
    "RunNotRecordedError",
    "RunRecord",
    "RunStatus",
    "SchemaError",
    "SpoolFullError",
    "TimedOut",
    "__version__",
    "cache_session",
    "connect",
    "current_context",
    "job",
    "memoize",
    "normalize_name",
    "read_cache",
]
