"""A monitoring user with read-only rights on a server database runs the read commands; a run says why it cannot."""

import os
import uuid
from urllib.parse import urlsplit

import pytest
from cli_helpers import cli, seed_nightly
from conftest import SERVER_ENV, _admin

READ_COMMANDS = [["check"], ["jobs"], ["runs"], ["logs"], ["locks"], ["cache", "list", "ops/nightly", "-a"],
                 ["cache", "get", "ops/nightly", "token", "-a"], ["cache", "export", "ops/nightly"],
                 ["db", "sync", "--mode", "check"]]


@pytest.fixture
def reader_url(server_backend_url):
    """The test database's URL for a user who may only SELECT from it."""
    parts = urlsplit(server_backend_url)
    kind = "postgres" if parts.scheme.startswith("postgres") else "mysql"
    admin = os.environ[SERVER_ENV[kind]]
    user, database = f"pc_reader_{uuid.uuid4().hex[:8]}", parts.path.lstrip("/")
    seed_nightly(server_backend_url)
    if kind == "postgres":
        _admin(kind, admin, f"CREATE ROLE {user} LOGIN")
        _admin(kind, server_backend_url, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
    else:
        _admin(kind, admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'reader-pw'")
        _admin(kind, admin, f"GRANT SELECT ON {database}.* TO '{user}'@'%'")
    password = "" if kind == "postgres" else ":reader-pw"
    yield parts._replace(netloc=f"{user}{password}@{parts.hostname}:{parts.port}").geturl()
    if kind == "postgres":
        _admin(kind, server_backend_url, f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {user}")
        _admin(kind, admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")  # its grants go with it
        _admin(kind, admin, f"DROP ROLE IF EXISTS {user}")
    else:
        _admin(kind, admin, f"DROP USER '{user}'@'%'")


def test_a_read_only_user_runs_every_read_command(reader_url):
    for args in READ_COMMANDS:
        result = cli(*args, "-d", reader_url)
        assert (result.returncode, result.stderr) == (0, ""), args
    assert "ops/nightly" in cli("jobs", "-d", reader_url).stdout
    assert cli("cache", "get", "ops/nightly", "token", "-a", "-d", reader_url).stdout == '"abc"\n'


def test_a_run_as_a_read_only_user_fails_with_one_line(reader_url, tmp_path):
    job_file = tmp_path / "job.py"
    job_file.write_text("from processcache import job\n\n@job('ops', 'nightly')\ndef nightly(ctx):\n    pass\n")
    result = cli("run", job_file, "-d", reader_url)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "the database user may not change" in result.stderr and "need SELECT alone" in result.stderr
