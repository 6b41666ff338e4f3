"""The SQL floor: every read and write of the ledger and the cache, on SQLite, PostgreSQL and MySQL/MariaDB.

- `database`: ``connect()`` and ``Database``, which composes the backend and the stores.
- `config`: database URLs (precedence, defaults, options, masking of passwords).
- `backend`: the one executor and the only module that touches Pony's
  internals and the drivers; `pool` the connections a process's threads
  share; `dialects` one ``Dialect`` per database; `retry` what a lost
  connection is and the budget; `waits` bounded waits on PostgreSQL;
  `sqlitefiles` the SQLite file, private and checked.
- `schema`: the Pony entities, the versions and the upgrades, the schema lock.
- `clock`: the database server's clock; `timeutil`, `texts`: time stamps and
  stored texts as they go in and out.
- `fence`: a locked run's writes checked against its lock.
- The stores: `cache` (entries), `runs` (runs and locks), `store` (groups,
  jobs, logs), `history` (listings, the rows ``check`` judges, prune),
  `queries` (the SQL fragments they share), `retirement`, `pauses`, `pools`, `alerts`,
  `metrics`, `transfer` (``cache export``), `spool` (runs kept on this
  machine while the database was down), `replay` (those runs into the
  ledger, once) and `original` (the original process-cache's tables:
  recognised, imported, moved aside).
- `standby`: how far behind its primary a standby the read commands read is.

One door: the floors above import only this package (the names below),
never a module of it, and write no SQL; nothing here imports from ``run``,
``monitor``, ``web`` or ``cli``, but for ``Database.check``, the user's one
call for verdicts, which asks ``monitor.check`` when called
(tests/test_design.py keeps these rules). A name is imported from its
module on first use, so ``import processcache`` loads no more than before.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .database import Database, connect

if TYPE_CHECKING:  # for type checkers: at run time, __getattr__ imports each on first use
    from . import clock
    from .alerts import RETRY_DELAYS, AlertState, AlertStore
    from .backend import DriverError, one_line_when_lost
    from .config import parse_url, resolve_url
    from .fence import NO_FENCE, Fence
    from .history import History
    from .metrics import Ledger, MachineState, read_ledger
    from .original import ImportCounts, import_original, original_rows, rename_original
    from .pauses import paused
    from .pools import POOL_PREFIX, pool_locks, pool_size, pool_sizes, set_pool_size
    from .runs import JUDGED, MONITORING, RunStore, result_summary
    from .schema import describe
    from .spool import DEFAULT_LIMIT, Spool
    from .standby import behind
    from .texts import shown, shown_json
    from .timeutil import backoff
    from .transfer import ExportedEntry, parse_lines

#: Where each name of the door lives.
_HOMES = {name: module for module, names in {
    'fence': ('Fence', 'NO_FENCE'),
    'backend': ('DriverError', 'one_line_when_lost'),
    'texts': ('shown', 'shown_json'),
    'config': ('parse_url', 'resolve_url'),
    'transfer': ('ExportedEntry', 'parse_lines'),
    'schema': ('describe',),
    'metrics': ('Ledger', 'MachineState', 'read_ledger'),
    'alerts': ('RETRY_DELAYS', 'AlertState', 'AlertStore'),
    'history': ('History',),
    'original': ('ImportCounts', 'import_original', 'original_rows', 'rename_original'),
    'runs': ('JUDGED', 'MONITORING', 'RunStore', 'result_summary'),
    'timeutil': ('backoff',),
    'spool': ('Spool', 'DEFAULT_LIMIT'),
    'pauses': ('paused',),
    'pools': ('POOL_PREFIX', 'pool_locks', 'pool_size', 'set_pool_size', 'pool_sizes'),
    'standby': ('behind',),
}.items() for name in names}

__all__ = ["AlertState", "AlertStore", "backoff", "behind", "clock", "connect", "Database", "DEFAULT_LIMIT",
           "describe", "DriverError", "ExportedEntry", "Fence", "History", "import_original", "ImportCounts", "JUDGED",
           "Ledger", "MachineState", "MONITORING", "NO_FENCE", "one_line_when_lost", "original_rows", "parse_lines",
           "parse_url", "paused", "pool_locks", "POOL_PREFIX", "pool_size", "pool_sizes", "read_ledger",
           "rename_original", "resolve_url", "result_summary", "RETRY_DELAYS", "RunStore", "set_pool_size", "shown",
           "shown_json", "Spool"]


def __getattr__(name: str) -> Any:
    if name == "clock":
        return importlib.import_module(".clock", __name__)
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value
