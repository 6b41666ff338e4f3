"""Reads use the index that serves them, before the database has any statistics.

A job's entries arrive in bulk between two runs of the statistics collector.
PostgreSQL then read `get_cache(key)` through the (job, machine, id) index,
filtering the whole job by key: 100 entries took 12 ms instead of 0.1 ms.
"""


from processcache import CacheContext

KEY_INDEX = "idx_process_cache__job_id_machine_entry_key_id"
JOB_KEY_INDEX = "idx_process_cache__job_id_entry_key_id"


def explain(db, sql: str, params: dict) -> str:
    """The name of the index the database plans to use, in its plan's text."""
    found = db.backend.select(db.backend.dialect.explain(sql), params)
    if db.backend.dialect.name == "mysql":  # one row per table; the index chosen is the `key` column, the sixth
        return " ".join(str(row[5]) for row in found)
    return " ".join(str(part) for row in found for part in row)


def test_a_key_read_walks_only_that_keys_rows_before_any_statistics(backend):
    ctx = CacheContext(backend, "plans", "big", "m1")
    ctx.create_cache_many([(f"key-{n % 200}", n) for n in range(20_000)])
    CacheContext(backend, "plans", "other", "m1").create_cache_many([("key-7", n) for n in range(2_000)])
    plan = explain(backend, *backend.cache.entries_query(ctx.job_id, "m1", "key-7"))
    # either key index walks only this key's rows (MySQL may take the one without the machine); never the tree's
    assert KEY_INDEX in plan or JOB_KEY_INDEX in plan, plan
    assert [e.value for e in ctx.get_cache("key-7", machine="m1")] == list(range(7, 20_000, 200))


def test_a_job_scoped_key_read_walks_only_that_keys_rows_of_every_machine(backend):
    """A job of scope="job" reads a key of every machine: the (job, key, id) index serves it in order."""
    for machine in ("m1", "m2", "m3"):
        CacheContext(backend, "plans", "farm", machine).create_cache_many([(f"key-{n % 200}", n) for n in range(5_000)])
    ctx = CacheContext(backend, "plans", "farm", "m1")
    plan = explain(backend, *backend.cache.entries_query(ctx.job_id, None, "key-7"))
    assert JOB_KEY_INDEX in plan, plan
    assert [e.value for e in ctx.get_cache("key-7")] == list(range(7, 5_000, 200)) * 3
