"""When ``ctx.tree`` and ``ctx.results`` are read: on first use, or before the job with ``load_cache="eager"``."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processcache import CacheContext, JobOptions, ProcessCacheError, Registry, RegistryError, cache_session


def values(entries):
    return [entry.value for entry in entries]


@pytest.fixture
def reads(backend, monkeypatch):
    """Every `entries()` read of the cache store, as (key, rows returned): key None is the whole cache."""
    seen: list[tuple[str | None, int]] = []
    entries = backend.cache.entries

    def recorded(job_id, machine, key=None):
        found = entries(job_id, machine, key)
        seen.append((key, len(found)))
        return found

    monkeypatch.setattr(backend.cache, "entries", recorded)
    return seen


def seed(backend, job: str, total: int = 2000, keys: int = 100) -> None:
    with cache_session("loading", job, machine="m1", database=backend) as ctx:
        ctx.create_cache_many([(f"key-{n % keys}", n) for n in range(total)])


def test_a_run_that_reads_one_key_does_not_load_the_whole_cache(backend, reads):
    seed(backend, "big")
    registry, seen = Registry(), {}
    spec = registry.job("loading", "big")(lambda ctx: seen.update(latest=ctx.latest("key-7"),
                                                                   entries=values(ctx.get_cache("key-7"))))
    spec.on_cache_exist(lambda ctx: seen.update(hook="exist"))
    reads.clear()
    assert spec.run(database=backend, machine="m1").status == "succeeded"
    assert seen == {"hook": "exist", "latest": 1907, "entries": list(range(7, 2000, 100))}
    assert reads == [("key-7", 20)], "the key's 20 rows are all that was read, not the 2000 of the cache"


def test_the_empty_cache_hook_runs_without_loading_the_tree(backend, reads):
    registry, seen = Registry(), []
    spec = registry.job("loading", "empty")(lambda ctx: seen.append("job"))
    spec.on_cache_empty(lambda ctx: seen.append("empty"))
    spec.on_cache_exist(lambda ctx: seen.append("exist"))
    assert spec.run(database=backend, machine="m1").ok
    assert seen == ["empty", "job"] and reads == []


def test_tree_and_results_are_read_on_first_use_with_this_runs_writes(backend, reads):
    seed(backend, "first-use", total=10, keys=5)
    reads.clear()
    with cache_session("loading", "first-use", machine="m1", database=backend) as ctx:
        ctx.create_cache("key-0", "new")
        ctx.set_cache("key-1", "only")
        ctx.delete_cache("key-2")
        assert reads == [], "writes before the first use load nothing"
        assert {key: values(entries) for key, entries in ctx.tree.items()} == {
            "key-0": [0, 5, "new"], "key-1": ["only"], "key-3": [3, 8], "key-4": [4, 9]}
        assert sorted(ctx.results) == sorted(e.id for entries in ctx.tree.values() for e in entries)
        assert reads == [(None, 8)], "one query for the tree and the results"
        ctx.create_cache("key-5", "after")
        assert values(ctx.tree["key-5"]) == ["after"] and reads == [(None, 8)], "then kept in step, not read again"


ops = st.lists(st.tuples(st.sampled_from(["create", "set", "delete", "clear"]), st.sampled_from("abc"),
                         st.integers(0, 9)), max_size=8)


@settings(max_examples=20, deadline=None)
@given(before=ops, after=ops)
def test_a_lazy_tree_agrees_with_an_eager_one_whenever_it_is_first_used(backend, before, after):
    """The same writes through a lazy and an eager context: the same tree, whenever the lazy one is read."""
    trees = []
    for load_cache in ("lazy", "eager"):
        job = f"agree-{load_cache}"
        CacheContext(backend, "loading", job, "m1").clear_cache()
        with cache_session("loading", job, machine="m1", database=backend, load_cache=load_cache) as ctx:
            for step in before:
                apply(ctx, *step)
            middle = shape(ctx.tree)
            for step in after:
                apply(ctx, *step)
            trees.append((middle, shape(ctx.tree), shape(ctx.results.values())))
            assert shape(ctx.tree) == shape(ctx.get_full_cache()), "the tree is the database's cache"
    assert trees[0] == trees[1]


def apply(ctx, op: str, key: str, value: int) -> None:
    {"create": lambda: ctx.create_cache(key, value), "set": lambda: ctx.set_cache(key, value),
     "delete": lambda: ctx.delete_cache(key), "clear": ctx.clear_cache}[op]()


def shape(tree_or_entries) -> dict:
    entries = [e for v in tree_or_entries.values() for e in v] if isinstance(tree_or_entries, dict) \
        else list(tree_or_entries)
    found: dict = {}
    for entry in sorted(entries, key=lambda e: e.id):
        found.setdefault(entry.key, []).append(entry.value)
    return found


def test_eager_loading_reads_the_cache_before_the_job_as_the_run_found_it(backend, reads):
    seed(backend, "eager", total=10, keys=5)
    registry, seen = Registry(), {}

    def job(ctx):
        seen["reads before the job"] = list(reads)
        CacheContext(backend, "loading", ctx.job, "m2").create_cache("from-elsewhere", 1)
        seen["keys"] = sorted(ctx.tree)

    spec = registry.job("loading", "eager", load_cache="eager")(job)
    reads.clear()
    assert spec.run(database=backend, machine="m1").ok
    assert seen == {"reads before the job": [(None, 10)], "keys": [f"key-{n}" for n in range(5)]}
    lazy = registry.job("loading", "lazy")(job)
    seed(backend, "lazy", total=10, keys=5)
    reads.clear()
    assert lazy.run(database=backend, machine="m1").ok
    assert seen["reads before the job"] == [] and "from-elsewhere" in seen["keys"], "read when first used"


def test_load_cache_takes_lazy_or_eager():
    assert JobOptions().load_cache == "lazy" and JobOptions.parse(load_cache="eager").load_cache == "eager"
    with pytest.raises(RegistryError, match="load_cache='sometimes': use lazy"):
        Registry().job("loading", "bad", load_cache="sometimes")


@pytest.mark.parametrize("loaded", [True, False], ids=["tree-loaded", "tree-not-loaded"])
def test_a_failed_batch_leaves_the_tree_as_the_database_has_it(ctx, loaded):
    ctx.create_cache("before", 1)
    if loaded:
        assert list(ctx.tree) == ["before"]
    with pytest.raises(RuntimeError):
        with ctx.batch():
            ctx.create_cache("in-batch", 2)
            ctx.set_cache("before", "replaced")
            assert values(ctx.tree["before"]) == ["replaced"], "inside the batch, the tree sees its writes"
            raise RuntimeError("halfway")
    assert {key: values(entries) for key, entries in ctx.tree.items()} == {"before": [1]}
    assert list(ctx.results.values()) == ctx.tree["before"]


def test_a_tree_first_read_after_the_run_ended_says_so(backend):
    with cache_session("loading", "ended", machine="m1", database=backend) as ctx:
        ctx.create_cache("k", 1)
    with pytest.raises(ProcessCacheError, match="has ended: use its context only inside its job"):
        _ = ctx.tree
    with cache_session("loading", "ended", machine="m1", database=backend) as read:
        assert values(read.tree["k"]) == [1]
    assert values(read.tree["k"]) == [1], "a tree read during the run stays readable"
