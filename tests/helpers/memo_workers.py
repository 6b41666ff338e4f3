"""Worker processes for the memoisation tests: `python memo_workers.py COMMAND URL ...`.

Each is a real, separate process, as cron would start them.
"""

import asyncio
import json
import os
import sys
import time

import processcache


def call(url: str, kind: str, seconds: str, counter_file: str, start_at: str) -> None:
    """Call one memoised function, plain or async (KIND), whose body takes SECONDS; print what it returned, and when.

    The body appends this process's id to COUNTER_FILE and prints "computing"
    when it starts; its value says when it finished (``done_at``).
    """

    def begin():
        with open(counter_file, "a") as out:
            out.write(f"{os.getpid()}\n")
        print("computing", flush=True)

    @processcache.memoize("memo-workers", database=url, name=f"slow-{kind}", timeout=60)
    def slow():
        begin()
        time.sleep(float(seconds))
        return {"by": os.getpid(), "done_at": time.time()}

    @processcache.memoize("memo-workers", database=url, name=f"slow-{kind}", timeout=60)
    async def slow_async():
        begin()
        await asyncio.sleep(float(seconds))
        return {"by": os.getpid(), "done_at": time.time()}

    time.sleep(max(0.0, float(start_at) - time.time()))
    value = asyncio.run(slow_async()) if kind == "async" else slow()
    print(json.dumps({"value": value, "returned_at": time.time()}), flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"call": call}[command](*args)
