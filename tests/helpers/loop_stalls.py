"""The event loop's longest stall while something runs: a task that asks to wake every millisecond notes the
largest gap between two of its wake-ups (a loaded 2-core machine shows about 8 ms with nothing else running)."""

import asyncio
import time

TICK = 0.001


class LongestStall:
    """``async with LongestStall() as stall:`` ... ``stall.seconds``: the longest the loop was unavailable inside."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._last = time.perf_counter()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "LongestStall":
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # the ticker has started
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self._note()  # a loop blocked until the end never woke the ticker

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
