"""A pytest plugin for testing your own jobs: a fresh database, recorded runs, and a clock to move.

Installed with processcache (the ``pytest11`` entry point ``processcache``),
so a project's tests use these fixtures with no conftest line:

``processcache_db``
    A new SQLite database in the test's ``tmp_path``, closed after the test.
    ``PROCESSCACHE_DATABASE_URL`` points at it meanwhile, so code that
    connects on its own (``spec.run()`` or ``cache_session`` without a
    database, the CLI) opens it too, never your real database. So does a
    module-level ``@memoize`` that names no database: every ``memoize``
    connects again in each test that uses these fixtures (and after it), so
    none stays bound to an earlier test's database or reads its values. One
    that names a database of its own keeps using that one.
``run_job``
    ``run_job(spec, **options)`` runs a ``@job`` as cron would, recorded in
    ``processcache_db``, and returns its `RunRecord`. A run that fails fails
    the test with the job's traceback, unless ``allow_failure=True``;
    *options* are those of ``spec.run`` (``machine=``, ``overlap=``, ...).
``processcache_clock``
    ``processcache_clock.advance("2h")`` moves the time forward as processcache
    judges it: entries past their TTL are gone, leases end, ``check`` sees the
    job overdue and ``last_success()`` an earlier run. ``.now()`` is that time.
    It moves in the test's process only: a ``processcache`` command started
    as a subprocess sees the real time.

For example::

    from myjobs import import_orders

    def test_token_is_fetched_again_once_it_expired(run_job, processcache_clock):
        assert run_job(import_orders).result == "fetched a token"
        processcache_clock.advance("2h")
        assert run_job(import_orders).result == "fetched a token"

processcache judges time by the database server's clock, which only SQLite
lets a test move (`processcache.storage.clock.set_moved`): these fixtures use SQLite.
A job that connects to a PostgreSQL or MySQL server of its own keeps that
server's real time.
"""

import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .durations import parse_duration
from .records import FAILED, RunRecord
from .registry import JobSpec
from .storage import Database, clock, connect


class MovableClock:
    """The time processcache judges by, in a test: the database's clock, moved forward as the test asks."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def advance(self, duration: "str | float") -> datetime:
        """Move the time forward by *duration* (``"90s"``, ``"2h"``, ``"1d"`` or seconds); return the new time.

        Every SQLite database of the test's process moves together, as
        real time would pass: expiry and leases in SQL, and the stamps of
        runs and logs, ``check`` and ``prune`` in Python.
        """
        clock.set_moved(clock.moved() + parse_duration(duration, "time to advance"))
        return self.now()

    def now(self) -> datetime:
        """The current time as the test's database sees it (aware, UTC)."""
        return self.database.clock.now()


@pytest.fixture
def processcache_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A new processcache database (SQLite in tmp_path) for this test; PROCESSCACHE_DATABASE_URL names it meanwhile."""
    url = f"sqlite:///{tmp_path / 'processcache.db'}"
    monkeypatch.setenv("PROCESSCACHE_DATABASE_URL", url)
    _release_memoized()
    with connect(url) as database:
        yield database
    _release_memoized()


def _release_memoized() -> None:
    """Unbind every `memoize` from the database it connected to (`memo.release_contexts`), if any was used."""
    memo = sys.modules.get("processcache.cache.memo")  # never imported: no memoised function to release
    if memo is not None:
        memo.release_contexts()


@pytest.fixture
def run_job(processcache_db: Database) -> Callable[..., RunRecord]:
    """run_job(spec, allow_failure=False, **options): run a @job recorded in processcache_db; return its RunRecord."""

    def run(spec: JobSpec, *, allow_failure: bool = False, **options: Any) -> RunRecord:
        record = spec.run(database=processcache_db, **options)
        if record.status in FAILED and not allow_failure:
            pytest.fail(f"the run of {spec.group}/{spec.name} {record.status} (allow_failure=True to test that):"
                        f"\n{record.traceback or record.error}", pytrace=False)
        return record

    return run


@pytest.fixture
def processcache_clock(processcache_db: Database) -> Iterator[MovableClock]:
    """processcache's time in this test: .advance("2h") moves it forward, .now() reads it; real time again after."""
    yield MovableClock(processcache_db)
    clock.set_moved(0.0)
