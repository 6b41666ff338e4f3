"""Worker processes for the concurrency tests: `python workers.py COMMAND URL ...`.

Each is a real, separate process, as cron would start them.
"""

import json
import os
import sys
import time
import traceback

import processcache
from processcache.records import exit_code


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


def open_new(url: str, start_at: str) -> None:
    """Open (and so create) a database at the same instant as the others: imports done, the last 50 ms spun."""
    import pony.orm.dbproviders.sqlite  # noqa: F401

    wait_until(str(float(start_at) - 0.05))
    while time.time() < float(start_at):
        pass
    processcache.connect(url).close()


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


def set_writer(url: str, seconds: str, start_at: str) -> None:
    """Replace the value of one key again and again."""
    ctx = processcache.CacheContext(processcache.connect(url), "concurrent", "set", "shared")
    wait_until(start_at)
    end, n = time.time() + float(seconds), 0
    while time.time() < end:
        ctx.set_cache("k", f"{os.getpid()}-{n}")
        n += 1
    print(n)


def set_reader(url: str, seconds: str, start_at: str) -> None:
    """Read the key again and again; print every read that is neither one value nor the first list."""
    ctx = processcache.CacheContext(processcache.connect(url), "concurrent", "set", "shared")
    wait_until(start_at)
    end, reads, bad = time.time() + float(seconds), 0, []
    while time.time() < end:
        values = [entry.value for entry in ctx.get_cache("k")]
        reads += 1
        if len(values) != 1 and values != ["first", "second", "third"]:
            bad.append(values)
    print(json.dumps({"reads": reads, "bad": bad[:5]}))


def memo_call(url: str, counter_file: str, start_at: str, lease: str) -> None:
    """Call one memoised function; its body counts its calls in a file and is slow."""

    @processcache.memoize("concurrent", ttl="1h", database=url, lease=float(lease), timeout=60)
    def expensive(a, b=None):
        with open(counter_file, "a") as out:
            out.write(f"{os.getpid()}\n")
        print("computing", flush=True)
        time.sleep(float(os.environ.get("MEMO_SLEEP", "1")))
        return {"sum": a + b["x"], "by": os.getpid()}

    wait_until(start_at)
    print(json.dumps(expensive(40, b={"x": 2})), flush=True)


def memo_key(*_):
    """Print memo keys of the JSON argument lists read from stdin (for hash-seed stability)."""
    from processcache.cache.memo import memo_key as key_of

    print(json.dumps([key_of("f", tuple(args), kwargs) for args, kwargs in json.load(sys.stdin)]))


def write_through_faults(url: str, count: str) -> None:
    """Write COUNT entries and logs one by one, reporting progress, while connections are killed."""
    with processcache.cache_session("faults", "writer", machine="m", database=url) as ctx:
        for n in range(int(count)):
            ctx.create_cache("n", n)
            ctx.create_log(f"log {n}")
            if n % 20 == 0:
                print(n, flush=True)
            time.sleep(0.002)
    print(ctx.run.status, flush=True)


def bulk_through_faults(url: str, count: str) -> None:
    """Write COUNT batches of 20 entries and replace one key every fifth, reporting progress,
    while connections are killed."""
    with processcache.cache_session("faults", "bulk", machine="m", database=url) as ctx:
        for n in range(int(count)):
            ctx.create_cache_many([(f"b{n}", i) for i in range(20)])
            if n % 5 == 0:
                ctx.set_cache("last", n)
            if n % 10 == 0:
                print(n, flush=True)
    print(ctx.run.status, flush=True)


def append_and_log(url: str, count: str, start_at: str) -> None:
    """Append entries and logs as fast as possible, together with the other workers."""
    wait_until(start_at)
    with processcache.cache_session("concurrent", "eight", machine=f"w{os.getpid()}", database=url) as ctx:
        for n in range(int(count)):
            ctx.create_cache("n", n)
            ctx.create_log(f"log {n}")


def crash_writer(url: str, seed: str) -> None:
    """Write entries, logs, replacements and batches, reporting each once committed, until killed."""
    registry = processcache.Registry()

    @registry.job("crash", "writer", overlap="allow", lease=0.5)
    def writer(ctx):
        print("R", seed, flush=True)
        for n in range(10_000):
            ctx.create_cache("n", f"{seed}-{n}")
            print("E", f"{seed}-{n}", flush=True)
            ctx.create_log(f"{seed}-{n}")
            print("L", f"{seed}-{n}", flush=True)
            ctx.set_cache("current", f"{seed}-{n}")
            print("S", f"{seed}-{n}", flush=True)
            ctx.create_cache_many([(f"batch-{seed}-{n}", i) for i in range(5)])
            print("M", f"{seed}-{n}", flush=True)

    writer.run(database=url, machine="m")


def crash_writers(url: str) -> None:
    """Fork a crash_writer for each "SEED FIFO" line read, its reports going to the FIFO; print its pid, then
    "ended" and its exit code once it is gone. Each is a real process of its own, started without paying for a new
    interpreter and its imports each time: the crash test kills 200 of them."""
    import pony.orm.dbproviders.mysql  # noqa: F401
    import pony.orm.dbproviders.postgres  # noqa: F401
    import pony.orm.dbproviders.sqlite  # noqa: F401

    for line in sys.stdin:
        seed, fifo = line.split()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(os.open(fifo, os.O_WRONLY), 1)
                crash_writer(url, seed)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        print(pid, flush=True)
        print("ended", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)


def soak(url: str, seconds: str) -> None:
    """Run a short job back to back; print runs, writes and memory (KiB) after warm-up and at the end."""
    import resource

    registry = processcache.Registry()

    @registry.job("soak", "short", overlap="allow")
    def short(ctx):
        ctx.create_cache("n", ctx.run.id)
        ctx.logger.info("run %s", ctx.run.id)
        return ctx.run.id

    runs, ids, warm = 0, [], None
    end = time.time() + float(seconds)
    with processcache.connect(url) as db:
        while time.time() < end:
            record = short.run(database=db, machine=f"w{os.getpid()}")
            assert record.ok, record.error
            ids.append(record.result)
            runs += 1
            if runs == 50:
                warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"runs": runs, "ids": ids, "warm": warm,
                      "end": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"append": append, "first_run": first_run, "open_new": open_new, "write_forever": write_forever, "contend": contend,
     "hold_forever": hold_forever, "set_writer": set_writer, "set_reader": set_reader, "memo_call": memo_call,
     "memo_key": memo_key, "write_through_faults": write_through_faults, "bulk_through_faults": bulk_through_faults,
     "append_and_log": append_and_log, "crash_writer": crash_writer, "crash_writers": crash_writers,
     "soak": soak}[command](*args)
