"""``processcache exec``: any command (a backup, rsync, ``pg_dump``, a Go binary) as a recorded run.

The command runs with the same lock, slot, retries and timeout as a
Python job. It is started directly, never through a shell (write
``sh -c '...'`` for one), under a reaper process (`reaper`, driven through
`supervised`) that is the parent of everything it starts, so that every
stop ends the whole tree, ``setsid`` and double forks included. Its stdout
and stderr pass through to processcache's, and their ends are stored with
the run (`output`); with ``output_tail=0`` the command writes to them
directly, as to a terminal.

How the run ends:

- exit code 0: ``succeeded``; any other: ``failed``, the code recorded
  (`runner.exit_code`: a command's own 75 or 124 is reported as 1);
- killed by signal n: ``failed``, the signal recorded (exit code 128 + n,
  as a shell reports it);
- not found: ``failed`` with exit code 127; not executable: 126;
- past its ``timeout``: SIGTERM to the whole tree, SIGKILL to what is left
  after ``kill_after``, ``timed-out``;
- SIGTERM, SIGINT or SIGHUP to processcache: passed to the tree (then
  SIGKILL after ``kill_after``), ``terminated``;
- the run's lock taken over (its lease ran out while the machine was
  frozen or cut off): SIGKILL to the tree at once (SIGTERM first, and
  SIGKILL ``lost_lease_grace`` later, if that is given), ``lost``, since
  it can no longer be the only one running; so it is when the database has
  not confirmed the lease for longer than the lease (a silent server, a
  network cut), since another run may have the lock by then;
- processcache itself killed (``kill -9``, the OOM killer): the reaper
  sends the tree SIGTERM, and SIGKILL after ``kill_after`` or a third of
  the lease, whichever is shorter, so it has ended before the lease frees
  the lock for the next run; the run is judged ``lost`` as any dead run.

Every stop returns only once nothing of the tree is left. A command that
exits while processes it started still run (``sh -c 'sleep 300 & echo
hi'``) keeps its own outcome, and those processes get SIGTERM, then SIGKILL
after ``kill_after``, as systemd stops what a service leaves behind; a
WARNING of the run names them. A command that must leave a daemon running
hands it to the service manager (``systemctl start``).
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..cache.context import CacheContext
from ..durations import format_duration
from ..errors import CommandFailedError, LeaseLostError, LeaseUnconfirmedError
from ..options import JobOptions
from ..records import LogRecord, LogType, RunRecord
from ..storage import Database
from .output import Tail
from .runner import caught_up
from .signals import Terminated
from .state import state_of
from .supervised import Supervised
from .timeouts import TimedOut

#: How often the supervisor looks at the clock and the lease while the command runs.
_POLL = 0.2
#: How long the output pumps may go on after the command exited: a daemon it started may hold its pipes.
_DRAIN = 2.0


def run_command(argv: Sequence[str], group: str, job: str, options: JobOptions | None = None,
                database: Database | str | None = None, machine: str | None = None,
                echo: Callable[[LogRecord], None] | None = None) -> RunRecord:
    """Run *argv* as one recorded run of *group*/*job* and return the run's final record.

    *options* as a Python job's (`JobOptions`; the default takes the job's
    lock with ``overlap="skip"``). `Terminated` propagates, as from `run_job`.
    """
    if not argv:
        raise CommandFailedError("no command to run", 127)
    return caught_up(group, job, options or JobOptions(), lambda ctx: _supervise(ctx, list(argv)),
                        database, machine, echo, interrupt=False)


def _supervise(ctx: CacheContext, argv: list[str]) -> None:
    """One attempt: start the command, pass its output on, stop it when it must stop, judge how it ended."""
    options, state = ctx.options, state_of(ctx)
    output = state.output
    try:
        slot = {"PROCESSCACHE_SLOT": ctx.slot.isoformat()} if ctx.slot is not None else None
        child = Supervised(argv, piped=output is not None, leftover_grace=options.kill_after, env=slot,
                           orphan_grace=min(options.kill_after, options.lease / 3))
    except CommandFailedError as failed:
        state.exit_code = failed.exit_code
        raise
    pumps: list[threading.Thread] = []
    try:  # a signal may come at any moment from here on: the tree is stopped whenever it does
        if output is not None:
            pumps = [_pump(child.process.stdout, sys.stdout, output.stdout),
                     _pump(child.process.stderr, sys.stderr, output.stderr)]
        code = _wait(ctx, child)
        _report_leftovers(ctx, child)
    except Terminated as stopped:
        state.exit_code = _shell_code(child.stop(stopped.signum, options.kill_after))
        raise
    finally:
        child.close()
        for pump in pumps:
            pump.join(_DRAIN)
    state_of(ctx).exit_code = _shell_code(code)
    if code > 0:
        raise CommandFailedError(f"exit code {code}", code)
    if code < 0:
        raise CommandFailedError(f"killed by {signal.Signals(-code).name}", 128 - code, -code)


def _wait(ctx: CacheContext, child: Supervised) -> int:
    """The command's return code (negative: the signal that killed it), once it has ended."""
    options = ctx.options
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    while True:
        code = child.poll(_POLL)
        if code is not None:
            return code
        reason = _reason_to_stop(ctx, deadline)
        if reason is not None:
            grace = options.lost_lease_grace if isinstance(reason, LeaseLostError) else options.kill_after
            code = child.stop(signal.SIGTERM if grace else signal.SIGKILL, grace)
            state_of(ctx).exit_code = _shell_code(code)
            if isinstance(reason, TimedOut):
                raise _timed_out(code, options.kill_after)
            raise reason


def _report_leftovers(ctx: CacheContext, child: Supervised) -> None:
    """Say in the run's logs which processes the command left running when it exited: they were stopped."""
    if child.leftovers:
        ctx.create_log(f"the command exited and left {child.leftovers}; they were stopped (SIGTERM, SIGKILL"
                       f" {format_duration(ctx.options.kill_after)} later), as every run ends the whole tree it"
                       " started", LogType.WARNING)


def _reason_to_stop(ctx: CacheContext, deadline: float | None) -> BaseException | None:
    """Why the command must stop now, or None.

    `TimedOut` past the deadline; `LeaseLostError` once another run took
    the lock over; `LeaseUnconfirmedError` when the database has not
    confirmed the lease for longer than the lease (a network cut or a
    silent server): the lock may be another run's by then, and a command's
    writes cannot be fenced, so it must not go on beside that run.
    """
    if deadline is not None and time.monotonic() >= deadline:
        return TimedOut()
    heartbeat, lock = state_of(ctx).heartbeat, ctx.fence.holds[0][0] if ctx.fence else None
    if heartbeat is None or lock is None:
        return None
    if heartbeat.lease_lost:
        return LeaseLostError(lock)
    if heartbeat.unconfirmed_for() > ctx.options.lease:
        return LeaseUnconfirmedError(lock, heartbeat.unconfirmed_for())
    return None


def _timed_out(returncode: int, kill_after: float) -> TimedOut:
    """The `TimedOut` of a command stopped for its timeout, with the signal that ended it and what that took."""
    killed = returncode == -signal.SIGKILL
    detail = f"it ignored SIGTERM and was killed {format_duration(kill_after)} later" if killed else None
    return TimedOut(detail, -returncode if returncode < 0 else None)


def _shell_code(returncode: int) -> int:
    """A return code as a shell reports it: 128 + n for a process killed by signal n."""
    return returncode if returncode >= 0 else 128 - returncode


def _pump(source: IO[bytes] | None, target: Any, tail: Tail) -> threading.Thread:
    """A thread passing *source* on to *target* (a text stream, through its bytes buffer) and feeding *tail*."""
    out = getattr(target, "buffer", None)

    def run() -> None:
        assert source is not None, "a piped child has both pipes"
        fd = source.fileno()
        while chunk := os.read(fd, 65536):
            tail.feed(chunk)
            try:
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:  # a stream without bytes (a test's StringIO)
                    target.write(chunk.decode("utf-8", errors="replace"))
                    target.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not stop the command: its output is still kept
        source.close()

    thread = threading.Thread(target=run, name="processcache-exec-output", daemon=True)
    thread.start()
    return thread
