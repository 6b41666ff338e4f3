"""A database built with the first released schema upgrades in place, keeping every row."""

import sys
from pathlib import Path

import pytest
from cli_helpers import cli
from pony.orm import db_session

from processcache import ANY, CacheContext, SchemaError, connect
from processcache.entities import SCHEMA_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import schema_v1  # noqa: E402  (the frozen first schema)


def test_a_v1_database_upgrades_on_first_use_and_keeps_every_row(backend_url):
    stored = schema_v1.build(backend_url)
    with connect(backend_url, create=False) as old:
        assert "column process_job_runs.exit_signal is missing" in old.sync("check")
    with connect(backend_url) as db:  # upgrades
        assert db.sync("check") == []
        assert db.store.schema_version() == SCHEMA_VERSION
        ctx = CacheContext(db, "legacy", "nightly", "old-box")
        assert [(e.key, e.value) for e in ctx.get_cache("k0") + ctx.get_cache("k1") + ctx.get_cache("k2")] \
            == stored["entries"]
        assert [log.message for log in ctx.get_logs(machine=ANY)] == stored["logs"]
        [run] = db.history.list_runs("legacy/nightly")
        assert (run.status, run.error, run.duration, run.signal) == (*stored["run"], None)
        assert db.history.jobs()[0].expect_every == 3600
        ctx.create_cache("new", "after the upgrade")
        assert [e.value for e in ctx.get_cache("new")] == ["after the upgrade"]


def test_upgrading_can_be_left_to_the_operator(backend_url):
    schema_v1.build(backend_url)
    with pytest.raises(SchemaError, match="schema version 1; this processcache needs 2: run `processcache db upgrade`"):
        connect(backend_url, upgrade=False)
    result = cli("db", "upgrade", "-d", backend_url)
    assert result.returncode == 0 and "upgraded the schema from version 1 to 2" in result.stdout, result.stderr
    again = cli("db", "upgrade", "-d", backend_url)
    assert "at version 2 already" in again.stdout
    with connect(backend_url, upgrade=False) as db:
        assert db.sync("check") == []


def test_an_interrupted_upgrade_resumes(backend_url):
    schema_v1.build(backend_url)
    with connect(backend_url, create=False) as db, db_session:
        db.pony.execute("ALTER TABLE process_job_runs ADD COLUMN exit_signal INTEGER", {})  # step done, version not
    with connect(backend_url) as db:
        assert db.sync("check") == [] and db.store.schema_version() == 2


def test_a_newer_database_is_refused_untouched(backend_url):
    with connect(backend_url) as db, db_session:
        db.pony.execute("UPDATE processcache_meta SET value = '7' WHERE name = 'schema_version'", {})
    for attempt in (lambda: connect(backend_url), lambda: connect(backend_url).upgrade()):
        with pytest.raises(SchemaError, match="schema version 7, written by a newer processcache"):
            attempt()
    result = cli("db", "upgrade", "-d", backend_url)
    assert result.returncode == 1 and "newer processcache" in result.stderr
