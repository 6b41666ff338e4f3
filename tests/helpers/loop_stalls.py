"""The event loop's longest stall while something runs, and the database work done on it.

A task that asks to wake every millisecond notes the largest gap between
two of its wake-ups (a loaded 2-core machine shows about 8 ms with nothing
else running, and a quarter of a second when the scheduler is busy
elsewhere: a time is no proof). What is: a profile hook on the loop's
thread notes every call into processcache's SQL executor
(``storage/backend.py``) that talks to the database made there, which
must be none.
"""

import asyncio
import os
import sys
import time

TICK = 0.001
_EXECUTOR = os.path.join("processcache", "storage", "backend.py")
#: The executor's calls that talk to the database (a property such as ``in_transaction`` does not).
_ROUND_TRIPS = {"select", "value", "values", "execute", "insert", "insert_many", "write", "insert_unique",
                "delete_in_batches", "transaction", "snapshot", "retrying", "now", "connect", "open"}


class LongestStall:
    """``async with LongestStall() as stall:`` ... ``stall.seconds``: the longest the loop was unavailable inside."""

    def __init__(self) -> None:
        self.seconds = 0.0
        #: The executor's functions called on the loop's thread meanwhile: database work on the loop.
        self.on_loop: list[str] = []
        self._last = time.perf_counter()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "LongestStall":
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # the ticker has started
        sys.setprofile(self._profile)  # this thread's: the loop's
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        sys.setprofile(None)
        assert self._task is not None
        self._task.cancel()
        self._note()  # a loop blocked until the end never woke the ticker

    def _profile(self, frame, event: str, _arg) -> None:
        if event == "call" and frame.f_code.co_name in _ROUND_TRIPS and frame.f_code.co_filename.endswith(_EXECUTOR):
            self.on_loop.append(frame.f_code.co_name)

    async def _tick(self) -> None:
        self._last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            self._note()

    def _note(self) -> None:
        now = time.perf_counter()
        self.seconds = max(self.seconds, now - self._last)
        self._last = now

    def __str__(self) -> str:
        return f"{self.seconds * 1000:.1f} ms"
