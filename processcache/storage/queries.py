"""The SQL the stores share: each job's machines and newest runs, runs read by id or after a run, plain plans.

Fragments and small builders over ``process_job_runs`` and its indexes,
written once for `history`, `metrics` and `alerts`: each says in its
comment which index it walks and what it cost before.
"""

from collections.abc import Iterable, Sequence

from .backend import Backend, id_list
from .runs import ID_BATCH

#: Each job's machines, ``m (job_id, machine)``: a skip scan of the runs' (job, machine, id, status) index,
#: one probe per machine and one more per job, where ``GROUP BY job_id, machine`` read every run (seconds at
#: 2,000,000 runs). The row whose machine is NULL ends each job's list; a job that never ran has only that one.
#: One level of recursion per machine of a job (MariaDB stops at 1,000 levels).
_SKIP_SCAN = (
    "WITH RECURSIVE m (job_id, machine) AS ("
    "SELECT j.id, (SELECT r.machine FROM process_job_runs r WHERE r.job_id = j.id ORDER BY r.machine LIMIT 1)"
    " FROM process_jobs j UNION ALL SELECT m.job_id, (SELECT r.machine FROM process_job_runs r"
    " WHERE r.job_id = m.job_id AND r.machine > m.machine ORDER BY r.machine LIMIT 1)"
    " FROM m WHERE m.machine IS NOT NULL)")
#: The same on MySQL and MariaDB, which skip through the index by themselves for a GROUP BY ("Using index for
#: group-by": 40 ms at 200,000 runs) but not for the skip scan's ``machine > m.machine``, which they read as
#: every run of the job (0.5 s).
_GROUPED = "WITH m (job_id, machine) AS (SELECT job_id, machine FROM process_job_runs GROUP BY job_id, machine)"


def machines(backend: Backend) -> str:
    """The CTE ``m (job_id, machine)`` of each job's machines (rows whose machine is NULL are none)."""
    return _GROUPED if backend.dialect.groups_by_index else _SKIP_SCAN


def newest_run(pair: str, condition: str = "") -> str:
    """The id of the newest run of *pair*'s job on its machine (``pair.job_id``, ``pair.machine``) that meets
    *condition* (``AND ...`` over ``r``), or NULL.

    A walk back from the newest end of the (job, machine, id, status)
    index, which holds the status: runs skipped or failed on the way cost no
    read of the table, so a machine whose every run a ``once_per`` slot
    skipped costs a pass over its index entries, not over its runs.
    """
    return (f"(SELECT r.id FROM process_job_runs r WHERE r.job_id = {pair}.job_id AND r.machine = {pair}.machine"
            f"{condition} ORDER BY r.id DESC LIMIT 1)")


NOT_SKIPPED = " AND r.status <> 'skipped'"
SUCCEEDED = " AND r.status = 'succeeded'"
#: A run that ended (how long it took is known), skipped copies aside.
ENDED = " AND r.status NOT IN ('skipped', 'running')"


def last_runs(backend: Backend, *conditions: str) -> str:
    """Per job and machine: the id of the run to show (the newest not skipped; the newest of all when every one
    was), then for each of *conditions* (``AND ...`` over ``r``; "" for any) the id of the newest that meets it.

    Only ids: the runs themselves are read by id after (`runs_after`, `RunStore.select_runs`). Joined here,
    PostgreSQL, which guesses a skip scan a hundred times its size, hashed every run to join a few thousand.
    """
    extra = "".join(f", {newest_run('m', condition)}" for condition in conditions)
    return (f"{machines(backend)} SELECT m.job_id, m.machine,"
            f" COALESCE({newest_run('m', NOT_SKIPPED)}, {newest_run('m')})"
            f"{extra} FROM m WHERE m.machine IS NOT NULL")


#: Runs alive at ``$now`` per job and machine, from the (status, id) index: a running run whose heartbeat
#: stopped is not (it is lost).
RUNNING_NOW = ("SELECT job_id, machine, COUNT(*) FROM process_job_runs WHERE status = 'running'"
               " AND (expires_at IS NULL OR expires_at >= $now) GROUP BY job_id, machine, LENGTH(machine)")

#: Job and machine pairs one statement reads (`newest_marks`, `runs_after`): SQLite allows 500 SELECTs in one.
PAIRS_PER_READ = 100



def select_by_ids(backend: Backend, sql: str, ids: Iterable[int]) -> list[tuple]:
    """The rows of *sql* for *ids* (its ``{ids}`` an id list), `ID_BATCH` ids a statement: MariaDB turns a
    list of 1,000 or more into a derived table, which it then joins by reading every row."""
    ordered = sorted(set(ids))
    return [row for start in range(0, len(ordered), ID_BATCH)
            for row in backend.select(sql.format(ids=id_list(ordered[start:start + ID_BATCH])))]


def not_in(column: str, ids: Iterable[int]) -> str:
    """``column NOT IN (...)`` for *ids*, in lists of `ID_BATCH` (see `select_by_ids`); true for none."""
    ordered = sorted(set(ids))
    return " AND ".join(f"{column} NOT IN ({id_list(ordered[start:start + ID_BATCH])})"
                        for start in range(0, len(ordered), ID_BATCH)) or "1 = 1"


def runs_after(columns: str, pairs: Sequence[tuple[int, str, int | None]], condition: str = "") -> tuple[str, dict]:
    """A statement selecting *columns* (over ``r``) of the runs of each (job id, machine, run id) newer than that
    run (all of its runs for None) that meet *condition* (``AND ...``), with its parameters.

    One SELECT per pair in a UNION ALL, each a range of the (job, machine,
    id, status) index: as one OR of ranges, SQLite read every failed run by
    the (status, id) index instead (0.5 s at 2,000,000 runs). Callers pass
    `PAIRS_PER_READ` pairs at most (SQLite allows 500 SELECTs in one).
    """
    params = {f"m{n}": machine for n, (_, machine, _) in enumerate(pairs)}
    return " UNION ALL ".join(
        f"SELECT {columns} FROM process_job_runs r WHERE r.job_id = {int(job_id)} AND r.machine = $m{n}"
        f" AND r.id > {int(after or 0)}{condition}" for n, (job_id, _, after) in enumerate(pairs)), params


#: Each job's newest start, skipped runs too (cron fired), from its (job, started_at) index.
LAST_START = "(SELECT r.started_at FROM process_job_runs r WHERE r.job_id = j.id ORDER BY r.started_at DESC LIMIT 1)"
#: The first run of a job that started at or after a moment (a schedule's due time, less the early allowance).
FIRST_RUN_FROM = ("r.job_id = $job AND r.started_at = (SELECT MIN(x.started_at) FROM process_job_runs x"
                   " WHERE x.job_id = $job AND x.started_at >= $since)")


def plain_plans(backend: Backend) -> None:
    """Inside a transaction: PostgreSQL plans its statements without compiling them first.

    A skip scan's estimate counts each probe a hundred times, which puts
    its cost past ``jit_above_cost``: PostgreSQL then compiled the query
    with LLVM for 0.8 s before running it for 0.1 s. ``SET LOCAL`` lasts
    the transaction, so a pooled connection (pgbouncer) keeps nothing.
    """
    if backend.dialect.plain_plans:
        backend.execute(backend.dialect.plain_plans)
