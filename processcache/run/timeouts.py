"""Hard timeouts for Python jobs: `TimedOut` raised in the job's thread when its time is up.

In the main thread (``processcache run``) a timer thread sends SIGALRM to
it, so that even a ``time.sleep`` or a blocking read is interrupted and
the job's ``finally`` blocks run. In another thread (a scheduler calling
``spec.run``) no signal can reach it: `TimedOut` is set to be raised
there at its next Python instruction, so a call blocked in C code
(a socket read without a timeout) ends before it is seen. A job that
catches `TimedOut` (or BaseException) and carries on is not stopped
again. Commands (`processcache exec`) are stopped by `command` instead:
SIGTERM, then SIGKILL.
"""

import contextlib
import ctypes
import signal
import threading
from collections.abc import Iterator


class TimedOut(BaseException):
    """The job ran past its ``timeout``.

    A BaseException, as `signals.Terminated`: it must pass through a job's
    ``except Exception:`` so that the job stops and the run ends ``timed-out``.
    """

    def __init__(self, detail: str | None = None, signal: int | None = None) -> None:
        super().__init__("timed out" + (f": {detail}" if detail else ""))
        #: What stopping it took, when more than asking (a command that ignored SIGTERM).
        self.detail = detail
        #: The signal that ended a command stopped for its timeout.
        self.signal = signal


@contextlib.contextmanager
def interrupt_after(seconds: float | None) -> Iterator[None]:
    """Raise `TimedOut` in this thread if the block runs longer than *seconds* (None: no limit)."""
    if seconds is None:
        yield
        return
    thread = threading.current_thread()
    if thread is threading.main_thread():
        previous = signal.signal(signal.SIGALRM, _raise_timed_out)
        timer = threading.Timer(seconds, signal.pthread_kill, (thread.ident, signal.SIGALRM))
    else:
        previous = None
        timer = threading.Timer(seconds, _raise_in, (thread.ident,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if previous is not None:
            signal.signal(signal.SIGALRM, previous)
        else:  # a TimedOut set just as the block ended must not surface after it
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0), None)


def _raise_timed_out(_signum: int, _frame: object) -> None:
    raise TimedOut()


def _raise_in(thread_id: int | None) -> None:
    if thread_id is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(TimedOut))
