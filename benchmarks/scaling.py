"""``python -m benchmarks.scaling --databases sqlite,postgresql,mysql``

How costs grow with data: loading a job of 10k, 100k and 1M entries should
take time in proportion (the µs per entry stays flat); a recorded run that
reads one key of the largest job should cost about that key read plus the
run's own record, since the cache loads only when ``ctx.tree`` is used
(``load_cache="eager"`` is shown beside it); and reading one job
should not slow down as other jobs' entries and logs grow to a million rows.
"""

import argparse
import statistics
import tempfile

import processcache

from .__main__ import Scratch, timed
from .workloads import context, key_reading_job


def fill(db, job: str, total: int, keys: int = 100) -> processcache.CacheContext:
    ctx = context(db, job)
    for start in range(0, total, 20_000):
        ctx.create_cache_many([(f"key-{i % keys}", {"n": i}) for i in range(start, min(total, start + 20_000))])
    return ctx


def fill_logs(db, job: str, total: int) -> None:
    rows = [(db.store.job_id("bench", job), "m", "GENERIC", f"log {i}", "2026-11-24 03:00:00") for i in range(total)]
    for start in range(0, total, 20_000):
        with db.transaction():
            db.backend.insert_many("process_job_logs", ("job_id", "machine", "log_type", "message", "created_at"),
                                   rows[start:start + 20_000])


def median_of(repeat: int, func, *args) -> float:
    return statistics.median(timed(func, *args) for _ in range(repeat))


def measure(kind: str, folder: str, repeat: int, sizes: list[int]) -> None:
    scratch = Scratch(kind, folder)
    try:
        with processcache.connect(scratch.url) as db:
            print(f"\n{kind}: load time by job size")
            for size in sizes:
                ctx = fill(db, f"size-{size}", size)
                seconds = median_of(repeat, ctx.sync_cache)
                print(f"  {size:>9,} entries  {seconds * 1000:>9,.0f} ms  {seconds / size * 1e6:>6.2f} µs/entry")
            one_key_run(db, ctx, sizes[-1], repeat)
            small = fill(db, "small", 1_000, keys=100)
            logs = context(db, "small")
            for n in range(100):
                logs.create_log(f"small log {n}")

            def reads():
                for k in range(1_000):
                    small.get_cache(f"key-{k % 100}")
                logs.get_logs(limit=50)

            before = median_of(repeat, reads)
            fill(db, "others", 1_000_000, keys=1_000)
            fill_logs(db, "others", 1_000_000)
            after = median_of(repeat, reads)
            print(f"{kind}: 1,000 reads and a log page of one job: {before * 1000:,.0f} ms beside an empty"
                  f" database, {after * 1000:,.0f} ms beside 1M other entries and 1M other logs"
                  f" ({after / before:.2f}x)")
    finally:
        scratch.drop()


def one_key_run(db, largest: processcache.CacheContext, size: int, repeat: int) -> None:
    """A recorded run reading one key of the largest job, against that key read alone (and an eager run)."""
    key_read = median_of(repeat, largest.latest, "key-7")
    run = median_of(repeat, key_reading_job(largest.job).run, db, "m")
    eager = median_of(repeat, key_reading_job(largest.job, load_cache="eager").run, db, "m")
    print(f"  a run reading one key of {size:,} entries: {run * 1000:,.1f} ms, {run / key_read:.2f}x the key read"
          f" alone ({key_read * 1000:.1f} ms; the rest: the run's record); load_cache='eager': {eager * 1000:,.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql,mysql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated job sizes to load; the one-key run reads the largest")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.databases.split(","):
            measure(kind, folder, args.repeat, sizes)


if __name__ == "__main__":
    main()
