"""`read_cache` and read-only Databases: a notebook that looks at a job's data can never change what the job sees next.

On every database: a nightly @job runs; a reader looks at its cache, logs
and last success (and tries every write a notebook could); the nightly's
next run sees the same ``last_success()`` and entries, and the ledger
holds the nightly's runs alone.
"""

import pytest
from conftest import _new_database

import processcache
from processcache import CacheContext, ReadOnlyError, Registry, cache_session, read_cache


def _nightly(seen: list):
    """A nightly job that resumes from its last success, as an incremental batch does."""
    registry = Registry()

    @registry.job("sales", "nightly")
    def nightly(ctx):
        last = ctx.last_success()
        seen.append((last and last.id, [entry.value for entry in ctx.get_cache("sale")]))
        ctx.create_log("nightly ran")
        ctx.create_cache("sale", len(seen))

    return nightly


def _ledger(url: str) -> tuple:
    with processcache.connect(url) as db:
        job = "sales/nightly"
        return ([(r.id, r.status, r.machine) for r in db.list_runs(job, limit=None)],
                [(log.id, log.message) for log in db.logs(job, limit=None)],
                db.locks(), db.jobs())


def _every_write(url: str) -> list:
    """Every write a notebook could try through a read-only Database: what each raised."""
    raised = []
    with processcache.connect(url, read_only=True) as db:
        def attempt(write):
            with pytest.raises(ReadOnlyError) as caught:
                write()
            raised.append(str(caught.value))

        def session():
            with cache_session("sales", "nightly", machine="notebook", database=db) as ctx:
                print("a notebook's output")
                ctx.create_cache("sale", 99)

        attempt(session)
        ctx = CacheContext(db, "sales", "nightly", "notebook")  # an existing job: found, nothing written
        attempt(lambda: ctx.create_cache("sale", 99))
        attempt(lambda: ctx.create_cache_many({"sale": 99}))
        attempt(lambda: ctx.set_cache("sale", 99))
        attempt(lambda: ctx.delete_cache("sale"))
        attempt(ctx.clear_cache)
        attempt(lambda: ctx.create_log("from a notebook"))
        attempt(lambda: ctx.get_or_compute("other", lambda: 1))

        def batch():
            with ctx.batch():
                pass

        attempt(batch)
        run = db.list_runs("sales/nightly", limit=1)[0]
        attempt(lambda: db.runs.acquire("sales/nightly", "notebook", 1, run.id, 60.0))
        attempt(lambda: db.runs.start("sales", "nightly", "notebook", 1, 60.0, None, None, "job", {}))
        attempt(lambda: db.runs.finish(run, "failed", "from a notebook"))
        attempt(lambda: db.sync("new"))
        attempt(db.upgrade)
        attempt(lambda: db.retire_job("sales/nightly"))
        attempt(lambda: db.mute_job("sales/nightly", 60))
        attempt(lambda: db.delete_job("sales/nightly"))
        attempt(lambda: CacheContext(db, "sales", "never-ran", "notebook"))  # a new job's rows
        assert db.sync("check") == []  # what a read-only Database does read, it still reads
    return raised


def test_a_reader_never_changes_what_the_nightly_job_sees_next(backend_url):
    seen: list = []
    nightly = _nightly(seen)
    first = nightly.run(database=backend_url, machine="cron-host")
    assert first.status == "succeeded"
    ledger = _ledger(backend_url)

    with read_cache("sales", "nightly", database=backend_url) as cache:
        print("a notebook's output")  # no run: nothing captures it
        assert [e.value for e in cache.get_cache("sale")] == [1]
        assert cache.latest("sale") == 1 and cache.has_cache() and cache.has_cache_key("sale")
        assert [e.value for e in cache.tree["sale"]] == [1] and len(cache.results) == 1
        assert cache.last_success().id == first.id
        assert [log.message for log in cache.get_logs()] == ["nightly ran"]
        assert not hasattr(cache, "create_cache") and not hasattr(cache, "create_log")
    raised = _every_write(backend_url)
    assert all("\n" not in text and "read-only" in text for text in raised), raised
    assert _ledger(backend_url) == ledger  # no run, log, lock or job added, none changed

    second = nightly.run(database=backend_url, machine="cron-host")
    assert second.status == "succeeded"
    assert seen == [(None, []), (first.id, [1])]


def test_a_reader_refuses_a_job_that_is_not_there(backend_url):
    with cache_session("sales", "nightly", database=backend_url):
        pass
    with pytest.raises(processcache.ProcessCacheError, match="no job sales/nighly in this database.*sales/nightly"):
        read_cache("sales", "nighly", database=backend_url)
    with processcache.connect(backend_url) as db:
        assert [job.name for job in db.jobs()] == ["sales/nightly"]


def test_a_reader_reads_the_job_s_scope(tmp_path):
    url = f"sqlite:///{tmp_path}/scoped.db"
    for machine in ("a", "b"):
        with cache_session("sales", "local", machine=machine, database=url, scope="machine") as ctx:
            ctx.create_cache("here", machine)
    with read_cache("sales", "local", database=url, machine="b") as cache:
        assert cache.latest("here") == "b" and cache.latest("here", machine=processcache.ANY) == "b"
        assert sorted(e.value for e in cache.get_cache("here", machine=processcache.ANY)) == ["a", "b"]


@pytest.mark.parametrize("kind", ["sqlite-file", "mysql"])
def test_the_database_refuses_a_read_only_database_s_writes_too(kind, tmp_path):
    """Where a session setting is cheap and stays with the client (not PostgreSQL: under pgbouncer's transaction
    pooling it would stay on the server connection), a write that got past processcache's check fails there."""
    for url in _new_database("mysql", tmp_path) if kind == "mysql" else [f"sqlite:///{tmp_path}/t.db"]:
        with processcache.connect(url):
            pass
        with processcache.connect(url, read_only=True) as db:
            cursor = db.backend._connection().cursor()
            with pytest.raises(Exception, match="(?i)read.?only"):
                cursor.execute("DELETE FROM process_cache")
            assert db.sync("check") == []  # reads as it did
