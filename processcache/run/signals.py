"""SIGTERM, SIGINT and SIGHUP during `processcache run`: end the run cleanly, then exit 128 + signal.

cron, systemd and Ctrl-C stop jobs with these; SIGHUP comes when the ssh
session or terminal that started a job closes. The first one raises
`Terminated` in the job's main thread, so the run is recorded as
``terminated`` with the signal, its lock is released and every committed
write kept; a second SIGINT (or SIGTERM) exits at once, without cleaning up.
Only the CLI installs these handlers: a program calling ``spec.run`` owns
its signals.
"""

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..records import RunRecord

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Terminated(BaseException):
    """The run was stopped by a signal.

    A BaseException, like KeyboardInterrupt and SystemExit, and not in
    `processcache.errors` with the errors a user catches: it is control flow
    of the CLI, raised only under its handlers, that must pass through a
    job's ``except Exception:`` so that the job stops and the run ends as
    ``terminated``. The CLI catches it and exits 128 + the signal number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.run: RunRecord | None = None  # the run's final record, once recorded
        super().__init__(f"terminated by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM, SIGINT and SIGHUP raise `Terminated`; a second one exits at once."""

    def first(signum: int, _frame: FrameType | None) -> None:
        for handled in HANDLED:
            signal.signal(handled, again)
        raise Terminated(signum)

    def again(signum: int, _frame: FrameType | None) -> None:
        os._exit(128 + signum)

    previous = {handled: signal.signal(handled, first) for handled in HANDLED}
    try:
        yield
    finally:
        for handled, handler in previous.items():
            signal.signal(handled, handler)
