"""What a run printed: the end of its stdout and of its stderr, stored with it as logs.

A job's ``print()``, a traceback a library writes to stderr, a command's
output: the error is usually at the end, so the last ``output_tail`` bytes
of each stream are kept (64 KiB by default) and stored when the run ends,
as logs of levels ``STDOUT`` and ``STDERR`` (``processcache logs --run ID``
shows them). Everything is still written out as before, so a crontab's
mail and a terminal see what they always saw.

A Python job's output is caught at ``sys.stdout`` and ``sys.stderr``:
what Python code writes, not what a C extension or a program it starts
writes to the file descriptors (run programs with ``processcache exec``,
whose child's pipes are read here). Only what the job writes is kept:
processcache's own echo of the job's logs is not.
"""

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from ..records import OUTPUT_LEVELS as LEVELS  # the levels the tails are stored under, one log each


class Tail:
    """The last *limit* bytes written to one stream, and how many were written in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        #: A line kept before the next bytes fed, if any come (`Captured.mark`).
        self.heading = b""
        self._kept = bytearray()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self._lock:
            data, self.heading = self.heading + data, b""
            self.total += len(data)
            self._kept += data
            if len(self._kept) > 2 * self.limit:  # trimmed now and then, not at every write
                del self._kept[:-self.limit]

    def text(self) -> str:
        """The kept end as text ('' when nothing was written), saying how much came before it."""
        with self._lock:
            kept = bytes(self._kept[-self.limit:]) if self.limit else b""
        cut = self.total - len(kept)
        if cut and b"\n" in kept:
            start = kept.index(b"\n") + 1  # from a line's start
            cut, kept = cut + start, kept[start:]
        text = kept.decode("utf-8", errors="replace")
        return f"[the first {cut} of {self.total} bytes are not kept]\n{text}" if cut else text


class Captured:
    """A run's two tails, fed by the job's ``sys.stdout``/``sys.stderr`` or by a command's pipes."""

    def __init__(self, limit: int) -> None:
        self.stdout = Tail(limit)
        self.stderr = Tail(limit)
        self._muted = threading.local()

    def tails(self) -> list[tuple[str, str]]:
        """(level, text) of each stream that printed something, without the last line's end."""
        streams = zip(LEVELS, (self.stdout, self.stderr), strict=True)
        return [(level, tail.text().removesuffix("\n")) for level, tail in streams if tail.total]

    def mark(self, line: str) -> None:
        """Put *line* in both tails (not on the terminal) before what each gets next: where a retry begins."""
        for tail in (self.stdout, self.stderr):
            tail.heading = line.encode()

    @contextlib.contextmanager
    def python_streams(self) -> Iterator[None]:
        """Within the block, what is written to ``sys.stdout`` and ``sys.stderr`` is kept too."""
        saved = sys.stdout, sys.stderr
        if saved[0] is not None:  # None under pythonw and in some daemons
            sys.stdout = _Tee(saved[0], self.stdout, self._muted)
        if saved[1] is not None:
            sys.stderr = _Tee(saved[1], self.stderr, self._muted)
        try:
            yield
        finally:  # a job that replaced them itself (contextlib.redirect_stdout) has put its own back
            if isinstance(sys.stdout, _Tee):
                sys.stdout = saved[0]
            if isinstance(sys.stderr, _Tee):
                sys.stderr = saved[1]

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Within the block, this thread's writes are not kept (processcache echoing the job's logs)."""
        self._muted.on = True
        try:
            yield
        finally:
            self._muted.on = False


class _Tee:
    """A text stream that writes through to *stream* and feeds what it writes to *tail*."""

    def __init__(self, stream: TextIO, tail: Tail, muted: threading.local) -> None:
        self._stream = stream
        self._tail = tail
        self._muted = muted

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if not getattr(self._muted, "on", False):
            self._tail.feed(text.encode("utf-8", errors="replace"))
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer...: the stream's own
        return getattr(self._stream, name)
