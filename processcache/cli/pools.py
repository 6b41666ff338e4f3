"""``processcache pool`` and ``pool set``: the farm-wide concurrency pools, their sizes and who runs in them."""

import click

from ..names import normalize_name
from ..storage import POOL_PREFIX, pool_sizes, set_pool_size
from .format import database_option, echo_json, echo_table, json_option, one_line_errors, opened
from .subcommands import of_group, report


@click.group(invoke_without_command=True)
@database_option
@json_option
@click.pass_context
@one_line_errors
def pool(click_ctx, database, as_json):
    """Concurrency pools: at most N runs of a pool's jobs at once, on every machine together.

    A job joins a pool with pool="warehouse" (run and exec: --pool); its
    size is what `pool set` stored, else the job's pool_size, else 1. The
    listing shows each pool that has a size or a run in it.

    \\b
    Examples:
        processcache pool set warehouse 3
        processcache pool
    """
    if click_ctx.invoked_subcommand is not None:
        return
    with opened(database) as db:
        sizes = pool_sizes(db)
        running: dict[str, list[int | None]] = {}
        for lock in db.locks():  # the locks held now
            if lock.name.startswith(POOL_PREFIX):
                running.setdefault(lock.name[len(POOL_PREFIX):].rpartition("#")[0], []).append(lock.run_id)
    names = sorted({*sizes, *running})
    if as_json:
        echo_json([{"pool": name, "size": sizes.get(name), "running": running.get(name, [])} for name in names])
        return
    echo_table(["POOL", "SIZE", "RUNNING"], [
        [name, sizes.get(name, "the job's"), ", ".join(f"run {run}" for run in running.get(name, [])) or "-"]
        for name in names], empty="no pool has a size or a run")


@pool.command("set")
@click.argument("name")
@click.argument("size", type=click.IntRange(1, 100))
@database_option
@json_option
@click.pass_context
@one_line_errors
def set_(click_ctx, name, size, database, as_json):
    """Give the pool NAME room for SIZE runs at once, for every job in it."""
    name = normalize_name(name, "pool")
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        set_pool_size(db, name, size)
    report(click_ctx, as_json, {"pool": name, "size": size}, f"pool {name}: {size} runs at once")
