"""Expiry, replace and delete, bulk writes, batches and fast loads, on every backend."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import processcache
from processcache import ANY, CacheContext, InvalidKeyError, InvalidValueError, Registry, cache_session


def values(entries):
    return [entry.value for entry in entries]


def every_read(ctx, key):
    """What each read path says about *key*: all must agree an expired entry is gone."""
    fresh = ctx.sync_cache()
    return {
        "get_cache": values(ctx.get_cache(key)),
        "has_cache_key": ctx.has_cache_key(key),
        "has_cache": ctx.has_cache(),
        "full": values(ctx.get_full_cache().get(key, [])),
        "any machine": values(ctx.get_cache(key, machine=ANY)),
        "tree": values(fresh.get(key, [])),
        "results": values(e for e in ctx.results.values() if e.key == key),
        "latest": ctx.latest(key, "default"),
    }


def test_an_expired_entry_is_gone_from_every_read(ctx):
    entry = ctx.create_cache("token", "abc", ttl=1)
    assert entry.expires_at is not None and entry.expires_at > entry.created_at
    assert every_read(ctx, "token") == {"get_cache": ["abc"], "has_cache_key": True, "has_cache": True,
                                        "full": ["abc"], "any machine": ["abc"], "tree": ["abc"],
                                        "results": ["abc"], "latest": "abc"}
    time.sleep(1.3)
    assert every_read(ctx, "token") == {"get_cache": [], "has_cache_key": False, "has_cache": False,
                                        "full": [], "any machine": [], "tree": [], "results": [],
                                        "latest": "default"}


def test_prune_expired_removes_only_expired_entries(ctx, backend):
    ctx.create_cache("short", 1, ttl="0.5s")
    ctx.create_cache("long", 2, ttl="1h")
    ctx.create_cache("forever", 3)
    time.sleep(0.8)
    assert backend.history.prune(expired=True, dry_run=True) == {"entries": 1}
    assert backend.history.prune(expired=True) == {"entries": 1}
    assert sorted(backend.backend.values("SELECT entry_key FROM process_cache", {})) == ["forever", "long"]


def test_the_jobs_cache_ttl_is_the_default(backend):
    registry = Registry()

    @registry.job("ttl", "job", cache_ttl="0.5s")
    def job(ctx):
        ctx.create_cache("default", 1)
        ctx.create_cache("explicit", 2, ttl="1h")

    job.run(database=backend, machine="m")
    time.sleep(0.8)
    with cache_session("ttl", "job", machine="m", database=backend) as ctx:
        assert list(ctx.tree) == ["explicit"]


def test_set_cache_replaces_the_list_with_one_value(ctx):
    for n in range(3):
        ctx.create_cache("k", n)
    ctx.create_cache("other", "kept")
    entry = ctx.set_cache("k", "only")
    assert values(ctx.get_cache("k")) == ["only"] and values(ctx.tree["k"]) == ["only"]
    assert entry.id in ctx.results and len(ctx.results) == 2
    assert values(ctx.get_cache("other")) == ["kept"]
    assert ctx.sync_cache() == ctx.tree and values(ctx.tree["k"]) == ["only"]


def test_latest_reads_one_row_and_never_a_key_that_differs_by_trailing_spaces(ctx, backend, monkeypatch):
    """MySQL's comparisons ignore trailing spaces: "k " must not answer for "k", whichever was written last."""
    ctx.create_cache_many([("k", n) for n in range(50)])
    ctx.create_cache("k ", "spaced")
    ctx.create_cache("k  ", "spaced twice")
    fetched = []
    select = backend.backend.select
    monkeypatch.setattr(backend.backend, "select", lambda sql, params=None: fetched.append(select(sql, params))
                        or fetched[-1])
    assert ctx.latest("k") == 49 and ctx.latest("k ") == "spaced" and ctx.latest("k  ") == "spaced twice"
    assert [len(rows) for rows in fetched] == [1, 1, 1], "one row each, not the key's every entry"
    assert ctx.latest("k   ") is None


def test_delete_clear_and_latest(ctx, backend):
    ctx.create_cache("a", 1)
    ctx.create_cache("a", 2)
    ctx.create_cache("b", 3)
    assert ctx.latest("a") == 2 and ctx.latest("missing") is None and ctx.latest("missing", 0) == 0
    assert ctx.delete_cache("a") == 2
    assert "a" not in ctx.tree and not ctx.has_cache_key("a") and len(ctx.results) == 1
    assert ctx.delete_cache("a") == 0
    with cache_session(ctx.group, ctx.job, machine="m2", database=backend, scope="machine") as other:
        other.create_cache("b", "m2's")
        other.create_cache("c", "m2's")
        assert other.clear_cache() == 2 and not other.has_cache(), "a per-machine clear is this machine's"
        other.create_cache("b", "m2's")
    assert ctx.clear_cache() == 2, "the job's scope: every machine's"
    assert ctx.tree == {} and ctx.results == {} and not ctx.has_cache()
    assert not ctx.has_cache(machine="m2")


def test_create_cache_many_stores_all_in_order_and_updates_the_tree(ctx):
    entries = ctx.create_cache_many([("k", n) for n in range(2500)] + [("other", {"x": [1]})])
    assert len(entries) == 2501 and len({e.id for e in entries}) == 2501
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert values(ctx.tree["k"]) == list(range(2500))
    assert values(ctx.get_cache("k")) == list(range(2500))
    assert {e.id: e for e in ctx.get_full_cache()["other"]} == {entries[-1].id: entries[-1]}
    assert ctx.create_cache_many({"d1": 1, "d2": 2})[1].key == "d2"
    assert ctx.create_cache_many([]) == []


def test_create_cache_many_refuses_the_whole_lot_for_one_bad_item(ctx):
    with pytest.raises(TypeError, match="set"):
        ctx.create_cache_many([("a", 1), ("b", {1})])
    with pytest.raises(InvalidKeyError):
        ctx.create_cache_many([("a", 1), ("", 2)])
    with pytest.raises(InvalidKeyError, match="NUL"):  # keys repeat in a batch; each distinct one is checked
        ctx.create_cache_many([("a", n) for n in range(100)] + [("b\x00", 1), ("a", 0)])
    with pytest.raises(InvalidKeyError, match="must be a str"):
        ctx.create_cache_many([("a", 1), (["unhashable"], 2)])
    looped: list = []
    looped.append(looped)
    with pytest.raises(InvalidValueError, match="contains itself"):
        ctx.create_cache_many([("a", 1), ("b", looped)])
    assert not ctx.has_cache()


def test_an_exception_inside_a_batch_leaves_nothing_of_it_but_its_logs(ctx):
    ctx.create_cache("before", 1)
    with pytest.raises(RuntimeError):
        with ctx.batch():
            ctx.create_cache("in-batch", 1)
            ctx.create_cache_many([("many", n) for n in range(10)])
            ctx.set_cache("before", "replaced")
            ctx.create_log("why the batch is about to fail", "WARNING")
            raise RuntimeError("halfway")
    assert list(ctx.tree) == ["before"] and values(ctx.tree["before"]) == [1]
    assert ctx.sync_cache().keys() == {"before"} and values(ctx.get_cache("before")) == [1]
    logs = ctx.get_logs()
    assert [(log.message, log.type.value, log.run_id) for log in logs] == [
        ("why the batch is about to fail", "WARNING", ctx.run.id)]


def test_a_batch_inside_a_batch_that_raises_undoes_its_own_writes_only(ctx):
    with ctx.batch():
        ctx.create_cache("outer", 1)
        with pytest.raises(RuntimeError):
            with ctx.batch():
                ctx.create_cache("inner", 2)
                ctx.set_cache("outer", "replaced")
                raise RuntimeError("inner fails")
        ctx.create_cache("outer", 3)
    assert {key: values(entries) for key, entries in ctx.tree.items()} == {"outer": [1, 3]}
    assert {key: values(entries) for key, entries in ctx.get_full_cache().items()} == {"outer": [1, 3]}


def test_a_write_inside_the_applications_own_pony_session_is_committed_at_once(backend_url):
    """Pony's session flag is shared by every Pony database: the application's must not hold processcache's writes."""
    script = (
        "import os, sys\n"
        "from pony import orm\n"
        "import processcache\n"
        "app = orm.Database()\n"
        "class Thing(app.Entity):\n"
        "    name = orm.Required(str)\n"
        "app.bind(provider='sqlite', filename=':memory:')\n"
        "app.generate_mapping(create_tables=True)\n"
        "db = processcache.connect(sys.argv[1])\n"
        "ctx = processcache.CacheContext(db, 'app', 'own-session', 'm1')\n"
        "with orm.db_session:\n"
        "    Thing(name='x')\n"
        "    ctx.create_cache('appended', 1)\n"
        "    ctx.set_cache('replaced', 2)\n"
        "    with ctx.batch():\n"
        "        ctx.create_cache_many({'many': 3})\n"
        "    os._exit(0)  # a crash before the application's session ends\n"
    )
    done = subprocess.run([sys.executable, "-c", script, backend_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with processcache.connect(backend_url) as db:
        tree = CacheContext(db, "app", "own-session", "m1").get_full_cache()
    assert {key: values(entries) for key, entries in tree.items()} == {"appended": [1], "replaced": [2], "many": [3]}


def test_reads_inside_a_batch_see_its_writes_and_others_see_them_at_its_end(ctx, backend):
    with ctx.batch():
        ctx.create_cache("k", 1)
        ctx.create_cache_many([("k", 2), ("other", 3)])
        assert values(ctx.get_cache("k")) == [1, 2] and ctx.has_cache_key("other")
        assert values(ctx.sync_cache()["k"]) == [1, 2]
        with ThreadPoolExecutor(1) as pool:  # another thread, so another connection and no shared session
            assert pool.submit(lambda: ctx.get_cache("k")).result() == []
    assert values(CacheContext(backend, ctx.group, ctx.job, ctx.machine).get_cache("k")) == [1, 2]


def test_a_batch_commits_everything_at_its_end(ctx, backend):
    with ctx.batch():
        for n in range(100):
            ctx.create_cache("n", n)
        ctx.delete_cache("nothing")
    with cache_session(ctx.group, ctx.job, machine=ctx.machine, database=backend) as other:
        assert values(other.tree["n"]) == list(range(100))


def test_loading_the_tree_is_one_query_and_builds_no_orm_objects(ctx, backend, monkeypatch):
    ctx.create_cache_many([(f"key-{n % 50}", n) for n in range(2000)])
    executor, statements = backend.backend, []
    select = executor.select  # every cache read runs its one statement here, outside any transaction

    def recorded(sql, params=None):
        statements.append((sql, executor.in_transaction))
        return select(sql, params)

    monkeypatch.setattr(executor, "select", recorded)
    executor.pony.merge_local_stats()
    ctx.sync_cache()
    assert len(statements) == 1 and "process_cache" in statements[0][0] and not statements[0][1]
    assert not [sql for sql in executor.pony.local_stats if sql and "process_cache" in sql], "nothing through Pony"
    entry = ctx.tree["key-0"][0]
    assert type(entry).__name__ == "Entry" and not hasattr(entry, "_session_cache_")
    assert sum(len(v) for v in ctx.tree.values()) == 2000
