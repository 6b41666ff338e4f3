"""``processcache exec``: any command (a backup, rsync, ``pg_dump``, a Go binary) as a recorded run.

The command runs with the same lock, slot, retries and timeout as a
Python job. It is started directly, never through a shell (write
``sh -c '...'`` for one), in a process group of its own, so that a
timeout or a signal stops what it started too (``sh -c 'sleep 100'``
leaves no sleep behind). Its stdout and stderr pass through to
processcache's, and their ends are stored with the run (`output`); with
``output_tail=0`` the command writes to them directly, as to a terminal.

How the run ends:

- exit code 0: ``succeeded``; any other: ``failed``, the code recorded;
- killed by signal n: ``failed``, the signal recorded (exit code 128 + n,
  as a shell reports it);
- not found: ``failed`` with exit code 127; not executable: 126;
- past its ``timeout``: SIGTERM to its process group, SIGKILL after
  ``kill_after``, ``timed-out``;
- SIGTERM, SIGINT or SIGHUP to processcache: passed to the command (then
  SIGKILL after ``kill_after``), ``terminated``;
- the run's lock taken over (its lease ran out while the machine was
  frozen or cut off): the command is stopped at once, ``lost``, since it
  can no longer be the only one running; so it is when the database has
  not confirmed the lease for longer than the lease (a silent server, a
  network cut), since another run may have the lock by then.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from .context import CacheContext
from .durations import format_duration
from .errors import CommandFailedError, LeaseLostError, LeaseUnconfirmedError
from .options import JobOptions
from .output import Tail
from .records import LogRecord, RunRecord
from .runner import run_recorded
from .signals import Terminated
from .storage.database import Database
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
    return run_recorded(group, job, options or JobOptions(), lambda ctx: _supervise(ctx, list(argv)),
                        database, machine, echo, interrupt=False)


def _supervise(ctx: CacheContext, argv: list[str]) -> None:
    """One attempt: start the command, pass its output on, stop it when it must stop, judge how it ended."""
    try:
        child = _start(argv, piped=ctx.output is not None)
    except CommandFailedError as failed:
        ctx.exit_code = failed.exit_code
        raise
    pumps = [] if ctx.output is None else [
        _pump(child.stdout, sys.stdout, ctx.output.stdout), _pump(child.stderr, sys.stderr, ctx.output.stderr)]
    try:
        code = _wait(ctx, child)
    finally:
        for pump in pumps:
            pump.join(_DRAIN)
    ctx.exit_code = _shell_code(code)
    if code > 0:
        raise CommandFailedError(f"exit code {code}", code)
    if code < 0:
        raise CommandFailedError(f"killed by {signal.Signals(-code).name}", 128 - code, -code)


def _start(argv: list[str], piped: bool) -> subprocess.Popen:
    """The command, started in a process group of its own; not found (127) and not executable (126) as a shell says."""
    pipe = subprocess.PIPE if piped else None
    try:
        return subprocess.Popen(argv, stdout=pipe, stderr=pipe, process_group=0)
    except FileNotFoundError:
        raise CommandFailedError(f"command not found: {argv[0]}", 127) from None
    except PermissionError:
        raise CommandFailedError(f"permission denied: {argv[0]} is not executable", 126) from None
    except OSError as exc:  # an exec format error: a script without its #! line
        raise CommandFailedError(f"cannot execute {argv[0]}: {exc.strerror}", 126) from None


def _wait(ctx: CacheContext, child: subprocess.Popen) -> int:
    """The command's return code (negative: the signal that killed it), once it has ended."""
    options = ctx.options
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    try:
        while True:
            try:
                return child.wait(_POLL)
            except subprocess.TimeoutExpired:
                pass
            reason = _reason_to_stop(ctx, deadline)
            if reason is not None:
                ctx.exit_code = _stop(child, signal.SIGTERM, options.kill_after)
                if isinstance(reason, TimedOut):
                    raise _timed_out(child.returncode, options.kill_after)
                raise reason
    except Terminated as stopped:
        ctx.exit_code = _stop(child, stopped.signum, options.kill_after)
        raise


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
    heartbeat, lock = ctx.heartbeat, ctx.fence.holds[0][0] if ctx.fence else None
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


def _stop(child: subprocess.Popen, first: int, kill_after: float) -> int:
    """Send *first* to the command's process group, SIGKILL *kill_after* seconds later; its exit code as a shell's."""
    for signum, wait in ((first, kill_after), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass  # the group has no process left
        try:
            return _shell_code(child.wait(wait))
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError("unreachable: a wait without a timeout returns")


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
