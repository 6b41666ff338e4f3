"""Fixtures: the `backend` fixture runs a test on SQLite, PostgreSQL and MariaDB.

Server tests run where PROCESSCACHE_TEST_POSTGRES_URL / PROCESSCACHE_TEST_MYSQL_URL
name a server database to connect to; each test gets a new database of its
own there (a unique name per run and test) that is dropped afterwards.
Without a URL the server variants are skipped with the reason shown, unless
PROCESSCACHE_TEST_REQUIRE_SERVERS is set (as .ci/run does): then they fail.

The ``pgbouncer`` variant reaches a PostgreSQL test database (created on the
server) through the pgbouncer in transaction pooling mode that
PROCESSCACHE_TEST_PGBOUNCER_URL names (.ci/run starts one:
tests/pgbouncer_server.py), where each transaction may run on another
server connection. It runs the tests of `PGBOUNCER_TESTS`, which cover
every storage path; PROCESSCACHE_TEST_PGBOUNCER_ALL=1 runs every
`backend_url` test through it.
"""

import faulthandler
import itertools
import os
import sys
import threading
import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, settings

import processcache


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true",
                     help="also run the soak test: 8 processes running jobs back to back on PostgreSQL")
    parser.addoption("--soak-seconds", type=float, default=180.0, help="how long the soak test runs")


def pytest_collection_modifyitems(config, items):
    """Leave out (deselected, not skipped) the soak test unless --soak asks for it, and the pgbouncer
    variants of the tests outside `PGBOUNCER_TESTS` unless PROCESSCACHE_TEST_PGBOUNCER_ALL is set."""
    soak = config.getoption("--soak")
    if soak:
        for item in items:
            if "soak" in item.keywords:  # its workers run --soak-seconds, then report
                item.add_marker(pytest.mark.timeout(config.getoption("--soak-seconds") + 600))
    left_out = [item for item in items if ("soak" in item.keywords and not soak) or _pgbouncer_left_out(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        gone = set(left_out)
        items[:] = [item for item in items if item not in gone]


#: The `backend_url` tests that also run through pgbouncer: a module (all its tests) or a module's test. Each
#: storage path is there (the executor and its transactions, savepoints and batches; the cache; runs, locks,
#: leases and heartbeats; fencing; schema creation racing, checks and upgrades; alerts; logs, reports, prune,
#: retire, metrics; processes writing at once), leaving out most of the slow variants of the same paths: every
#: test through pgbouncer would add some five minutes to CI's run (PROCESSCACHE_TEST_PGBOUNCER_ALL=1 runs them).
PGBOUNCER_TESTS = frozenset({
    "test_backend", "test_cache_features",
    "test_cache::test_create_cache_appends_under_a_key_and_updates_tree_and_results",
    "test_cache::test_get_cache_reads_oldest_first_from_the_database",
    "test_cache::test_a_five_megabyte_value_is_never_truncated",
    "test_cache::test_scope_machine_keeps_the_originals_cache_per_group_job_and_machine",
    "test_locks::test_eight_processes_contending_200_times_never_hold_the_lock_together",
    "test_locks::test_an_expired_lease_can_be_taken_and_its_run_is_marked_lost",
    "test_locks::test_a_lock_is_held_by_one_run_until_released",
    "test_locks::test_heartbeats_keep_a_long_run_alive_past_its_lease",
    "test_locks::test_overlap_wait_waits_for_the_holder_or_gives_up",
    "test_fencing::test_a_heartbeat_learns_that_its_lock_was_taken_over",
    "test_fencing::test_finish_moves_a_run_out_of_running_only",
    "test_fencing::test_a_run_whose_lock_was_taken_over_can_write_nothing_and_ends_lost",
    "test_fencing::test_a_run_still_holding_an_expired_lease_nobody_took_writes_and_succeeds",
    "test_fencing::test_a_memoised_computation_longer_than_its_lease_is_computed_once",
    "test_schema_guard::test_a_dropped_table_is_listed_by_check_and_recreated_by_sync",
    "test_schema_guard::test_a_newer_revision_is_used_as_it_is_and_its_indexes_are_not_put_back",
    "test_upgrades::test_a_v1_database_upgrades_on_first_use_and_keeps_every_row",
    "test_upgrades::test_an_interrupted_upgrade_resumes",
    "test_upgrades::test_a_revision_0_database_gets_the_key_index_with_id_and_loses_the_old_one",
    "test_alerts::test_checks_at_the_same_moment_on_many_machines_send_one_alert",
    "test_alerts::test_three_failures_then_a_recovery_send_exactly_two_alerts_per_channel",
    "test_run_states::test_runs_are_stamped_by_the_servers_clock_so_check_and_prune_agree_across_machines",
    "test_run_states::test_two_threads_running_one_waiting_job_take_turns_instead_of_failing",
    "test_run_states::test_spec_run_never_returns_a_running_record",
    "test_logs::test_get_logs_pages_with_offset_and_limit",
    "test_logs::test_logs_across_a_whole_group",
    "test_history::test_prune_in_batches",
    "test_history::test_prune_expired_deletes_every_batch_not_only_the_first",
    "test_history::test_a_dead_run_past_its_lease_is_lost_and_not_running_before_anyone_takes_its_lock",
    "test_history::test_check_reports_each_kind_of_problem",
    "test_retire::test_delete_removes_the_jobs_runs_logs_and_entries_and_nothing_of_its_neighbours",
    "test_retire::test_a_retired_job_leaves_check_and_jobs_and_keeps_its_history",
    "test_reports::test_every_report_of_the_cli_is_a_typed_method_of_database",
    "test_reports::test_jobs_shows_a_run_in_progress_not_the_copies_skipped_after_it",
    "test_metrics::test_the_metrics_say_what_each_job_did_on_each_machine",
    "test_concurrency::test_four_processes_appending_500_each_store_exactly_2000",
    "test_concurrency::test_four_processes_running_a_never_seen_job_at_once_on_a_fresh_database",
    "test_cache_concurrency::test_set_cache_under_four_writers_and_four_readers",
})


def _pgbouncer_left_out(item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("backend_url") != "pgbouncer":
        return False
    module = item.module.__name__.rpartition(".")[2]
    chosen = module in PGBOUNCER_TESTS or f"{module}::{item.originalname}" in PGBOUNCER_TESTS
    return not chosen and not os.environ.get("PROCESSCACHE_TEST_PGBOUNCER_ALL")


#: How long after its time limit a test still running is ended with the whole run (see below).
BACKSTOP_GRACE = 60.0


def _time_limit(item) -> float:
    """The test's limit as pytest-timeout reads it: its marker, else --timeout, else the ini's (0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        return float(marker.kwargs.get("timeout", marker.args[0] if marker.args else 0) or 0)
    given = item.config.getoption("timeout", None)
    return float(given if given is not None else item.config.getini("timeout") or 0)


def _end_the_run(item, limit: float) -> None:
    """Show what the stuck test printed and where every thread is, then exit 1 (pytest-timeout's thread way).

    All of it goes to stderr: an xdist worker's stdout is /dev/null, and os._exit flushes no buffer.
    """
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
        out, err = capture.read_global_capture()
        sys.stderr.write(out)
        sys.stderr.write(err)
    sys.stderr.write(f"\n+++ {item.nodeid} is still running {BACKSTOP_GRACE:.0f}s after its {limit:g}s time limit"
                     " (stuck where no signal reaches it, as in a driver's C code); the stacks of every thread:\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A backstop to pytest-timeout's signal, which fails a test at its limit and goes on with the next.

    A test blocked in C code (libpq waiting on the server; psycopg2 retries
    the interrupted wait) sees the signal only when the call returns, which
    may be never. A timer thread then ends the whole run, so CI fails within
    minutes and names the test instead of running out of time. Under
    pytest-xdist it ends the worker process: xdist reports the test failed
    ("worker crashed while running ...") and goes on with a new worker.
    """
    limit = _time_limit(item)
    timer = threading.Timer(limit + BACKSTOP_GRACE, _end_the_run, (item, limit)) if limit > 0 else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


@pytest.fixture
def pytester(pytester, monkeypatch):
    """pytester whose runs are a user's plain pytest, not an xdist worker's (xdist marks its workers' environment:
    pytest-benchmark, where installed, then warns, and the users' tests run with -W error)."""
    for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
    return pytester


settings.register_profile(
    "default", max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["sqlite", "postgres", "mysql", "pgbouncer"]
SERVER_ENV = {"postgres": "PROCESSCACHE_TEST_POSTGRES_URL", "mysql": "PROCESSCACHE_TEST_MYSQL_URL",
              "pgbouncer": "PROCESSCACHE_TEST_PGBOUNCER_URL"}
_RUN = uuid.uuid4().hex[:8]
_counter = itertools.count()


def server_url(kind: str) -> str:
    """The admin URL of a test server, or skip (fail under CI) when none is set."""
    url = os.environ.get(SERVER_ENV[kind])
    if not url:
        reason = f"{SERVER_ENV[kind]} is not set: the {kind} variant did not run"
        if os.environ.get("PROCESSCACHE_TEST_REQUIRE_SERVERS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def _admin(kind: str, url: str, statement: str) -> None:
    parts = urlsplit(url)
    common = {"host": parts.hostname or "localhost", "user": parts.username or None,
              "password": parts.password or None}
    if parts.port:
        common["port"] = parts.port
    if kind == "postgres":
        import psycopg2

        conn = psycopg2.connect(dbname=parts.path.lstrip("/"), **common)
        conn.autocommit = True
    else:
        import pymysql

        common["password"] = common["password"] or ""
        conn = pymysql.connect(database=parts.path.lstrip("/"), autocommit=True, **common)
    try:
        conn.cursor().execute(statement)
    finally:
        conn.close()


def _new_database(kind: str, tmp_path):
    """Yield a URL to a new, empty database of *kind*; drop it afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if kind == "pgbouncer":  # created and dropped on the server, used through pgbouncer
        through = urlsplit(server_url("pgbouncer")).netloc
        for url in _new_database("postgres", tmp_path):
            yield urlsplit(url)._replace(netloc=through).geturl()
        return
    admin = server_url(kind)
    name = f"pc_test_{_RUN}_{os.getpid()}_{next(_counter)}"
    if kind == "postgres":
        _admin("postgres", admin, f"CREATE DATABASE {name}")
    else:
        _admin("mysql", admin, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield urlsplit(admin)._replace(path="/" + name).geturl()
    if kind == "postgres":
        _admin("postgres", admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        _admin("mysql", admin, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=BACKENDS)
def backend_url(request, tmp_path):
    """A URL to a new, empty database of each kind."""
    yield from _new_database(request.param, tmp_path)


@pytest.fixture(params=["postgres", "mysql"])
def server_backend_url(request, tmp_path):
    """A URL to a new, empty database on each server (for faults only a server has)."""
    yield from _new_database(request.param, tmp_path)


@pytest.fixture
def postgres_url(tmp_path):
    """A URL to a new, empty PostgreSQL database (for what only PostgreSQL does)."""
    yield from _new_database("postgres", tmp_path)


@pytest.fixture
def backend(backend_url):
    """A connected processcache Database on each backend, tables created."""
    with processcache.connect(backend_url) as db:
        yield db


@pytest.fixture
def ctx(backend):
    """A context of a fresh job on machine `m1`, inside a recorded run."""
    with processcache.cache_session("test-group", "test-job", machine="m1", database=backend) as context:
        yield context


@pytest.fixture
def secret_url(server_backend_url):
    """The server test database's URL with a password that is a unique marker.

    PostgreSQL here trusts local connections, so any password logs in;
    MariaDB gets a user of its own with the marker as its password.
    """
    marker = f"Sekr3t{uuid.uuid4().hex[:10]}"
    parts = urlsplit(server_backend_url)
    if parts.scheme.startswith("postgres"):
        yield parts._replace(netloc=f"{parts.username}:{marker}@{parts.hostname}:{parts.port or 5432}").geturl(), marker
        return
    admin = os.environ[SERVER_ENV["mysql"]]
    user = f"pc_{uuid.uuid4().hex[:8]}"
    _admin("mysql", admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{marker}'")
    _admin("mysql", admin, f"GRANT ALL ON {parts.path.lstrip('/')}.* TO '{user}'@'%'")
    yield parts._replace(netloc=f"{user}:{marker}@{parts.hostname}:{parts.port or 3306}").geturl(), marker
    _admin("mysql", admin, f"DROP USER '{user}'@'%'")
