"""No wait without a bound, and a retry budget that outlasts a restart.

Real `processcache run` processes talk to the real servers through
`tcpproxy.Proxy`, which forwards, stalls (a server that accepts and never
answers) or cuts (a restart: connections closed, new ones refused). The
jobs those processes run are the ``@job`` functions below (the CLI loads
this file as a job module).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2.extensions
import psycopg2.extras
import pytest
from paths import HELPERS
from tcpproxy import Proxy

from processcache import CacheContext, ConfigError, DatabaseUnavailableError, connect, job
from processcache.storage.config import parse_url

HERE = Path(__file__).resolve()
SHORT = "read_timeout=2s&retry_for=3s&connect_timeout=2"
BOUND = 30.0  # generous: at these settings a silent server ends a run in about 7 s


@job("bounded", "writer")
def writer(ctx):
    """Write entries 0, 1, 2... (BOUNDED_COUNT of them), printing each once it is committed."""
    for n in range(int(os.environ["BOUNDED_COUNT"])):
        ctx.create_cache("n", n)
        print(n, flush=True)
        time.sleep(0.01)


def start(url: str, count: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    env["BOUNDED_COUNT"] = str(count)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HELPERS), env.get("PYTHONPATH")]))  # its tcpproxy import
    # Not -q: the test reads the job's lines while it runs, which -q holds back until a failure.
    return subprocess.Popen([sys.executable, "-m", "processcache", "run", f"{HERE}:writer", "-d", url, "-m", "m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(process: subprocess.Popen, wanted: int) -> None:
    """Read the job's progress until it has committed entry *wanted*."""
    for line in process.stdout:
        if line.strip() == str(wanted):
            return
    raise AssertionError(f"the job ended early: {process.communicate()[1]}")


def finish(process: subprocess.Popen, since: float) -> tuple[float, str]:
    """Wait (within twice the bound) for *process*; return how long it took since *since*, and its stderr."""
    try:
        _, err = process.communicate(timeout=2 * BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"still running after {2 * BOUND:.0f} s: {err}") from None
    return time.monotonic() - since, err


def assert_one_line_error(err: str, proxy: Proxy, what: str) -> None:
    """The process ended with a one-line error (after any warnings), naming the database and *what* failed."""
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and what in last and f"127.0.0.1:{proxy.port}/" in last, err


def stored(url: str) -> list:
    with connect(url) as db:
        return [entry.value for entry in CacheContext(db, "bounded", "writer", "m").get_cache("n")]


@pytest.fixture
def proxied(server_backend_url):
    """(real URL, proxy): the schema made through the real URL, the proxy in front of the server."""
    connect(server_backend_url).close()
    with Proxy.before(server_backend_url) as proxy:
        yield server_backend_url, proxy


def stalled_mid_run(url: str, proxy: Proxy) -> subprocess.Popen:
    """A writer that has committed a few entries when the proxy stalls."""
    process = start(proxy.url(url) + "?" + SHORT, 100_000)
    wait_for_line(process, 5)
    proxy.stall()
    return process


def test_a_server_that_stalls_mid_run_ends_the_run_within_the_bound(proxied):
    url, proxy = proxied
    process = stalled_mid_run(url, proxy)
    took, err = finish(process, time.monotonic())
    assert process.returncode != 0 and took < BOUND, (took, err)
    assert_one_line_error(err, proxy, "lost the connection")


def test_a_server_that_stalls_at_connect_ends_the_run_within_the_bound(proxied):
    url, proxy = proxied
    proxy.stall()
    began = time.monotonic()
    process = start(proxy.url(url) + "?" + SHORT, 10)
    took, err = finish(process, began)
    assert process.returncode != 0 and 1.5 < took < BOUND, (took, err)
    assert_one_line_error(err, proxy, "cannot be reached (no answer: timed out)")


def test_sigterm_during_a_stall_ends_the_process_within_the_bound(proxied):
    url, proxy = proxied
    process = stalled_mid_run(url, proxy)
    time.sleep(0.5)  # inside the driver's wait by now
    process.send_signal(signal.SIGTERM)
    took, err = finish(process, time.monotonic())
    assert process.returncode != 0 and took < BOUND, (took, err)


def test_an_outage_of_1_5_s_mid_run_is_survived_and_every_write_stored_once(proxied):
    url, proxy = proxied
    count = 120
    process = start(proxy.url(url), count)
    wait_for_line(process, 30)
    proxy.cut(1.5)
    took, err = finish(process, time.monotonic())
    assert process.returncode == 0, err
    assert took > 1.5, "the run really waited out the outage"
    assert stored(url) == list(range(count))


def test_a_run_started_while_the_server_refuses_connections_waits_for_it(proxied):
    url, proxy = proxied
    proxy.cut(2.0)
    began = time.monotonic()
    process = start(proxy.url(url), 3)
    took, err = finish(process, began)
    assert process.returncode == 0 and took > 1.5, (took, err)
    assert stored(url) == [0, 1, 2]


def test_a_stalled_query_raises_a_lost_connection_after_the_read_timeout(proxied):
    url, proxy = proxied
    with connect(proxy.url(url) + "?read_timeout=1s&retry_for=0&connect_timeout=2") as db:
        ctx = CacheContext(db, "bounded", "in-process", "m")
        ctx.create_cache("k", "before")
        proxy.stall()
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="lost the connection to") as info:
            ctx.create_cache("k", "during")
    assert time.monotonic() - began < 5
    assert "\n" not in str(info.value) and "retry_for" in str(info.value)


def test_timeouts_in_the_url_reach_the_driver_as_numbers(server_backend_url):
    mysql = server_backend_url.startswith("mysql")
    options = "?read_timeout=5&connect_timeout=5" + ("&write_timeout=5" if mysql else "")
    with connect(server_backend_url + options) as db:
        ctx = CacheContext(db, "bounded", "options", "m")
        ctx.create_cache("k", "v")
        assert [entry.value for entry in ctx.get_cache("k")] == ["v"]
        assert db.config.read_timeout == 5.0


def test_retries_in_the_url_says_to_write_retry_for(server_backend_url):
    with pytest.raises(ConfigError, match="retry_for=") as info:
        connect(server_backend_url + "?retries=3")
    assert "\n" not in str(info.value)


def test_a_wait_callback_the_application_installed_is_kept(postgres_url):
    def theirs(conn):
        psycopg2.extras.wait_select(conn)

    previous = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(theirs)
    try:
        with connect(postgres_url) as db:
            CacheContext(db, "bounded", "theirs", "m").create_cache("k", 1)
        assert psycopg2.extensions.get_wait_callback() is theirs
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def test_ssl_disabled_false_is_false():
    assert parse_url("mysql://u@h/db?ssl_disabled=false").bind_args["ssl_disabled"] is False


def test_a_schema_change_may_wait_longer_than_the_read_timeout_and_nothing_else_may(server_backend_url):
    """An upgrade builds indexes over every run and log: on MariaDB at 10,000,000 logs one took longer than the
    read timeout (15 s), and each run that found the database to upgrade failed with a lost connection. A
    process waiting its turn for the schema lock meanwhile waits as long."""
    sleep = "SELECT pg_sleep(2)" if server_backend_url.startswith("postgres") else "SELECT SLEEP(2)"
    with connect(server_backend_url + "?read_timeout=1s&retry_for=0&connect_timeout=2") as db:
        with db.backend.ddl():
            db.backend.select(sleep)  # as a statement of a schema change that takes 2 s
        with pytest.raises(DatabaseUnavailableError, match="lost the connection to"):
            db.backend.select(sleep)  # the read timeout is the URL's again
        with db.backend.ddl():
            db.backend.select(sleep)
        CacheContext(db, "bounded", "after", "m").create_cache("k", "v")
