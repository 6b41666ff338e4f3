"""Per-run pings in healthchecks.io's and Cronitor's protocols, against a real local HTTP server."""

import time

import pytest
from channel_servers import Webhook
from cli_helpers import cli

from processcache import Registry, RegistryError


@pytest.fixture
def service():
    server = Webhook()
    yield server
    server.close()


def pinged(service, count=2, within=10.0):
    deadline = time.monotonic() + within
    while len(service.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return service.received


def test_a_python_job_pings_start_and_success_with_its_output_in_healthchecks_protocol(backend_url, service):
    registry = Registry()
    spec = registry.job("pings", "nightly", ping=f"hc+{service.url}/ping/abc-uuid")(lambda ctx: print("3 rows"))
    assert spec.run(database=backend_url, machine="m").ok
    (start, _), (end, body) = pinged(service)
    rid = start.rpartition("?rid=")[2]
    assert start == f"/ping/abc-uuid/start?rid={rid}" and end == f"/ping/abc-uuid?rid={rid}" and len(rid) == 36
    assert body == "3 rows"


def exec_pinging(tmp_path, service, ping: str, script: str, exit_code: int) -> list:
    """`exec` of *script* with ``--ping`` *ping*, which must exit *exit_code*; the two pings *service* received."""
    done = cli("exec", "--job", "pings/job", "-d", f"sqlite:///{tmp_path}/p.db", "--ping", ping, "--",
               "sh", "-c", script)
    assert done.returncode == exit_code, done.stderr
    return pinged(service)


def test_a_failed_command_pings_its_exit_code_and_its_output(tmp_path, service):
    (start, _), (end, body) = exec_pinging(tmp_path, service, f"hc+{service.url}/hc/uuid-1",
                                           "echo disk full >&2; exit 4", 4)
    assert start.startswith("/hc/uuid-1/start?rid=") and end.startswith("/hc/uuid-1/4?rid=")
    assert body == "disk full"


def test_cronitor_gets_its_states_series_and_status_code(tmp_path, service):
    (start, _), (end, _) = exec_pinging(tmp_path, service, f"cronitor+{service.url}/p/key/sync",
                                        "echo partial; exit 2", 2)
    series = start.rpartition("series=")[2]
    assert start == f"/p/key/sync?state=run&series={series}"
    assert end == f"/p/key/sync?state=fail&series={series}&status_code=2&message=partial"


def test_a_skipped_run_pings_nothing(tmp_path, service):
    url = f"sqlite:///{tmp_path}/p.db"
    assert cli("exec", "--job", "pings/h", "-d", url, "--once-per", "1d", "--", "true").returncode == 0
    service.received.clear()
    skipped = cli("exec", "--job", "pings/h", "-d", url, "--once-per", "1d", "--ping", f"hc+{service.url}/x", "--",
                  "true")
    assert skipped.returncode == 75
    time.sleep(0.5)
    assert service.received == []


def test_a_service_that_is_down_fails_nothing_and_says_so(tmp_path, service):
    service.mode = "fail"
    started = time.monotonic()
    done = cli("exec", "--job", "pings/down", "-d", f"sqlite:///{tmp_path}/p.db", "--ping",
               f"hc+{service.url}/secret-uuid", "--", "true")
    assert done.returncode == 0 and time.monotonic() - started < 20
    assert "a ping was not sent" in done.stderr and "secret-uuid" not in done.stderr


@pytest.mark.parametrize("url", ["ftp://hc-ping.com/x", "https://", 42])
def test_a_ping_url_that_cannot_be_pinged_is_refused_when_the_job_is_declared(url):
    with pytest.raises(RegistryError, match="ping"):
        Registry().job("pings", "bad", ping=url)(lambda ctx: None)
