"""A command started under the reaper (`processcache.run.reaper`), and the words processcache says to it.

The reaper is the command's parent and the subreaper of everything the
command starts; this is its other end: start it, learn the command's pid,
hear how the command exited and what it left running, and ask it to stop
the whole tree (a signal, then SIGKILL after a grace). The reaper answers
``exited`` only once the whole tree is gone, so a stop that returns has
left nothing running.
"""

import contextlib
import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import CommandFailedError

REAPER = str(Path(__file__).with_name("reaper.py"))
#: How long the reaper may take past a stop's grace to report the tree gone before it is killed itself.
_LATE = 5.0


class Supervised:
    """A command and its reaper: `poll` until it exits, or `stop` it; `close` when done.

    *leftover_grace*: what the processes the command leaves running when
    it exits get between SIGTERM and SIGKILL; *orphan_grace*: what the
    tree gets when processcache itself goes away.
    """

    def __init__(self, argv: list[str], piped: bool, leftover_grace: float, orphan_grace: float,
                 env: dict[str, str] | None = None) -> None:
        ours, theirs = socket.socketpair()
        pipe = subprocess.PIPE if piped else None
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", REAPER, str(theirs.fileno()), repr(leftover_grace), repr(orphan_grace),
                 "--", *argv], stdout=pipe, stderr=pipe, pass_fds=(theirs.fileno(),), process_group=0,
                env=None if env is None else {**os.environ, **env})
        self._channel = ours
        self._buffered = b""
        self._leftover_grace = leftover_grace
        #: What the command left running when it exited ("2 processes running: sleep (pid 12), ..."), once told.
        self.leftovers: str | None = None
        self.returncode: int | None = None
        self._done = False
        word, _, rest = (self._next_line(_LATE * 6) or f"error {errno.EIO} the reaper did not start").partition(" ")
        if word == "error":
            self.close()
            raise _not_started(argv[0], *rest.partition(" ")[::2])
        self.pid = int(rest)

    def poll(self, timeout: float) -> int | None:
        """The command's return code (negative: killed by that signal) once it exited; None after *timeout*."""
        line = self._next_line(timeout)
        if line is not None:
            self._hear(line)
            if self.returncode is not None:  # "left" or "done" follows at once: what the command left running
                self._hear(self._next_line(_LATE) or "done")
        return self.returncode

    def stop(self, signum: int, grace: float) -> int:
        """Send *signum* to the whole tree, SIGKILL after *grace*; the command's return code once all of it ended."""
        with contextlib.suppress(OSError):
            self._channel.sendall(f"stop {int(signum)} {grace!r}\n".encode())
        self._hear_until(lambda: self.returncode is not None, grace + _LATE)
        assert self.returncode is not None, "the tree is killed when the reaper does not answer"
        return self.returncode

    def close(self) -> None:
        """Wait for the reaper to stop what the command left (it says ``done``), then let it go."""
        if self.returncode is not None:
            self._hear_until(lambda: self._done, self._leftover_grace + _LATE)
        self._channel.close()
        try:
            self.process.wait(_LATE)
        except subprocess.TimeoutExpired:
            self._kill_everything()
            self.process.wait()

    def _hear_until(self, enough: Callable[[], bool], bound: float) -> None:
        deadline = time.monotonic() + bound
        while not enough():
            line = self._next_line(deadline - time.monotonic())
            if line is None:  # the reaper did not answer in time
                self._kill_everything()
                return
            self._hear(line)

    def _next_line(self, timeout: float) -> str | None:
        """The reaper's next line; None when none came within *timeout*."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffered:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._channel], [], [], left)[0]:
                return None
            data = self._channel.recv(4096)
            if not data:  # the reaper ended without a word: killed itself
                self._kill_everything()
                self._done = True
                return "done"
            self._buffered += data
        line, self._buffered = self._buffered.split(b"\n", 1)
        return line.decode("utf-8", errors="replace")

    def _hear(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "exited":
            self.returncode = int(rest)
        elif word == "left":
            count, _, names = rest.partition(" ")
            self.leftovers = f"{count} process{'es' if count != '1' else ''} running: {names}"
        elif word == "done":
            self._done = True

    def _kill_everything(self) -> None:
        """The reaper did not answer: SIGKILL its process group and the command's, the best left to do."""
        for group in (self.process.pid, getattr(self, "pid", None)):
            if group is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)
        if self.returncode is None:
            self.returncode = -signal.SIGKILL


def _not_started(command: str, number: str, reason: str) -> CommandFailedError:
    """Not found (127) and not executable (126), as a shell says them."""
    if int(number) == errno.ENOENT:
        return CommandFailedError(f"command not found: {command}", 127)
    if int(number) == errno.EACCES:
        return CommandFailedError(f"permission denied: {command} is not executable", 126)
    return CommandFailedError(f"cannot execute {command}: {reason}", 126)  # a script without its #! line
