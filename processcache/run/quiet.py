"""``processcache run -q``: a run's output held back, and shown only if the run fails, as ``chronic`` does.

cron mails whatever a job prints, so a job that prints on success mails
every hour. Under ``-q`` everything written to the process's standard
output and error during the run is held back, each stream apart: the
job's logs that ``run`` echoes, its ``print()`` calls, warnings, a logging
handler made before the run, C extensions, the programs it starts.
Capturing the file descriptors, not only ``sys.stdout``, is what
catches the last three. When the run fails, what was held of each stream is
written to the real one; when it succeeds or is skipped, nothing is.

Bounds: what is held is kept in memory, never in a file: the first
`HEAD_BYTES` (64 KiB) and the last `TAIL_BYTES` (1 MiB) of each stream,
and a count of the bytes between them. A run that prints without end
(``yes``) costs no disk and at most that much memory; a failed run shows
its start and its end, each from a line's start, with a line between them
saying how many bytes were left out. A thread per stream reads the pipe
the descriptor points to while the run goes on, so a writer never blocks
on it. A stream without a file descriptor (click's ``CliRunner`` replaces
both with in-memory ones) is not held back.
"""

import os
import sys
import threading
from types import TracebackType
from typing import Self, TextIO, TypeGuard

#: The start of a failed run's stdout, and of its stderr, that is shown: where a command says what it does.
HEAD_BYTES = 64 * 1024
#: The end of each that is shown: enough for the longest traceback processcache stores (256 Ki
#: characters) and the logs before it.
TAIL_BYTES = 1024 * 1024
#: How long, once the run ended, what is held may still be read: a daemon the job started may hold the pipe.
_DRAIN = 2.0


class HeldOutput:
    """A ``with`` block whose stdout and stderr are held back if *hold*, and shown at its end unless `discard`.

    Set `discard` inside the block once the run succeeded or was skipped;
    if the block raises, what was held is shown before the exception goes on.
    """

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.discard = False
        self._held: list[tuple[TextIO, int, _Held]] = []  # (stream, its saved descriptor, what holds it)

    def __enter__(self) -> Self:
        for stream in [stream for stream in (sys.stdout, sys.stderr) if self.hold and _has_descriptor(stream)]:
            stream.flush()
            read_end, write_end = os.pipe()
            self._held.append((stream, os.dup(stream.fileno()), _Held(read_end)))
            os.dup2(write_end, stream.fileno())
            os.close(write_end)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for stream, saved, held in self._held:
            stream.flush()
            os.dup2(saved, stream.fileno())  # closes this process's write end: the reader sees the end
            os.close(saved)
            shown = held.end()
            if exc_type is not None or not self.discard:
                with open(stream.fileno(), "wb", closefd=False) as out:
                    out.write(shown)
        self._held.clear()


class _Held:
    """A thread reading one pipe to its end, keeping its first `HEAD_BYTES` and last `TAIL_BYTES`."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="processcache-quiet", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := os.read(self._fd, 65536):
            self._keep(chunk)
        os.close(self._fd)

    def _keep(self, chunk: bytes) -> None:
        with self._lock:
            self._total += len(chunk)
            room = HEAD_BYTES - len(self._head)
            self._head += chunk[:room]
            self._tail += chunk[room:] if room > 0 else chunk
            if len(self._tail) > 2 * TAIL_BYTES:  # trimmed now and then, not at every read
                del self._tail[:-TAIL_BYTES]

    def end(self) -> bytes:
        """What to show: the start, a line saying how much was left out, the end, each from a line's start."""
        self._thread.join(_DRAIN)
        with self._lock:
            head, tail, total = bytes(self._head), bytes(self._tail[-TAIL_BYTES:]), self._total
        left_out = total - len(head) - len(tail)
        if not left_out:
            return head + tail
        ends = head.rfind(b"\n") + 1 or len(head)  # the head up to its last whole line
        starts = tail.find(b"\n") + 1  # the tail from its first whole line
        left_out += len(head) - ends + starts
        return (head[:ends] + f"[processcache -q: {left_out} of {total} bytes written here are left out;"
                              " the end follows]\n".encode() + tail[starts:])


def _has_descriptor(stream: TextIO | None) -> TypeGuard[TextIO]:
    if stream is None:  # sys.stdout is None under pythonw and in some daemons
        return False
    try:
        stream.fileno()
    except (AttributeError, ValueError):  # no fileno(), or in memory (io.UnsupportedOperation is a ValueError)
        return False
    return True
