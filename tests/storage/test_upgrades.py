"""A database built with the first released schema upgrades in place, keeping every row."""

import sys

import pytest
from cli_helpers import cli
from paths import HELPERS
from pony.orm import db_session

from processcache import ANY, CacheContext, SchemaError, connect
from processcache.storage.schema import CURRENT, describe

sys.path.insert(0, str(HELPERS / "fixtures"))
import schema_v1  # noqa: E402  (the frozen first schema)

KEY_INDEX = "idx_process_cache__job_id_machine_entry_key_id"
TREE_INDEX = "idx_process_cache__job_id_machine_id"
OLD_KEY_INDEX = "idx_process_cache__job_id_machine_entry_key"
JOB_KEY_INDEX = "idx_process_cache__job_id_entry_key_id"


def test_a_v1_database_upgrades_on_first_use_and_keeps_every_row(backend_url):
    stored = schema_v1.build(backend_url)
    with connect(backend_url, create=False) as old:
        assert "column process_job_runs.exit_signal is missing" in old.sync("check")
    with connect(backend_url) as db:  # upgrades
        assert db.sync("check") == []
        assert db.schema.state() == CURRENT == (2, 9)
        assert cache_indexes(db) == {KEY_INDEX, TREE_INDEX}
        ctx = CacheContext(db, "legacy", "nightly", "old-box")
        assert [(e.key, e.value) for e in ctx.get_cache("k0") + ctx.get_cache("k1") + ctx.get_cache("k2")] \
            == stored["entries"]
        assert [log.message for log in ctx.get_logs(machine=ANY)] == stored["logs"]
        [run] = db.history.list_runs("legacy/nightly")
        assert (run.status, run.error, run.duration, run.signal) == (*stored["run"], None)
        assert db.history.jobs()[0].expect_every == 3600
        ctx.create_cache("new", "after the upgrade")
        assert [e.value for e in ctx.get_cache("new")] == ["after the upgrade"]


def test_a_revision_0_database_gets_the_key_index_with_id_and_loses_the_old_one(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "g", "j", "m1")
        ctx.create_cache_many([(f"k{n % 3}", n) for n in range(30)])
        make_revision_0(db)
    with connect(backend_url, create=False) as old:
        assert old.sync("check") == [f"index {KEY_INDEX} on process_cache is missing"]
    with connect(backend_url) as db:  # upgrades
        assert db.sync("check") == [] and db.schema.state() == CURRENT
        assert cache_indexes(db) == {KEY_INDEX, TREE_INDEX}
        assert [e.value for e in CacheContext(db, "g", "j", "m1").get_cache("k1")] == list(range(1, 30, 3))


def test_a_revision_is_left_to_the_operator_with_upgrade_false_and_the_database_stays_usable(backend_url):
    with connect(backend_url) as db:
        make_revision_0(db)
    with connect(backend_url, upgrade=False) as db:  # compatible: opened as it is, not changed
        ctx = CacheContext(db, "g", "j", "m1")
        ctx.create_cache("k", 1)
        assert [e.value for e in ctx.get_cache("k")] == [1]
        assert db.schema.state() == (2, 0) and cache_indexes(db) == {OLD_KEY_INDEX, TREE_INDEX}
    result = cli("db", "upgrade", "-d", backend_url)
    assert f"upgraded the schema from version 2.0 to {describe(CURRENT)}" in result.stdout, result.stderr


def test_a_newer_revision_keeps_the_version_that_older_releases_check(backend_url):
    """Older releases read only schema_version: a revision must not change it, nor be undone."""
    with connect(backend_url) as db:
        assert db.backend.values("SELECT value FROM processcache_meta WHERE name = 'schema_version'", {}) == ["2"]
        db.backend.execute("UPDATE processcache_meta SET value = '9' WHERE name = 'schema_revision'", {})
    with connect(backend_url) as db:
        assert db.schema.state() == (2, 9) and db.sync("check") == [] and db.upgrade() == ((2, 9), (2, 9))


def test_a_revision_1_database_is_read_as_it_is_and_upgraded_to_retired_at_and_scope(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "legacy", "nightly", "old-box")
        ctx.create_cache("k", 1)
        make_revision_1(db)
    # a monitoring host running this release reads it without changing it: no column is asked for that is not there
    for command, code in [("jobs", 0), ("check", 0), ("runs", 0)]:
        result = cli(command, "-d", backend_url)
        assert result.returncode == code and result.stderr == "", (command, result.stderr)
    with connect(backend_url, read_only=True) as db:
        assert [(s.name, s.entries, s.retired_at) for s in db.jobs()] == [("legacy/nightly", 1, None)]
        assert "column process_jobs.retired_at is missing" in db.sync("check")
        assert db.schema.state() == (2, 1)
    with connect(backend_url) as db:  # upgrades
        assert db.schema.state() == CURRENT and db.sync("check") == []
        db.retire_job("legacy/nightly")
        assert db.jobs() == [] and [s.retired for s in db.jobs(include_retired=True)] == [True]
        db.backend.execute("INSERT INTO process_jobs (process_id, name, created_at)"
                        " SELECT id, 'older', created_at FROM processes", {})
        assert [s.name for s in db.jobs()] == ["legacy/older"]


def make_revision_1(db) -> None:
    """Turn a current database into what revision 1 left: process_jobs without retired_at and scope."""
    for column in ("retired_at", "scope"):
        db.backend.execute(f"ALTER TABLE process_jobs DROP COLUMN {column}", {})
    db.backend.execute("UPDATE processcache_meta SET value = '1' WHERE name = 'schema_revision'", {})


def make_revision_3(db) -> None:
    """Turn a current database into what revision 3 left: no run-control columns, no attempts or slots tables."""
    for column in ("exit_code", "attempts", "slot"):
        db.backend.execute(f"ALTER TABLE process_job_runs DROP COLUMN {column}", {})
    for table in ("process_job_attempts", "process_job_slots"):
        db.backend.execute(f"DROP TABLE {table}", {})
    db.backend.execute("UPDATE processcache_meta SET value = '3' WHERE name = 'schema_revision'", {})


def test_a_revision_3_database_runs_jobs_as_it_is_and_upgrades_to_run_control(backend_url):
    from processcache import Registry

    with connect(backend_url) as db:
        make_revision_3(db)
    calls = []
    registry = Registry()

    @registry.job("legacy", "retried", retries=1)
    def retried(ctx):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt")

    with connect(backend_url, upgrade=False) as old:  # a farm machine whose operator upgrades later
        run = retried.run(database=old, machine="m")
        assert (run.status, run.attempts) == ("succeeded", 2)
        assert old.run(run.id).attempts == [] and old.history.list_runs()[0].exit_code is None
        assert "table process_job_attempts is missing" in old.sync("check")
    with connect(backend_url) as db:  # upgrades
        assert db.schema.state() == CURRENT and db.sync("check") == []
        calls.clear()
        run = retried.run(database=db, machine="m")
        assert [attempt.status for attempt in db.run(run.id).attempts] == ["failed", "succeeded"]


def make_revision_0(db) -> None:
    """Turn a current database into what the first version 2 release left: the key index without id."""
    db.backend.execute(db.backend.dialect.drop_index(KEY_INDEX, "process_cache"))
    db.backend.execute(f"CREATE INDEX {OLD_KEY_INDEX} ON process_cache (job_id, machine, entry_key)", {})
    db.backend.execute("DELETE FROM processcache_meta WHERE name = 'schema_revision'", {})


def cache_indexes(db) -> set[str]:
    """Which of the three key-read indexes process_cache has."""
    with db_session:
        connection = db.backend.pony.get_connection()
        return {name for name in (KEY_INDEX, TREE_INDEX, OLD_KEY_INDEX)
                if db.backend.pony.provider.index_exists(connection, "process_cache", name, False)}


def test_upgrading_can_be_left_to_the_operator(backend_url):
    schema_v1.build(backend_url)
    with pytest.raises(SchemaError, match="schema version 1; this processcache needs 2: run `processcache db upgrade`"):
        connect(backend_url, upgrade=False)
    result = cli("db", "upgrade", "-d", backend_url)
    assert result.returncode == 0, result.stderr
    assert f"upgraded the schema from version 1.0 to {describe(CURRENT)}" in result.stdout
    again = cli("db", "upgrade", "-d", backend_url)
    assert f"at version {describe(CURRENT)} already" in again.stdout
    with connect(backend_url, upgrade=False) as db:
        assert db.sync("check") == []


def test_an_interrupted_upgrade_resumes(backend_url):
    schema_v1.build(backend_url)
    with connect(backend_url, create=False) as db:
        db.backend.execute("ALTER TABLE process_job_runs ADD COLUMN exit_signal INTEGER", {})  # step done, version not
    with connect(backend_url) as db:
        assert db.sync("check") == [] and db.schema.state() == CURRENT


def test_upgrading_a_database_without_processcache_tables_says_how_to_create_them(backend_url):
    connect(backend_url, create=False).close()  # there, but empty
    result = cli("db", "upgrade", "-d", backend_url)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("has no processcache tables to upgrade: `processcache db sync` creates them"), line


def test_a_revision_2_database_gets_the_index_of_job_scoped_key_reads(backend_url):
    with connect(backend_url) as db:
        CacheContext(db, "g", "j", "m1").create_cache_many([(f"k{n % 3}", n) for n in range(30)])
        db.backend.execute(db.backend.dialect.drop_index(JOB_KEY_INDEX, "process_cache"))
        db.backend.execute("UPDATE processcache_meta SET value = '2' WHERE name = 'schema_revision'", {})
    with connect(backend_url, read_only=True) as old:
        assert old.sync("check") == [f"index {JOB_KEY_INDEX} on process_cache is missing"]
    with connect(backend_url) as db:  # upgrades
        assert db.schema.state() == CURRENT and db.sync("check") == []
        assert [e.value for e in CacheContext(db, "g", "j", "m2").get_cache("k1")] == list(range(1, 30, 3))


def make_revision_6(db) -> None:
    """Turn a current database into what revision 6 left: no lock_scope, flaky or waited, no retired machines."""
    for table, column in (("process_jobs", "lock_scope"), ("process_jobs", "flaky"), ("process_job_runs", "waited")):
        db.backend.execute(f"ALTER TABLE {table} DROP COLUMN {column}", {})
    db.backend.execute("DROP TABLE process_job_machines", {})
    db.backend.execute("UPDATE processcache_meta SET value = '6' WHERE name = 'schema_revision'", {})


def test_a_revision_6_database_runs_and_judges_jobs_as_it_is_and_upgrades_to_per_machine_judgement(backend_url):
    from processcache import Registry

    with connect(backend_url) as db:
        make_revision_6(db)
    registry = Registry()

    @registry.job("ops", "logrotate", lock="machine", overlap="wait", expect_every="1m")
    def logrotate(ctx):
        pass

    with connect(backend_url, upgrade=False) as old:  # a farm machine whose operator upgrades later
        run = logrotate.run(database=old, machine="vm1")
        assert run.status == "succeeded" and old.history.list_runs()[0].waited is None
        assert old.check() == [] and old.jobs()[0].lock_scope is None
        assert "table process_job_machines is missing" in old.sync("check")
        with pytest.raises(SchemaError, match="needs schema 2.7"):
            old.retire_job("ops/logrotate", machine="vm1")
    with connect(backend_url) as db:  # upgrades
        assert db.schema.state() == CURRENT and db.sync("check") == []
        run = logrotate.run(database=db, machine="vm2")
        assert db.runs.get(run.id).waited is not None and db.jobs()[0].lock_scope == "machine"
        db.retire_job("ops/logrotate", machine="vm1")
        assert db.jobs()[0].machines == ("vm2",)
