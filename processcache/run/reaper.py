"""The small process between ``processcache exec`` and its command, which ends the command's whole tree.

A process group is not enough to stop what a command started: a child that
calls ``setsid`` leaves it, a grandchild that ignores SIGTERM outlives a
SIGTERM to the group, and when processcache itself is killed (the OOM
killer, ``kill -9``) nothing is left to stop anything. So ``exec`` starts
this file (``python -I -S reaper.py``: the standard library only, about
20 ms) as the command's parent, and it:

- marks itself the *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``):
  every process the command starts, however it detaches (``setsid``, a
  double fork), becomes its child when its own parent ends, so the tree
  under this process is everything the command started;
- on ``stop SIGNUM GRACE`` from processcache sends SIGNUM to every process
  of that tree, then SIGKILL to whatever is left after GRACE seconds, and
  again until nothing is left;
- when the command's main process exits, stops what it left running in the
  same way (SIGTERM, SIGKILL after the grace), as systemd stops a service's
  leftover processes, and says which they were: a background child must not
  run on silently beside the next run;
- when processcache goes away (its end of the socket closes: killed, even by
  SIGKILL), stops the tree in the same way, with the grace it was given.

It talks to processcache over a socket (file descriptor ``FD``), one line a
message. From processcache: ``stop SIGNUM GRACE``. To processcache:
``started PID``, ``error ERRNO MESSAGE`` (the command could not be started), ``exited RETURNCODE`` (negative: killed
by that signal, as `subprocess` says), ``left COUNT NAMES``, ``done``.

Without ``/proc`` or ``prctl`` (not Linux) the tree is the process group:
a command that leaves its group there is not stopped.

Usage: ``reaper.py FD LEFTOVER_GRACE ORPHAN_GRACE -- COMMAND [ARG...]``.
"""

import contextlib
import os
import select
import signal
import socket
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
#: How often the tree is looked at again while stopping it.
_TICK = 0.05
#: Signals this process passes on to the tree when sent to it directly (``pkill``, a terminal).
_PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
#: Reset in the command: Python ignores SIGPIPE, and an ignored signal stays ignored across exec.
_DEFAULT_IN_COMMAND = (signal.SIGPIPE, signal.SIGXFSZ, *_PASSED_ON)
_HAS_PROC = os.path.isdir("/proc/self")


def main(argv: list[str]) -> int:
    fd, leftover_grace, orphan_grace = int(argv[1]), float(argv[2]), float(argv[3])
    command = argv[5:]
    os.set_inheritable(fd, False)  # the command must not hold processcache's socket: its close tells of its end
    _become_subreaper()
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, _PASSED_ON)  # held until the handlers below can pass them on
    try:
        pid = os.posix_spawnp(command[0], command, os.environ, setpgroup=0, setsigdef=_DEFAULT_IN_COMMAND,
                              setsigmask=())
    except OSError as exc:
        _say(socket.socket(fileno=fd), f"error {exc.errno} {exc.strerror}")
        return 0
    reaper = _Reaper(socket.socket(fileno=fd), pid, wakeup_r, orphan_grace)
    for signum in _PASSED_ON:
        signal.signal(signum, lambda signum, _frame: _signal_tree(signum, pid))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PASSED_ON)
    reaper.say(f"started {pid}")
    returncode = reaper.wait()
    reaper.say(f"exited {returncode}")
    left = _tree(pid)
    if left:
        reaper.say(f"left {len(left)} {_names(left)}")
        reaper.stop(signal.SIGTERM, leftover_grace)
        reaper.end_tree()
    reaper.say("done")
    return 0


class _Reaper:
    """The command's main process, processcache's socket, and the stop under way, if any."""

    def __init__(self, channel: socket.socket, pid: int, wakeup: int, orphan_grace: float) -> None:
        self.channel = channel
        self.pid = pid
        self.wakeup = wakeup
        self.orphan_grace = orphan_grace
        self.returncode: int | None = None
        self.deadline: float | None = None  # when SIGKILL follows, once a stop began
        self._orphaned = False
        self._buffered = b""

    def wait(self) -> int:
        """The main process's return code, once it ended on its own or was stopped, its tree with it."""
        while self.returncode is None:
            self._listen(1.0 if self.deadline is None else _TICK)
            self._reap()
            if self.deadline is not None and self.returncode is None:
                self._press_on()
        if self.deadline is not None:  # a stop ends the whole tree, not the main process alone
            self.end_tree()
        return self.returncode

    def stop(self, signum: int, grace: float) -> None:
        """Send *signum* to the tree, and SIGKILL after *grace*: at once, or sooner than a stop under way."""
        self.deadline = min(self.deadline or float("inf"), time.monotonic() + grace)
        _signal_tree(signum, self.pid)

    def say(self, line: str) -> None:
        _say(self.channel, line)

    def end_tree(self) -> None:
        """Wait until the tree is empty, pressing on with SIGKILL past the deadline."""
        while _tree(self.pid):
            self._listen(_TICK)
            self._reap()
            self._press_on()

    def _press_on(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            _signal_tree(signal.SIGKILL, self.pid)

    def _listen(self, timeout: float) -> None:
        """Wait up to *timeout* for a child's end or processcache's word, and act on the word."""
        watched = [self.wakeup] if self._orphaned else [self.channel.fileno(), self.wakeup]
        readable, _, _ = select.select(watched, [], [], timeout)
        if self.wakeup in readable:
            os.read(self.wakeup, 4096)
        if self._orphaned or self.channel.fileno() not in readable:
            return
        data = _receive(self.channel)
        if not data:  # processcache is gone: nobody will record what the tree does now
            self._orphaned = True
            self.stop(signal.SIGTERM, self.orphan_grace)
            return
        self._buffered += data
        while b"\n" in self._buffered:
            line, self._buffered = self._buffered.split(b"\n", 1)
            _word, signum, grace = line.decode().split()
            self.stop(int(signum), float(grace))

    def _reap(self) -> None:
        """Collect every child that ended (orphans re-parented here included), the main process's code if it did."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)


def _signal_tree(signum: int, main: int) -> None:
    if not _HAS_PROC:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(main, signum)
        return
    for pid in _tree(main):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _tree(main: int) -> dict[int, str]:
    """Every live process below this one, by pid, with its name (zombies are dead: left out).

    Without ``/proc``, the command's process group stands for it.
    """
    if not _HAS_PROC:
        try:
            os.killpg(main, 0)
        except ProcessLookupError:
            return {}
        return {main: "the command's process group"}
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for pid in [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                text = stat.read().decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        name_end = text.rfind(")")
        state, ppid = text[name_end + 2:].split(" ", 2)[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(pid)
            names[pid] = text[text.find("(") + 1:name_end]
    found: dict[int, str] = {}
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = names[child]
            todo.append(child)
    return found


def _names(tree: dict[int, str]) -> str:
    shown = [f"{name} (pid {pid})" for pid, name in sorted(tree.items())[:5]]
    more = len(tree) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _become_subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the process group is the tree


def _receive(channel: socket.socket) -> bytes:
    try:
        return channel.recv(4096)
    except OSError:
        return b""


def _say(channel: socket.socket, line: str) -> None:
    try:
        channel.sendall(line.encode(errors="replace") + b"\n")
    except OSError:
        pass  # processcache is gone; the tree is stopped all the same


if __name__ == "__main__":
    sys.exit(main(sys.argv))
