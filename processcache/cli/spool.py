"""``processcache spool`` and ``spool flush``: the runs this machine kept while their database was down."""

import click

from ..storage import Spool, connect, one_line_when_lost, shown
from .format import database_option, echo_json, echo_table, json_option, one_line_errors
from .subcommands import report


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
@one_line_errors
def spool(click_ctx, as_json):
    """The runs kept in this machine's spool, waiting for their database.

    A job with if_database_down="run" (or `run`/`exec --if-database-down
    run`) runs when its database cannot be reached, and what it did is
    kept here, in the user's data folder (PROCESSCACHE_SPOOL names another
    file). The next processcache command that reaches that database stores
    them there, each once, marked recorded late; `spool flush` does it now.

    \b
    Examples:
        processcache spool
        processcache spool flush --database postgresql://cron@db/cron
    """
    if click_ctx.invoked_subcommand is not None:
        return

    waiting = Spool().waiting()
    if as_json:
        echo_json([run._asdict() for run in waiting])
        return
    echo_table(["JOB", "MACHINE", "STARTED", "STATUS", "LOGS", "WRITES", "DATABASE"], [
        [f"{run.group}/{run.job}", run.machine, run.started_at, run.status, run.logs, run.writes, run.database]
        for run in waiting], empty="no run waits in the spool")


@spool.command("flush")
@database_option
@json_option
@click.pass_context
@one_line_errors
def flush(click_ctx, database, as_json):
    """Store the runs the spool keeps for the database in it now, oldest first, each once.

    Runs kept for another database wait for it. A run still going is left
    for a later flush; one whose process died before it ended is stored
    lost. Safe to run at any time, from several processes at once, and
    again after a flush that was stopped.
    """
    spool_file = Spool()
    with connect(database) as db, one_line_when_lost(db):  # not `opened`: its quiet flush would hide the count
        done = spool_file.flush(db)
        left = len(spool_file.waiting(db.url))
    stored = done.stored
    text = (f"stored {len(stored)} runs in {db.url}" + (f" (runs {', '.join(map(str, stored))})" if stored else "")
            + (f"; {left} wait (still running)" if left else ""))
    report(click_ctx, as_json, {"database": db.url, "stored": stored, "found": done.found, "waiting": left},
           shown(text))
