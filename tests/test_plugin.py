"""The pytest plugin (`processcache.testing`), run as a user runs it: their jobs, their test file, no conftest.

Each test writes a user's project with pytester and runs pytest on it; the
plugin comes from the installed entry point alone (one test checks that in a
new process).
"""

import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points

import processcache
from processcache.storage import clock

pytest_plugins = ["pytester"]

#: A user's jobs, as they would declare them: an expiring token, an incremental import, a schedule for `check`.
USER_JOBS = '''
from processcache import job


@job("shop", "import-orders", expect_every="1h")
def import_orders(ctx):
    previous = ctx.last_success()
    if ctx.latest("token") is None:
        ctx.create_cache("token", "secret", ttl="1h")
        fetched = True
    else:
        fetched = False
    since = None if previous is None else previous.started_at.isoformat()
    return {"fetched_token": fetched, "since": since}


@job("shop", "broken")
def broken(ctx):
    raise ValueError("the shop's API said no")
'''

HEADER = '''
from datetime import datetime, timedelta

from myjobs import broken, import_orders
'''


def write_users_project(pytester, tests: str) -> None:
    """The user's jobs and *tests* in a folder of their own, with no conftest."""
    pytester.makepyfile(myjobs=USER_JOBS, test_users_jobs=HEADER + tests)
    assert not (pytester.path / "conftest.py").exists()


def run_users_tests(pytester, tests: str):
    """Run the user's *tests* (in this process: the plugin is loaded for it as for a new one)."""
    write_users_project(pytester, tests)
    return pytester.runpytest("-W", "error")


def test_a_users_test_of_their_job_passes_with_the_fixtures_of_the_installed_plugin(pytester):
    result = run_users_tests(pytester, '''
def test_the_token_is_fetched_once_then_reused(run_job):
    assert run_job(import_orders).result["fetched_token"]
    assert not run_job(import_orders).result["fetched_token"]
''')
    result.assert_outcomes(passed=1)


def test_a_wrong_expectation_in_a_users_test_fails_it(pytester):
    result = run_users_tests(pytester, '''
def test_the_token_is_fetched_on_every_run(run_job):
    assert run_job(import_orders).result["fetched_token"]
    assert run_job(import_orders).result["fetched_token"]
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert False*"])


def test_the_fixtures_come_from_the_entry_point_without_a_conftest_or_p_option(pytester):
    assert [point.value for point in entry_points(group="pytest11", name="processcache")] == ["processcache.testing"]
    write_users_project(pytester, '''
def test_runs(run_job, processcache_db, processcache_clock):
    assert run_job(import_orders).ok
''')
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=1)
    without = pytester.runpytest_subprocess("-W", "error", "-p", "no:processcache")
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines(["*fixture 'run_job' not found*"])


def test_each_test_gets_a_fresh_database_that_code_connecting_on_its_own_uses_too(pytester):
    result = run_users_tests(pytester, '''
import processcache


def test_first(run_job, processcache_db):
    assert run_job(import_orders).result["fetched_token"]


def test_second_starts_empty_and_spec_run_without_a_database_records_there(processcache_db):
    assert import_orders.run(machine="cron-1").result["fetched_token"]
    [summary] = [s for s in processcache_db.history.jobs() if s.name == "shop/import-orders"]
    assert summary.last_run.machine == "cron-1"
''')
    result.assert_outcomes(passed=2)


def test_a_job_that_fails_fails_the_test_with_its_traceback_unless_the_test_expects_it(pytester):
    result = run_users_tests(pytester, '''
def test_expects_the_failure(run_job):
    record = run_job(broken, allow_failure=True)
    assert record.status == "failed" and "the shop's API said no" in record.error


def test_does_not_expect_it(run_job):
    run_job(broken)
''')
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the run of shop/broken failed*", "*ValueError: the shop's API said no*"])


def test_advancing_the_clock_expires_an_entry_past_its_ttl(pytester):
    result = run_users_tests(pytester, '''
def test_the_token_is_fetched_again_once_it_expired(run_job, processcache_clock):
    assert run_job(import_orders).result["fetched_token"]
    processcache_clock.advance("59m")
    assert not run_job(import_orders).result["fetched_token"]
    processcache_clock.advance("2h")
    assert run_job(import_orders).result["fetched_token"]
''')
    result.assert_outcomes(passed=1)


def test_advancing_the_clock_makes_check_report_the_job_overdue(pytester):
    result = run_users_tests(pytester, '''
def test_an_hourly_job_is_overdue_two_hours_later(run_job, processcache_db, processcache_clock):
    run_job(import_orders)
    assert processcache_db.check() == []
    processcache_clock.advance("2h")
    assert [problem.kind for problem in processcache_db.check()] == ["overdue"]
''')
    result.assert_outcomes(passed=1)


def test_after_advancing_the_clock_last_success_sees_the_earlier_run_as_earlier(pytester):
    result = run_users_tests(pytester, '''
def test_the_second_import_starts_from_the_first(run_job, processcache_clock):
    first = run_job(import_orders)
    processcache_clock.advance("2h")
    second = run_job(import_orders)
    assert datetime.fromisoformat(second.result["since"]) == first.started_at
    assert second.started_at - first.started_at >= timedelta(hours=2)
    assert abs(processcache_clock.now() - second.finished_at) < timedelta(minutes=1)
''')
    result.assert_outcomes(passed=1)


def test_the_clock_is_real_again_in_the_next_test(pytester):
    result = run_users_tests(pytester, '''
from datetime import UTC


def test_moves_it(processcache_clock):
    processcache_clock.advance("1d")


def test_sees_the_real_time(processcache_clock):
    assert abs(processcache_clock.now() - datetime.now(UTC)) < timedelta(minutes=1)
''')
    result.assert_outcomes(passed=2)


def test_moved_time_moves_sql_and_stamps_together_on_sqlite_and_leaves_a_servers_clock_real(backend):
    with processcache.cache_session("plugin", "moved", machine="m", database=backend) as ctx:
        ctx.create_cache("token", "secret", ttl="1h")
    try:
        clock.set_moved(7200)
        ahead = timedelta(hours=2) if backend.backend.dialect.name == "sqlite" else timedelta(0)
        assert abs(backend.clock.now() - datetime.now(UTC) - ahead) < timedelta(minutes=1)
        with processcache.cache_session("plugin", "moved", machine="m", database=backend) as ctx:
            assert ctx.has_cache_key("token") is (backend.backend.dialect.name != "sqlite")
            assert abs(ctx.run.started_at - datetime.now(UTC) - ahead) < timedelta(minutes=1)
    finally:
        clock.set_moved(0.0)
    assert abs(backend.clock.now().timestamp() - time.time()) < 60


#: A user's module-level memoised function that names no database, as a service or a job library declares one.
USER_MEMO = '''
import processcache

calls = []


@processcache.memoize("rates", ttl="6h")
def exchange_rate(currency):
    calls.append(currency)
    return len(calls)
'''


def test_a_module_level_memoize_that_names_no_database_uses_each_tests_own_database(pytester):
    """It used to stay bound to the first test's database: the second test read the first test's value."""
    pytester.makepyfile(rates=USER_MEMO)
    result = run_users_tests(pytester, '''
from processcache import job
from rates import calls, exchange_rate


@job("shop", "prices")
def prices(ctx):
    return exchange_rate("EUR")


def test_first(processcache_db):
    assert exchange_rate("EUR") == 1
    assert processcache_db.cache.key_stats(processcache_db.history.job_id("rates/memoize"), None)


def test_second_computes_again_and_stores_in_its_own_database(processcache_db):
    assert exchange_rate("EUR") == 2
    assert exchange_rate("EUR") == 2
    assert processcache_db.cache.key_stats(processcache_db.history.job_id("rates/memoize"), None)


def test_a_job_that_calls_it_reads_this_tests_database(run_job):
    assert run_job(prices).result == 3
    assert run_job(prices).result == 3
''')
    result.assert_outcomes(passed=3)
