"""--read-url (PROCESSCACHE_READ_URL): the commands that only read read there (a standby); whatever writes or
judges alerts reads and writes --database. Here the "standby" is a second database holding other runs, so
a command's output says which of the two it read; a real standby's lag is in tests/system/test_patroni.py."""

import json

import pytest
from channel_servers import Webhook
from cli_helpers import cli, seed_nightly

from processcache import connect

FAILING = """
from processcache import job

@job("etl", "crm")
def crm(ctx):
    raise ConnectionError("the CRM answered 503")
"""


def databases(primary: str, tmp_path) -> tuple[str, str]:
    """(*primary*, a read URL): ops/nightly's run is on the read database alone, the primary is empty."""
    read_url = f"sqlite:///{tmp_path / 'standby.db'}"
    seed_nightly(read_url)
    connect(primary).close()
    return primary, read_url


@pytest.fixture
def two(backend_url, tmp_path):
    """`databases` with a primary of each kind."""
    return databases(backend_url, tmp_path)


@pytest.mark.slow
def test_the_read_commands_read_the_read_url(tmp_path):
    primary, read_url = databases(f"sqlite:///{tmp_path / 'primary.db'}", tmp_path)
    page = tmp_path / "report.html"
    for command in (["jobs", "--json"], ["runs", "--json"], ["logs", "ops/nightly", "--json"], ["check", "--json"],
                    ["metrics"], ["report", "--html", page]):
        directly = cli(*command, "-d", read_url)
        for given in ({"PROCESSCACHE_READ_URL": read_url}, {}):
            read = cli(*command, *([] if given else ["--read-url", read_url]),
                       env={"PROCESSCACHE_DATABASE_URL": primary, **given})
            assert (read.returncode, read.stdout) == (directly.returncode, directly.stdout), (command, read.stderr)
            assert read.stderr == directly.stderr or command[0] == "report", (command, read.stderr)
    assert "ops/nightly" in page.read_text()
    assert json.loads(cli("jobs", "--json", "-d", primary).stdout) == []


def test_what_writes_or_judges_alerts_uses_the_database_and_never_the_read_url(two, tmp_path):
    primary, read_url = two
    env = {"PROCESSCACHE_DATABASE_URL": primary, "PROCESSCACHE_READ_URL": read_url}
    (tmp_path / "failing.py").write_text(FAILING)
    assert cli("run", "-q", f"{tmp_path / 'failing.py'}:crm", "-m", "web1", env=env).returncode == 1
    receiver = Webhook()
    try:
        notified = cli("check", "--json", "--notify", receiver.url, env=env)
    finally:
        receiver.close()
    assert [problem["job"] for problem in json.loads(notified.stdout)["problems"]] == ["etl/crm"], notified.stdout
    assert json.loads(cli("check", "--json", env=env).stdout)["ok"]  # without --notify: the read URL's
    assert cli("jobs", "retire", "ops/nightly", env=env).returncode != 0  # not on the primary
    with connect(read_url, read_only=True) as standby:
        assert [job.name for job in standby.jobs()] == ["ops/nightly"]
    with connect(primary, read_only=True) as database:
        assert [job.name for job in database.jobs()] == ["etl/crm"]


def test_a_database_that_is_no_standby_has_no_replay_lag(backend):
    assert backend.replay_lag() is None
