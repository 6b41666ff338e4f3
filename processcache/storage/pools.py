"""Farm-wide concurrency pools: at most N runs of a pool's jobs at once, on every machine together.

A pool of size N is N locks, ``pool:NAME#0`` to ``pool:NAME#N-1``, held as a
job's lock is: a run takes a free one (or one whose lease ran out: its
holder died) after its job's lock, its heartbeat renews it, every write of
the run is fenced by it too, and it is freed when the run ends. A run that
finds every one held waits for one (``overlap="wait"``) or is skipped,
exit 75, naming the holders. The size is the one ``processcache pool set
NAME N`` stored (``process_pools``), else the job's ``pool_size`` option,
else 1; a pool made smaller lets the runs holding its higher locks end.
``processcache locks`` lists the pools' locks with the jobs' own.
"""

from typing import TYPE_CHECKING

from ..errors import ProcessCacheError, SchemaError
from ..options import MAX_POOL_SIZE
from .schema import PAUSE_REVISION, describe

if TYPE_CHECKING:
    from .database import Database

#: What a pool's lock names begin with: no job's lock name has a colon.
POOL_PREFIX = "pool:"


def pool_locks(name: str, size: int) -> list[str]:
    """The names of the locks of the pool *name* of *size*, in the order a run tries them."""
    return [f"{POOL_PREFIX}{name}#{slot}" for slot in range(size)]


def pool_size(database: "Database", name: str, default: int | None) -> int:
    """The pool's size: stored by ``pool set``, else *default* (the job's ``pool_size``), else 1."""
    if database.has_revision(PAUSE_REVISION):
        found = database.backend.value("SELECT size FROM process_pools WHERE name = $name", {"name": name})
        if found is not None:
            return int(found)
    return default or 1


def set_pool_size(database: "Database", name: str, size: int) -> None:
    """Store the pool's size, for every job that names it (a job's ``pool_size`` is then ignored)."""
    if not database.has_revision(PAUSE_REVISION):
        raise SchemaError(f"{database.url} has schema {describe(database.schema_state or (0, 0))}; pools need"
                          f" {describe(PAUSE_REVISION)}: run `processcache db upgrade` (it keeps every row)")
    if not 1 <= size <= MAX_POOL_SIZE:
        raise ProcessCacheError(f"a pool's size is 1 to {MAX_POOL_SIZE} runs at once, not {size}")
    backend = database.backend
    with backend.transaction(immediate=True):
        if backend.execute("UPDATE process_pools SET size = $size WHERE name = $name",
                           {"name": name, "size": size}) != 1:
            backend.insert("process_pools", {"name": name, "size": size})


def pool_sizes(database: "Database") -> dict[str, int]:
    """Every pool whose size was set, by name."""
    if not database.has_revision(PAUSE_REVISION):
        return {}
    return {name: int(size) for name, size in database.backend.select("SELECT name, size FROM process_pools"
                                                                      " ORDER BY name")}
