"""Worker processes for the concurrency tests: `python workers.py COMMAND URL ...`.

Each is a real, separate process, as cron would start them.
"""

import json
import os
import sys
import time

import processcache
from processcache.runner import exit_code


def wait_until(start_at: str) -> None:
    time.sleep(max(0.0, float(start_at) - time.time()))


def append(url: str, count: str, start_at: str) -> None:
    """Append COUNT entries to one shared job and machine, starting with the others."""
    with processcache.connect(url) as db:
        wait_until(start_at)
        with processcache.cache_session("concurrent", "append", machine="shared", database=db) as ctx:
            for n in range(int(count)):
                ctx.create_cache("n", n)


def first_run(url: str, start_at: str) -> None:
    """Open a fresh database and run a never-seen job, all at the same moment as the others."""
    wait_until(start_at)
    with processcache.cache_session("Never Seen", "First Run", machine="shared", database=url) as ctx:
        ctx.create_cache("ran", True)


def write_forever(url: str) -> None:
    """Write an entry and a log, report each once committed, until killed."""
    with processcache.cache_session("killed", "mid-run", machine="m", database=url) as ctx:
        n = 0
        while True:
            ctx.create_cache("n", n)
            ctx.create_log(f"log {n}")
            print(n, flush=True)
            n += 1


def contend(url: str, attempts: str, intervals_file: str, start_at: str) -> None:
    """Run one locked job ATTEMPTS times; log each hold's interval; print the exit codes seen."""
    registry = processcache.Registry()

    @registry.job("contended", "lock", overlap="skip")
    def hold(ctx):
        began = time.monotonic_ns()
        time.sleep(0.002)
        with open(intervals_file, "a") as out:
            out.write(f"{began} {time.monotonic_ns()} {ctx.run.id}\n")

    codes = {}
    with processcache.connect(url) as db:
        wait_until(start_at)
        for _ in range(int(attempts)):
            code = exit_code(hold.run(database=db, machine=f"w{os.getpid()}"))
            codes[code] = codes.get(code, 0) + 1
    print(json.dumps(codes))


def hold_forever(url: str, lease: str) -> None:
    """Hold the lock of a job until killed, printing the run id once it holds it."""
    registry = processcache.Registry()

    @registry.job("contended", "killed-holder", lease=float(lease))
    def forever(ctx):
        print(ctx.run.id, flush=True)
        while True:
            time.sleep(1)

    forever.run(database=url, machine="doomed")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"append": append, "first_run": first_run, "write_forever": write_forever, "contend": contend,
     "hold_forever": hold_forever}[command](*args)
