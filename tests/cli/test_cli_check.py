"""The checker's crontab line: `check -q` mails only what needs a person, `check --ping` is watched from outside,
and a database outage reads as one plain line."""

import time

import pytest
from channel_servers import Webhook
from cli_helpers import cli
from tcpproxy import Proxy

FAILING = """
from processcache import job

@job("etl", "crm")
def crm(ctx):
    raise ConnectionError("the CRM answered 503")

@job("etl", "erp")
def erp(ctx):
    raise ConnectionError("the ERP answered 502")
"""


@pytest.fixture
def receiver():
    server = Webhook()
    yield server
    server.close()


def received(server: Webhook, count: int, within: float = 10.0) -> list:
    deadline = time.monotonic() + within
    while len(server.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.received


def fail(url: str, tmp_path, job: str, machine: str) -> None:
    jobs = tmp_path / "etl.py"
    jobs.write_text(FAILING)
    assert cli("run", "-q", "--job", job, f"{jobs}:{job.split('/')[1]}", "-m", machine, "-d", url).returncode == 1


def test_check_q_prints_nothing_while_its_alerts_go_out_and_stderr_only_what_needs_a_person(backend_url, tmp_path,
                                                                                            receiver):
    fail(backend_url, tmp_path, "etl/crm", "vm1")
    # The README's old line: check --notify ... > /dev/null. Its stderr is what cron mails.
    alerted = cli("check", "--notify", receiver.url, "-d", backend_url)
    assert alerted.returncode == 1 and alerted.stderr == "", alerted.stderr
    assert "etl/crm failing: 1 message(s) queued" in alerted.stdout and ": sent" in alerted.stdout
    assert len(received(receiver, 1)) == 1
    fail(backend_url, tmp_path, "etl/erp", "vm2")
    quiet = cli("check", "-q", "--notify", receiver.url, "-d", backend_url)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (1, "", "")
    assert [body["job"] for _path, body in received(receiver, 2)] == ["etl/crm", "etl/erp"]
    fail(backend_url, tmp_path, "etl/crm", "vm2")  # still failing: no change, nothing to say
    with_json = cli("check", "--json", "--notify", receiver.url, "-d", backend_url)
    assert with_json.returncode == 1 and with_json.stderr == ""
    assert '"changes": []' in with_json.stdout and '"deliveries": []' in with_json.stdout


def test_check_q_says_in_one_line_on_stderr_a_message_it_could_not_send(backend_url, tmp_path, receiver):
    receiver.mode = "fail"
    fail(backend_url, tmp_path, "etl/crm", "vm1")
    quiet = cli("check", "-q", "--notify", receiver.url, "-d", backend_url)
    assert quiet.returncode == 1 and quiet.stdout == ""
    [line] = quiet.stderr.splitlines()
    assert line.startswith("processcache: message 1 to http://127.0.0.1:") and "was not sent: " in line
    assert "answered HTTP 500" in line


def test_check_ping_pings_each_completed_check_problems_or_not(backend_url, tmp_path, receiver):
    (tmp_path / "ok.py").write_text("from processcache import job\n\n@job('etl', 'ok')\ndef ok(ctx):\n    pass\n")
    assert cli("run", "--job", "etl/ok", tmp_path / "ok.py", "-m", "vm1", "-d", backend_url).returncode == 0
    well = cli("check", "-q", "--ping", f"{receiver.url}/ping/checker-uuid", "-d", backend_url)
    assert well.returncode == 0 and well.stdout + well.stderr == ""
    fail(backend_url, tmp_path, "etl/crm", "vm2")
    assert cli("check", "--ping", f"{receiver.url}/ping/checker-uuid", "-d", backend_url).returncode == 1
    paths = [path for path, _body in received(receiver, 2)]
    assert [path.partition("?")[0] for path in paths] == ["/ping/checker-uuid", "/ping/checker-uuid"], paths


def unreadable(url: str, tmp_path, proxy: Proxy) -> str:
    """*url*'s database made unreadable: a file that is no database (SQLite), a server whose port is closed."""
    if url.startswith("sqlite"):
        junk = tmp_path / "junk.db"
        junk.write_text("not a database at all\n" * 100)
        junk.chmod(0o600)
        return f"sqlite:///{junk}"
    proxy.cut(300)
    return proxy.url(url) + "?retry_for=1s"


def test_check_ping_tells_the_watcher_of_a_database_it_cannot_read(backend_url, tmp_path, receiver):
    with Proxy.before("postgresql://127.0.0.1:1" if backend_url.startswith("sqlite") else backend_url) as proxy:
        url = unreadable(backend_url, tmp_path, proxy)
        down = cli("check", "-q", "--ping", f"{receiver.url}/ping/checker-uuid", "-d", url)
    assert down.returncode == 1 and down.stdout == "" and len(down.stderr.splitlines()) == 1, down.stderr
    [(path, body)] = received(receiver, 1)
    assert path.startswith("/ping/checker-uuid/fail?") and body and body in down.stderr, (path, body)


def test_a_ping_url_that_is_not_one_fails_the_crontab_line_before_any_database_opens(tmp_path):
    bad = cli("check", "--ping", "hc-ping.com/uuid", "-d", f"sqlite:///{tmp_path}/none.db")
    assert bad.returncode == 2 and "is not an http(s) URL with a host" in bad.stderr


def test_an_outage_is_one_plain_line_per_crontab_line_and_the_checkers_fail_ping(server_backend_url, tmp_path,
                                                                                  receiver):
    """Point 12, on the servers (a SQLite file has no outage of this kind): every crontab line of every machine
    mails one line that names the outage (which database, why, since when) and what it cost, within retry_for."""
    jobs = tmp_path / "etl.py"
    jobs.write_text(FAILING)
    with Proxy.before(server_backend_url) as proxy:
        proxy.cut(300)
        url = proxy.url(server_backend_url) + "?retry_for=1s"
        where = url.partition("?")[0]
        for machine in ("vm1", "vm2"):
            began = time.monotonic()
            down = cli("run", "-q", "--job", "etl/crm", f"{jobs}:crm", "-m", machine, "-d", url)
            assert down.returncode == 1 and time.monotonic() - began < 6
            [line] = down.stderr.splitlines()
            assert line.startswith("processcache: the database at ") and f"{where} cannot be reached" in line, line
            assert "(connection refused) since " in line and " UTC; tried again for 1" in line, line
            assert line.endswith(": the run was not recorded, and the job did not run"), line
        checker = cli("check", "-q", "--ping", f"{receiver.url}/ping/checker-uuid", "-d", url)
    [line] = checker.stderr.splitlines()
    assert f"{where} cannot be reached (connection refused) since " in line, line
    [(path, body)] = received(receiver, 1)
    assert path.startswith("/ping/checker-uuid/fail?") and "cannot be reached (connection refused)" in body
