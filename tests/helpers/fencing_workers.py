"""Workers for the fencing tests: `python fencing_workers.py COMMAND URL ...`, real processes as cron starts them."""

import re
import sys
import time

import processcache


def locked_writer(url: str, label: str, lease: str, pause: str) -> None:
    """Run a locked job that writes, pauses (seconds of sleep, or "gil": one C call holding the GIL), writes again."""
    registry = processcache.Registry()

    @registry.job("fence", "writer", lease=float(lease), overlap="wait", wait_timeout=60)
    def work(ctx):
        ctx.create_cache("writer", f"{label} 0")
        print("holding", flush=True)
        if pause == "gil":
            re.match(r"(a+)+$", "a" * 27 + "b")  # catastrophic backtracking: seconds in one C call
        else:
            time.sleep(float(pause))
        for n in range(1, 4):
            ctx.create_cache("writer", f"{label} {n}")

    record = work.run(database=url, machine=label)
    print(f"{record.status}: {record.error}", flush=True)


def memo_computer(url: str, label: str, lease: str, seconds: str) -> None:
    """Call a memoised function whose computation takes SECONDS and returns LABEL; print what the call returned."""
    with processcache.connect(url) as db:
        @processcache.memoize("fence-memo", database=db, lease=float(lease), timeout=60)
        def value():
            print("computing", flush=True)
            time.sleep(float(seconds))
            return label

        print(f"result {value()}", flush=True)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
