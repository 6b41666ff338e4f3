"""Errors a user can cause, each saying what was wrong and what to do.

Every message is one line and never holds a database password: the CLI
prints it as it is, without a traceback.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import RunRecord


class ProcessCacheError(Exception):
    """Base of every error processcache raises on purpose."""


class ConfigError(ProcessCacheError, ValueError):
    """A database URL or an option that cannot be used as given."""


#: What pip installs for each driver extra: named by itself, it works from a checkout as from an index.
_PACKAGES = {"postgres": "psycopg2-binary", "mysql": "PyMySQL"}


class MissingDriverError(ProcessCacheError, ImportError):
    """The Python driver for the chosen database is not installed."""

    def __init__(self, database: str, extra: str, module: str) -> None:
        super().__init__(
            f"the {database} driver ({module}) is not installed: pip install {_PACKAGES[extra]}"
            f" (or the extra: pip install 'processcache[{extra}]')"
        )


class DatabaseUnavailableError(ProcessCacheError):
    """The database could not be reached or opened."""


class DatabaseDownError(ProcessCacheError):
    """A run kept in the local spool (``if_database_down="run"``) asked for what only the database has.

    Such a run's writes (entries, logs) are kept and stored later; its reads
    of the shared cache, its ``last_success``, a batch and memoize raise this.
    """


class SpoolFullError(ProcessCacheError):
    """The local spool holds its limit already (`processcache.run.spool.DEFAULT_LIMIT`): nothing more is kept."""


class PoolExhaustedError(DatabaseUnavailableError):
    """Every connection of the process's pool stayed in use for longer than ``pool_timeout``."""


class SchemaError(ProcessCacheError):
    """The database's tables do not match what this version expects."""


class InvalidNameError(ProcessCacheError, ValueError):
    """A group, job or machine name that cannot be stored."""


class InvalidKeyError(ProcessCacheError, ValueError):
    """A cache key that cannot be stored."""


class InvalidValueError(ProcessCacheError, TypeError):
    """A cache value that is not a JSON value."""


class LoadError(ProcessCacheError):
    """A `path/file.py:job` or `package.module:job` target that cannot be loaded."""


class RegistryError(ProcessCacheError):
    """A job declared twice, or declared the wrong way."""


class LeaseLostError(ProcessCacheError):
    """This run no longer holds its lock: another run took it over (its lease ran out) or an operator broke it.

    Raised by every write the run tries after that, so that two runs never
    write at once; the run ends as ``lost``.
    """

    def __init__(self, lock: str) -> None:
        self.lock = lock
        super().__init__(f"lost the lease on the lock {lock} (it ran out before a renewal and another run took the"
                         " lock, or an operator broke it): nothing more this run writes is stored")


class LeaseUnconfirmedError(LeaseLostError):
    """The database did not confirm this run's lease for longer than the lease: another run may hold the lock.

    `processcache exec` stops its command then, since a command's writes
    cannot be fenced; the run's end is recorded if the database answers again.
    """

    def __init__(self, lock: str, silent: float) -> None:
        self.lock = lock
        ProcessCacheError.__init__(self, f"could not renew the lease on the lock {lock} for {silent:.0f}s (the database"
                                         " did not answer): the command was stopped, as another run may hold the"
                                         " lock now")


class RunNotRecordedError(ProcessCacheError):
    """A run ended but how it ended could not be stored: the message tells both.

    *run* is the run's record as last known (still ``running`` in the
    database, so ``check`` later reports it lost); *original* is what ended
    the job (None when it succeeded).
    """

    def __init__(self, message: str, run: "RunRecord | None", original: BaseException | None = None) -> None:
        super().__init__(message)
        self.run = run
        self.original = original


class ImportLineError(ProcessCacheError, ValueError):
    """A line given to `cache import` that `cache export` could not have written; the message names line and field."""


class JobSkippedError(ProcessCacheError):
    """The run was recorded as `skipped` (``processcache run`` exits 75); *run* is that record.

    Another run held the job's lock (`JobLockedError`), or the job's
    ``once_per`` slot or ``skip_if_succeeded_within`` says its work is done.
    """

    def __init__(self, message: str, run: "RunRecord") -> None:
        super().__init__(message)
        self.run = run


class JobLockedError(JobSkippedError):
    """Another run holds the job's lock: this run was recorded as `skipped`; *run* is that record."""


class CommandFailedError(ProcessCacheError):
    """The command ``processcache exec`` ran exited non-zero, was killed by a signal, or could not start.

    *exit_code* is what a shell would report (127 not found, 126 not
    executable, 128 + n for signal n); *signal* the signal that killed it.
    """

    def __init__(self, message: str, exit_code: int, signal: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal


class MemoTimeoutError(ProcessCacheError, TimeoutError):
    """Another process kept computing a memoised value for longer than the timeout."""


class ReadOnlyError(ProcessCacheError):
    """A write (a run, a log, an entry, a lock, a schema change) to a Database opened with ``read_only=True``."""


def one_line(exc: BaseException, mask: Callable[[str], str] | None = None) -> str:
    """*exc* in one line: a ProcessCacheError's message, any other's type and message; its first line, through
    *mask* (which hides a database URL's password, whatever shape the error took)."""
    text = str(exc) if isinstance(exc, ProcessCacheError) else f"{type(exc).__name__}: {exc}"
    lines = text.splitlines()
    line = lines[0] if lines else type(exc).__name__
    return mask(line) if mask else line
