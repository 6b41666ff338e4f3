"""The executor's contract (`storage/backend.py`), on SQLite, PostgreSQL and MariaDB.

Every store runs its SQL through these few calls, so what they promise is
what the stores can build on: a Pony upgrade that changes what the backend
relies on fails here first.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processcache.storage.backend import ConstraintViolation
from processcache.storage.timeutil import db_time, utcnow

META = "processcache_meta"


def meta(executor, name):
    return executor.value(f"SELECT value FROM {META} WHERE name = $name", {"name": name})


def seen_elsewhere(executor, name):
    """What another thread, with a connection of its own, reads: only what was committed."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(meta, executor, name).result()


def put(executor, name, value):
    executor.execute(f"INSERT INTO {META} (name, value) VALUES ($name, $value)", {"name": name, "value": value})


def a_job(db, name="j"):
    return db.store.job_id("contract", name)


def test_reads_come_back_as_tuples_values_and_one_value(backend):
    executor = backend.backend
    put(executor, "a", "1")
    put(executor, "b", "2")
    rows = executor.select(f"SELECT name, value FROM {META} WHERE name IN ($x, $y) ORDER BY name", {"x": "a", "y": "b"})
    assert rows == [("a", "1"), ("b", "2")] and all(type(row) is tuple for row in rows)
    assert executor.values(f"SELECT name FROM {META} WHERE name >= $x AND name <= $y ORDER BY name",
                           {"x": "a", "y": "b"}) == ["a", "b"]
    assert meta(executor, "a") == "1" and meta(executor, "missing") is None


def test_a_statement_outside_a_transaction_is_committed_at_once_and_says_how_many_rows_it_changed(backend):
    executor = backend.backend
    put(executor, "k", "old")
    assert seen_elsewhere(executor, "k") == "old"
    assert executor.execute(f"UPDATE {META} SET value = $v WHERE name = $n", {"v": "new", "n": "k"}) == 1
    assert executor.execute(f"UPDATE {META} SET value = $v WHERE name = $n", {"v": "x", "n": "none"}) == 0
    assert seen_elsewhere(executor, "k") == "new"


def test_a_transaction_commits_at_its_end_and_rolls_back_on_an_exception(backend):
    executor = backend.backend
    with executor.transaction():
        put(executor, "kept", "1")
        executor.insert(META, {"name": "kept-too", "value": "2"})
        assert meta(executor, "kept") == "1"  # its own writes, seen inside
        assert seen_elsewhere(executor, "kept") is None  # nobody else's yet
    assert seen_elsewhere(executor, "kept") == "1" and seen_elsewhere(executor, "kept-too") == "2"
    with pytest.raises(RuntimeError), executor.transaction():
        put(executor, "gone", "1")
        executor.execute(f"UPDATE {META} SET value = 'changed' WHERE name = 'kept'")
        raise RuntimeError
    assert meta(executor, "gone") is None and meta(executor, "kept") == "1"


def test_a_savepoint_rolls_back_only_its_own_writes_and_a_nested_transaction_joins(backend):
    executor = backend.backend
    with executor.transaction():
        put(executor, "outer", "1")
        with pytest.raises(ValueError), executor.transaction(savepoint=True):
            put(executor, "inner", "1")
            raise ValueError
        with executor.transaction():  # joins: its writes share the outer fate
            put(executor, "joined", "1")
        assert executor.in_transaction
    assert not executor.in_transaction
    assert (meta(executor, "outer"), meta(executor, "inner"), meta(executor, "joined")) == ("1", None, "1")


def test_single_writes_around_a_transaction_keep_it_atomic(backend):
    """MySQL's single writes run in autocommit mode: a transaction after them must still be all or nothing."""
    executor = backend.backend
    put(executor, "before", "1")
    with pytest.raises(RuntimeError), executor.transaction():
        put(executor, "first", "1")
        put(executor, "second", "1")
        raise RuntimeError
    put(executor, "after", "1")
    assert [meta(executor, name) for name in ("before", "first", "second", "after")] == ["1", None, None, "1"]
    assert seen_elsewhere(executor, "after") == "1"


def test_after_runs_once_the_outermost_transaction_has_ended_committed_or_not(backend):
    executor = backend.backend
    ran = []
    executor.after(lambda: ran.append("at once"))
    with pytest.raises(RuntimeError), executor.transaction():
        executor.after(lambda: ran.append(executor.in_transaction))
        assert ran == ["at once"]
        raise RuntimeError
    assert ran == ["at once", False]


def test_insert_runs_only_inside_a_transaction(backend):
    with pytest.raises(RuntimeError, match="inside a transaction"):
        backend.backend.insert(META, {"name": "n", "value": "v"})


def test_write_returns_the_new_id_and_reads_back_a_value_before_the_commit(backend):
    executor, job_id = backend.backend, a_job(backend)
    params = {"job_id": job_id, "machine": "m", "key": "k", "text": "1", "created_at": db_time(utcnow())}
    insert = ("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
              f" VALUES ($job_id, $machine, $key, $text, $created_at, {executor.dialect.now} + 60)")
    first = executor.write(insert, params)
    second, expires_at = executor.write(insert, params, read_back="SELECT expires_at FROM process_cache WHERE id = $id")
    assert second > first and abs(float(expires_at) - executor.now() - 60) < 5
    assert executor.value("SELECT COUNT(*) FROM process_cache WHERE job_id = $j", {"j": job_id}) == 2


def test_a_write_that_stores_no_row_is_refused_with_the_callers_error(backend):
    """A fenced INSERT ... SELECT whose lock row is not there inserts nothing: the caller's error says so."""
    executor, job_id = backend.backend, a_job(backend)
    fenced = ("INSERT INTO process_cache (job_id, machine, entry_key, entry_value, created_at, expires_at)"
              " SELECT $job_id, 'm', 'k', '1', $created_at, NULL FROM process_job_locks WHERE name = $lock")
    with pytest.raises(LookupError):
        executor.write(fenced, {"job_id": job_id, "created_at": db_time(utcnow()), "lock": "nobody"},
                       refused=lambda: LookupError("lost"))
    assert executor.value("SELECT COUNT(*) FROM process_cache") == 0


@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.integers(0, 2500), min_size=1, max_size=2),
       text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))
def test_insert_many_returns_each_rows_id_in_order_across_pages(backend, sizes, text):
    executor, job_id = backend.backend, a_job(backend, "many")
    stamp = db_time(utcnow())
    for size in sizes:
        rows = [(job_id, "m", f"k{n}", f'"{n}{text}"', stamp, None) for n in range(size)]
        with executor.transaction():
            ids = executor.insert_many("process_cache", ("job_id", "machine", "entry_key", "entry_value",
                                                         "created_at", "expires_at"), rows)
        assert len(ids) == size and len(set(ids)) == size
        if ids:
            stored = dict(executor.select(f"SELECT id, entry_key FROM process_cache WHERE id IN"
                                          f" ({', '.join(map(str, ids))})"))
            assert [stored[i] for i in ids] == [f"k{n}" for n in range(size)]


@settings(max_examples=15, deadline=None)
@given(value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200))
def test_parameters_carry_any_text_exactly(backend, value):
    """White space, quotes, `$name`-like text and all of Unicode go in as parameters and come back unchanged."""
    executor = backend.backend
    executor.execute(f"DELETE FROM {META} WHERE name = $name", {"name": "text"})
    put(executor, "text", value[:255])
    assert meta(executor, "text") == value[:255]
    assert executor.value("SELECT $a", {"a": value}) == value


def test_a_broken_unique_key_is_a_constraint_violation_in_a_transaction_and_outside(backend):
    executor = backend.backend
    put(executor, "unique", "1")
    with pytest.raises(ConstraintViolation):
        put(executor, "unique", "2")
    with pytest.raises(ConstraintViolation), executor.transaction():
        executor.insert(META, {"name": "unique", "value": "3"})
    assert meta(executor, "unique") == "1"


def test_every_way_of_writing_in_a_transaction_says_constraint_violation(backend):
    """write and insert_many go to the driver's cursor directly: its IntegrityError must not leak as it is."""
    executor = backend.backend
    executor.insert_unique("processes", {"name": "taken"}, {"created_at": db_time(utcnow())})
    stamp = db_time(utcnow())
    with pytest.raises(ConstraintViolation), executor.transaction():
        executor.write("INSERT INTO processes (name, created_at) VALUES ($name, $at)", {"name": "taken", "at": stamp})
    with pytest.raises(ConstraintViolation), executor.transaction():
        executor.insert_many("processes", ("name", "created_at"), [("fresh", stamp), ("taken", stamp)])
    assert executor.values("SELECT name FROM processes WHERE name IN ('taken', 'fresh')") == ["taken"]


def test_insert_unique_gives_racing_threads_one_row(backend):
    executor, barrier = backend.backend, threading.Barrier(6)

    def create(_):
        barrier.wait()
        return executor.insert_unique("processes", {"name": "raced"}, {"created_at": db_time(utcnow())})

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(create, range(6)))
    assert len(ids) == 1 and executor.values("SELECT id FROM processes WHERE name = 'raced'") == list(ids)
    assert executor.insert_unique(META, {"name": "keyed"}, {"value": "v"}, column="name") == "keyed"
    assert meta(executor, "keyed") == "v"


def test_delete_in_batches_deletes_what_the_where_finds_a_batch_at_a_time(backend):
    executor, job_id = backend.backend, a_job(backend, "batches")
    stamp = db_time(utcnow())
    with executor.transaction():
        executor.insert_many("process_cache", ("job_id", "machine", "entry_key", "entry_value", "created_at"),
                             [(job_id, "m", "gone" if n % 3 else "kept", "1", stamp) for n in range(25)])
    where, params = "FROM process_cache r WHERE r.job_id = $job_id AND r.entry_key = $key", {"job_id": job_id,
                                                                                           "key": "gone"}
    assert executor.delete_in_batches("process_cache", where, params, 4, dry_run=True) == 16
    batches = []
    assert executor.delete_in_batches("process_cache", where, params, 4, progress=batches.append) == 16
    assert batches == [4, 4, 4, 4]
    assert executor.values("SELECT entry_key FROM process_cache WHERE job_id = $j", {"j": job_id}) == ["kept"] * 9


def test_the_server_clock_is_read_in_seconds_since_the_epoch(backend):
    assert abs(backend.backend.now() - utcnow().timestamp()) < 60


def test_an_update_counts_the_rows_it_matched_even_when_it_changes_nothing(backend):
    """MySQL counts the rows an UPDATE changed unless asked for the rows it matched (CLIENT_FOUND_ROWS): a lease
    renewal that found its lock row and wrote the value it held said "lost", and the run printed that it lost its
    lease, then succeeded."""
    executor = backend.backend
    executor.execute("INSERT INTO processcache_meta (name, value) VALUES ('same', 'v')")
    same = "UPDATE processcache_meta SET value = 'v' WHERE name = 'same'"
    assert executor.execute(same) == 1
    with executor.transaction():
        assert executor.execute(same) == 1
