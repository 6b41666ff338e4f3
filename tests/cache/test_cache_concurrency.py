"""The cache under real concurrent processes (atomic replace), and export then import."""

import json
import time

from cli_helpers import cli, outputs, start_script
from paths import HELPERS

from processcache import ANY, CacheContext, cache_session, connect

WORKERS = HELPERS / "workers.py"


def start(*args, env=None):
    return start_script(WORKERS, *args, env=env)


def test_set_cache_under_four_writers_and_four_readers(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "concurrent", "set", "shared")
        for value in ["first", "second", "third"]:
            ctx.create_cache("k", value)
    start_at = time.time() + 3
    writers = [start("set_writer", backend_url, 3, start_at) for _ in range(4)]
    readers = [start("set_reader", backend_url, 3, start_at) for _ in range(4)]
    writes = sum(int(out) for out in outputs(writers))
    reports = [json.loads(out) for out in outputs(readers)]
    assert writes > 20, "the writers ran"
    assert sum(report["reads"] for report in reports) > 20, "the readers ran"
    assert [report["bad"] for report in reports] == [[]] * 4, "a read saw an empty or doubled key"
    with connect(backend_url) as db:
        assert len(CacheContext(db, "concurrent", "set", "shared").get_cache("k")) == 1


def test_export_then_import_into_a_fresh_database_gives_the_same_entries(backend_url, tmp_path):
    with cache_session("exp", "job", machine="m1", database=backend_url) as ctx:
        ctx.create_cache("k", {"nested": ["ü", 1.5, None]})
        ctx.create_cache("k", "second")
        ctx.create_cache("token", "abc", ttl="1h")
        ctx.create_cache(" spaced key ", "😀")
    with cache_session("exp", "job", machine="m2", database=backend_url) as ctx:
        ctx.create_cache("k", "from m2")
    exported = cli("cache", "export", "exp/job", "-d", backend_url)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 5
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    imported = cli("cache", "import", "exp/job", "-d", fresh, input=exported.stdout)
    assert imported.returncode == 0 and "imported 5 entries" in imported.stdout
    with connect(backend_url) as old, connect(fresh) as new:
        before = CacheContext(old, "exp", "job", "m1").get_full_cache(machine=ANY)
        after = CacheContext(new, "exp", "job", "m1").get_full_cache(machine=ANY)

    def shape(tree):
        return {key: [(e.value, e.machine, e.created_at, e.expires_at and round(e.expires_at.timestamp()))
                      for e in entries] for key, entries in tree.items()}
    assert shape(after) == shape(before)
    assert list(after) == list(before)
    again = cli("cache", "export", "exp/job", "-d", fresh)
    assert again.stdout.splitlines() == exported.stdout.splitlines()


def test_a_bad_import_line_imports_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/i.db"
    good = json.dumps({"key": "k", "value": 1, "machine": "m", "created_at": "2026-01-01T00:00:00+00:00"})
    result = cli("cache", "import", "g/j", "-d", url, input=good + "\n{not json\n")
    assert result.returncode == 1 and "line 2: not JSON" in result.stderr and "nothing was imported" in result.stderr
    assert cli("cache", "list", "g/j", "-a", "-d", url).returncode == 1, "not even the job was created"
