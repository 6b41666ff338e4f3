"""stdlib logging into the log table: ``ctx.logger`` and ``capture_logging``.

Imported when a job first uses ``ctx.logger`` or captures logging, so a run
that does neither does not import `logging`.
"""

import logging
import threading
from typing import TYPE_CHECKING

from ..records import LogType

if TYPE_CHECKING:
    from .context import CacheContext


def log_type_of(levelno: int) -> LogType:
    """DEBUG and INFO are GENERIC, WARNING is WARNING, ERROR and CRITICAL are ERROR."""
    if levelno >= logging.ERROR:
        return LogType.ERROR
    if levelno >= logging.WARNING:
        return LogType.WARNING
    return LogType.GENERIC


class DatabaseHandler(logging.Handler):
    """Store log records as logs of the running job, linked to its run, level kept.

    A record is stored once even when it passes through two such handlers
    (the job's logger and a captured root logger). Records logged while a
    record is being stored (by the database driver, say) are dropped, not
    stored in a loop.
    """

    def __init__(self, ctx: "CacheContext", level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.ctx = ctx
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "processcache_stored", False) or getattr(self._busy, "on", False):
            return
        record.processcache_stored = True
        self._busy.on = True
        try:
            self.ctx._store_log(self.format(record), log_type_of(record.levelno), record.levelname)
        except Exception:
            self.handleError(record)
        finally:
            self._busy.on = False
