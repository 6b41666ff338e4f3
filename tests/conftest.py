"""Fixtures: the `backend` fixture runs a test on SQLite, PostgreSQL and MariaDB.

Server tests run where PROCESSCACHE_TEST_POSTGRES_URL / PROCESSCACHE_TEST_MYSQL_URL
name a server database to connect to; each test gets a new database of its
own there (a unique name per run and test) that is dropped afterwards.
Without a URL the server variants are skipped with the reason shown, unless
PROCESSCACHE_TEST_REQUIRE_SERVERS is set (as .ci/run does): then they fail.

The ``pgbouncer`` variant reaches a PostgreSQL test database (created on the
server) through the pgbouncer in transaction pooling mode that
PROCESSCACHE_TEST_PGBOUNCER_URL names (.ci/run starts one:
tests/helpers/pgbouncer_server.py), where each transaction may run on another
server connection: every `backend_url` test runs through it too.
"""

import faulthandler
import itertools
import os
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, settings

import processcache

_TESTS = Path(__file__).resolve().parent
#: tests/helpers (workers, proxies, job files, fixtures) and each folder of tests, importable from any test: a
#: test may use another's helpers (`only_run` of the run tests), and a worker script its siblings.
for _folder in [_TESTS / "helpers", *sorted(p for p in _TESTS.iterdir() if p.is_dir() and p.name[0] not in "_.")]:
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true",
                     help="also run the soak test: 8 processes running jobs back to back on PostgreSQL")
    parser.addoption("--soak-seconds", type=float, default=180.0, help="how long the soak test runs")


def pytest_collection_modifyitems(config, items):
    """Leave out (deselected, not skipped) the soak test unless --soak asks for it."""
    soak = config.getoption("--soak")
    if soak:
        for item in items:
            if "soak" in item.keywords:  # its workers run --soak-seconds, then report
                item.add_marker(pytest.mark.timeout(config.getoption("--soak-seconds") + 600))
    left_out = [item for item in items if "soak" in item.keywords and not soak]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        gone = set(left_out)
        items[:] = [item for item in items if item not in gone]


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
def mysql_url(tmp_path):
    """A URL to a new, empty MariaDB/MySQL database (for what the original process-cache wrote there)."""
    yield from _new_database("mysql", tmp_path)


@pytest.fixture(params=["mysql", "sqlite", "postgres"])
def original_url(request, tmp_path):
    """A URL to a new database holding what the original process-cache wrote there (tests/fixtures/original/)."""
    import original_db

    (tmp_path / "original").mkdir()
    for url in _new_database(request.param, tmp_path / "original"):
        original_db.load(url)
        yield url


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
