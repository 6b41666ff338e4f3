"""Fixtures: the `backend` fixture runs a test on SQLite, PostgreSQL and MariaDB.

Server tests run where PROCESSCACHE_TEST_POSTGRES_URL / PROCESSCACHE_TEST_MYSQL_URL
name a server database to connect to; each test gets a new database of its
own there (a unique name per run and test) that is dropped afterwards.
Without a URL the server variants are skipped with the reason shown, unless
PROCESSCACHE_TEST_REQUIRE_SERVERS is set (as .ci/run does): then they fail.
"""

import itertools
import os
import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, settings

import processcache

settings.register_profile(
    "default", max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["sqlite", "postgres", "mysql"]
SERVER_ENV = {"postgres": "PROCESSCACHE_TEST_POSTGRES_URL", "mysql": "PROCESSCACHE_TEST_MYSQL_URL"}
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


@pytest.fixture(params=BACKENDS)
def backend_url(request, tmp_path):
    """A URL to a new, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    admin = server_url(request.param)
    name = f"pc_test_{_RUN}_{os.getpid()}_{next(_counter)}"
    if request.param == "postgres":
        _admin("postgres", admin, f"CREATE DATABASE {name}")
    else:
        _admin("mysql", admin, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield urlsplit(admin)._replace(path="/" + name).geturl()
    if request.param == "postgres":
        _admin("postgres", admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        _admin("mysql", admin, f"DROP DATABASE IF EXISTS {name}")


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
