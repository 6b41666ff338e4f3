"""``processcache run -q``: a run's output held back, and shown only if the run fails, as ``chronic`` does.

cron mails whatever a job prints, so a job that prints on success mails
every hour. Under ``-q`` everything written to the process's standard
output and error during the run goes to an unnamed temporary file, one per
stream: the job's logs that ``run`` echoes, its ``print()`` calls, warnings,
a logging handler made before the run, C extensions, the programs it
starts. Capturing the file descriptors, not only ``sys.stdout``, is what
catches the last three. When the run fails, the end of each file is written
to the real stream; when it succeeds or is skipped, nothing is.

Bounds: only the last `SHOWN_BYTES` of a stream are shown, from a line's
start and after a line saying how much was cut, and only they are read back
into memory. The files are on disk (``TMPDIR``) for the length of the run,
as large as what the job printed, and have no name, so even a killed run
leaves nothing behind. A stream without a file descriptor (click's
``CliRunner`` replaces both with in-memory ones) is not held back.
"""

import os
import sys
import tempfile
from types import TracebackType
from typing import IO, Self, TextIO, TypeGuard

#: The end of a failed run's stdout, and of its stderr, that is shown: enough for the longest
#: traceback processcache stores (256 Ki characters) and the logs before it.
SHOWN_BYTES = 1024 * 1024


class HeldOutput:
    """A ``with`` block whose stdout and stderr are held back if *hold*, and shown at its end unless `discard`.

    Set `discard` inside the block once the run succeeded or was skipped;
    if the block raises, what was held is shown before the exception goes on.
    """

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.discard = False
        self._held: list[tuple[TextIO, int, IO[bytes]]] = []  # (stream, its saved descriptor, the file holding it)

    def __enter__(self) -> Self:
        for stream in [stream for stream in (sys.stdout, sys.stderr) if self.hold and _has_descriptor(stream)]:
            stream.flush()
            spool = tempfile.TemporaryFile()
            self._held.append((stream, os.dup(stream.fileno()), spool))
            os.dup2(spool.fileno(), stream.fileno())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for stream, saved, spool in self._held:
            stream.flush()
            os.dup2(saved, stream.fileno())
            os.close(saved)
            if exc_type is not None or not self.discard:
                _show(spool, stream)
            spool.close()
        self._held.clear()


def _has_descriptor(stream: TextIO | None) -> TypeGuard[TextIO]:
    if stream is None:  # sys.stdout is None under pythonw and in some daemons
        return False
    try:
        stream.fileno()
    except (AttributeError, ValueError):  # no fileno(), or in memory (io.UnsupportedOperation is a ValueError)
        return False
    return True


def _show(spool: IO[bytes], stream: TextIO) -> None:
    """Write the last `SHOWN_BYTES` of *spool*, from a line's start, to *stream*, saying what was cut."""
    size = spool.seek(0, os.SEEK_END)
    start = max(0, size - SHOWN_BYTES)
    spool.seek(start)
    tail = spool.read()
    if start:
        skipped = tail.find(b"\n") + 1  # 0 when the tail holds no line end
        tail = (f"[processcache -q: the first {start + skipped} of {size} bytes written here are cut;"
                " the rest follows]\n").encode() + tail[skipped:]
    with open(stream.fileno(), "wb", closefd=False) as out:
        out.write(tail)
