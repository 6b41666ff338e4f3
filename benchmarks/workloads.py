"""The same work through processcache, and through diskcache emulating per-key lists."""

import random

import processcache


def context(db, job: str) -> processcache.CacheContext:
    return processcache.CacheContext(db, "bench", job, "m")


def seed_entries(total: int, keys: int) -> list[tuple[str, dict]]:
    """The entries the load and read workloads find, the same for every side."""
    return [(f"key-{i % keys}", {"n": i, "pad": "x" * 40}) for i in range(total)]


def appends(ctx, n: int) -> None:
    for i in range(n):
        ctx.create_cache(f"key-{i % 100}", {"n": i})


def bulk(ctx, n: int) -> None:
    ctx.create_cache_many([(f"key-{i % 100}", {"n": i}) for i in range(n)])


def load(ctx) -> dict:
    return ctx.sync_cache()


def key_reading_job(job: str, **options) -> processcache.JobSpec:
    """A job of group bench that reads one key of its cache (``spec.run(db, "m")`` runs it recorded, locked)."""
    return processcache.Registry().job("bench", job, **options)(lambda ctx: ctx.latest("key-7"))


def reads(ctx, n: int, keys: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        ctx.get_cache(f"key-{rng.randrange(keys)}")


def logs(ctx, n: int) -> None:
    for i in range(n):
        ctx.create_log(f"log line {i}")


class DiskcacheLists:
    """What a diskcache user writes for per-key lists: a list value per key, appended in a transaction."""

    def __init__(self, directory: str) -> None:
        import diskcache

        # The same durability as processcache's SQLite default: WAL with synchronous=NORMAL.
        self.cache = diskcache.Cache(directory, sqlite_synchronous=1)

    def appends(self, n: int) -> None:
        for i in range(n):
            key = f"key-{i % 100}"
            with self.cache.transact():
                self.cache.set(key, self.cache.get(key, []) + [{"n": i}])

    def bulk(self, n: int) -> None:
        with self.cache.transact():
            for i in range(n):
                key = f"key-{i % 100}"
                self.cache.set(key, self.cache.get(key, []) + [{"n": i}])

    def fill(self, entries: list[tuple[str, dict]]) -> None:
        """Each key's list written once: the best case for diskcache's load."""
        lists: dict[str, list] = {}
        for key, value in entries:
            lists.setdefault(key, []).append(value)
        with self.cache.transact():
            for key, values in lists.items():
                self.cache.set(key, values)

    def load(self) -> dict:
        return {key: self.cache[key] for key in self.cache.iterkeys()}

    def reads(self, n: int, keys: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            self.cache.get(f"key-{rng.randrange(keys)}")

    def clear(self) -> None:
        self.cache.clear()
