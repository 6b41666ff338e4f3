"""``processcache locks`` and ``locks break``: who holds which job's overlap lock, and freeing one."""

import click

from ..storage import shown
from .format import (
    complete_jobs,
    database_option,
    echo_json,
    echo_table,
    json_option,
    one_line_errors,
    opened,
    yes_option,
)
from .subcommands import of_group, report


@click.group(invoke_without_command=True)
@database_option
@json_option
@click.pass_context
@one_line_errors
def locks(click_ctx, database, as_json):
    """Overlap locks: who holds which job's lock, and for how long.

    \b
    Examples:
        processcache locks
        processcache locks break example/hello-world --yes
    """
    if click_ctx.invoked_subcommand is not None:
        return
    with opened(database) as db:
        found = db.locks()
    if as_json:
        echo_json(found)
        return
    echo_table(["LOCK", "RUN", "MACHINE", "PID", "HELD FOR", "EXPIRES IN"], [
        [lock.name, lock.run_id, lock.machine, lock.pid, lock.held_for, lock.expires_in] for lock in found],
        empty="no lock is held")


@locks.command("break")
@click.argument("name", metavar="GROUP/JOB[@MACHINE]", shell_complete=complete_jobs)
@yes_option
@database_option
@json_option
@click.pass_context
@one_line_errors
def break_lock(click_ctx, name, yes, database, as_json):
    """Free a job's lock now, whoever holds it.

    Only for a holder you know is gone: a live holder keeps running, and
    another run may then start beside it. A dead holder's lock frees itself
    when its lease runs out. Name the lock as `processcache locks` lists it:
    GROUP/JOB, or GROUP/JOB@MACHINE for a job of scope=machine. --database
    and --json may be given before or after `break`.

    \b
    Example:
        processcache locks break example/hello-world --yes
    """
    with opened(of_group(click_ctx, "database", database), read_only=False) as db:
        held = [lock for lock in db.runs.locks(name) if lock.held]
        if not held:
            raise click.ClickException(f"no one holds the lock {name}: `processcache locks` lists held locks")
        lock = held[0]
        if not yes:
            click.confirm(f"Break {name}, held by run {lock.run_id} on {shown(lock.machine or '-')} (pid {lock.pid})?",
                          abort=True)
        db.runs.break_lock(name)
    report(click_ctx, as_json, {"lock": name, "run_id": lock.run_id, "machine": lock.machine, "pid": lock.pid},
           f"broke the lock {name}")

