"""Alerts on changes: `check --notify` against a real local webhook and a real local SMTP server."""

import subprocess
import sys
import time

import pytest
from channel_servers import Mailbox, Webhook
from cli_helpers import cli

from processcache import Registry, connect
from processcache.monitor.check import judge


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def mailbox():
    server = Mailbox()
    yield server
    server.close()


def run_job(url: str, fails: bool, machine: str = "web1", **options):
    registry = Registry()

    @registry.job("shop", "sync", **{"alert_after": 3, **options})
    def sync(ctx):
        ctx.create_log("fetched the price list")
        if fails:
            raise ConnectionError("the supplier's API answered 503")

    return sync.run(database=url, machine=machine)


def check(url: str, *channels: str, machine_env: str = "a"):
    args = [arg for channel in channels for arg in ("--notify", channel)]
    return cli("check", "-d", url, *args, env={"CHECKER": machine_env})


def test_three_failures_then_a_recovery_send_exactly_two_alerts_per_channel(backend_url, webhook, mailbox):
    hook = webhook.url + "/hooks/secret-token-123"
    steps = [True, True, True, True, False]  # alert_after=3: the third failure alerts; the success recovers
    for fails in steps:
        run_job(backend_url, fails)
        for checker in ("a", "b"):  # two machines run check every minute
            done = check(backend_url, hook, mailbox.url, machine_env=checker)
            assert done.returncode == (1 if fails else 0), done.stderr
            assert "secret-token-123" not in done.stdout + done.stderr
    events = [body["event"] for _, body in webhook.received]
    assert events == ["failing", "recovered"]
    failing, recovered = (body for _, body in webhook.received)
    assert failing["text"] == "shop/sync is failing: failed: ConnectionError: the supplier's API answered 503"
    assert (failing["job"], failing["kind"], failing["failures"], failing["machine"]) == ("shop/sync", "failed", 3,
                                                                                         "web1")
    assert "fetched the price list" in failing["log_tail"] and failing["error"].startswith("ConnectionError")
    assert recovered["text"] == "shop/sync recovered after 4 failed runs"
    assert [path for path, _ in webhook.received] == ["/hooks/secret-token-123"] * 2
    subjects = [message["Subject"] for message in mailbox.messages]
    assert subjects == ["[processcache] shop/sync is failing: failed: ConnectionError: the supplier's API answered 503",
                        "[processcache] shop/sync recovered after 4 failed runs"]
    assert mailbox.messages[0]["To"] == "ops@example.org"


def test_a_check_that_finds_jobs_failing_as_before_writes_nothing(backend_url):
    """check --notify runs every minute, and hundreds of jobs of a farm may be failing: one that has not failed
    again since the last check costs no write; one that has, one (its count, for "recovered after N")."""
    from processcache.monitor.alerts import update_states

    for _ in range(3):
        run_job(backend_url, fails=True)
    with connect(backend_url) as db:
        update_states(db, judge(db), [])  # shop/sync becomes failing, after 3 failed runs
        writes: list[str] = []
        execute = db.backend.execute

        def counted(sql, params=None):
            if not sql.startswith("SET LOCAL"):  # PostgreSQL's plain plans (`reports.plain_plans`) write nothing
                writes.append(sql)
            return execute(sql, params)

        db.backend.execute = counted
        update_states(db, judge(db), [])
        assert writes == []
        run_job(backend_url, fails=True)
        update_states(db, judge(db), [])
        assert len(writes) == 1 and writes[0].startswith("UPDATE process_job_alerts SET failures")
        assert db.alerts.states()[db.history.job_id("shop/sync")].failures == 4


def test_checks_at_the_same_moment_on_many_machines_send_one_alert(backend_url, webhook):
    run_job(backend_url, fails=True, alert_after=1)
    env = {k: v for k, v in __import__("os").environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    checkers = [subprocess.Popen([sys.executable, "-m", "processcache", "check", "-d", backend_url, "--notify",
                                  webhook.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(6)]
    assert [checker.communicate(timeout=120) and checker.returncode for checker in checkers] == [1] * 6
    assert [body["event"] for _, body in webhook.received] == ["failing"]


def test_a_muted_job_sends_nothing_and_its_state_still_follows_it(backend_url, webhook):
    run_job(backend_url, fails=False)
    assert cli("jobs", "mute", "shop/sync", "--for", "2h", "-d", backend_url).returncode == 0
    run_job(backend_url, fails=True, alert_after=1)
    assert check(backend_url, webhook.url).returncode == 1
    assert webhook.received == []
    assert cli("jobs", "unmute", "shop/sync", "-d", backend_url).returncode == 0
    check(backend_url, webhook.url)
    assert webhook.received == [], "it was failing already when the mute ended"
    run_job(backend_url, fails=False)
    check(backend_url, webhook.url)
    assert [body["event"] for _, body in webhook.received] == ["recovered"]


def test_a_channel_that_is_down_delays_nothing_and_the_next_check_delivers(backend_url, webhook):
    webhook.mode = "fail"
    run_job(backend_url, fails=True, alert_after=1)
    done = check(backend_url, webhook.url + "/t/secret-token-123")
    assert done.returncode == 1 and "answered HTTP 500" in done.stderr
    listed = cli("alerts", "-d", backend_url)
    assert "pending" in listed.stdout and "answered HTTP 500" in listed.stdout
    assert "secret-token-123" not in listed.stdout + done.stderr and f"{webhook.url}/***" in listed.stdout
    webhook.mode = "ok"
    with connect(backend_url) as db:  # the retry's wait has passed
        db.backend.execute("UPDATE process_alert_deliveries SET next_at = 0")
    assert check(backend_url, webhook.url + "/t/secret-token-123").returncode == 1
    assert [body["event"] for _, body in webhook.received] == ["failing"], "delivered once, by the next check"
    listed = cli("alerts", "-d", backend_url).stdout
    assert "sent" in listed and "CREATED (UTC)" in listed and "(UTC) (UTC)" not in listed


def test_the_database_holds_no_channel_token_and_a_checker_sends_only_to_channels_it_was_given(backend_url,
                                                                                               webhook):
    """A webhook's secret path and an SMTP password are secrets; whoever may read the database (a read-only user
    for a dashboard) must not read them. A message names its channel by a fingerprint and the masked URL, and
    goes out from a checker given that very URL."""
    from processcache.monitor.alerts import ORPHANED_AFTER, deliver, update_states

    hook, other = webhook.url + "/t/secret-token-123", webhook.url + "/t/other-token-456"
    mail = "smtp://cron:pa55word@127.0.0.1:1?to=ops@example.org"
    run_job(backend_url, fails=True, alert_after=1)
    with connect(backend_url) as db:
        update_states(db, judge(db), [hook, mail])  # queued, not yet sent
        stored = " ".join(str(cell) for row in db.backend.select("SELECT * FROM process_alert_deliveries")
                          for cell in row)
        assert len(db.alerts.deliveries()) == 2
        assert "secret-token-123" not in stored and "pa55word" not in stored and f"{webhook.url}/***" in stored
        assert deliver(db, [other]) == [] and webhook.received == []  # not its channel: left to another checker
        sent = deliver(db, [hook])
        assert [(attempt.channel, attempt.error) for attempt in sent] == [(f"{webhook.url}/***", None)]
        assert [path for path, _ in webhook.received] == ["/t/secret-token-123"]
        (left,) = [record for record in db.alerts.deliveries() if record.status == "pending"]  # the mail's
        db.backend.execute(f"UPDATE process_alert_deliveries SET next_at = next_at - {ORPHANED_AFTER + 60}"
                           " WHERE id = $id", {"id": left.id})  # no checker has had it for 3h21m
        assert deliver(db, [hook]) == []
        (failed,) = [record for record in db.alerts.deliveries() if record.id == left.id]
        assert failed.status == "failed"
        assert failed.last_error.startswith("no check --notify was given smtp://cron:***@127.0.0.1:1?to=ops@")
    listed = cli("alerts", "-d", backend_url).stdout
    assert f"{webhook.url}/***" in listed and "smtp://cron:***@127.0.0.1:1" in listed and "pbkdf2" not in listed


def test_a_message_an_older_release_queued_is_sent_to_a_channel_given_and_its_url_hidden(backend_url, webhook):
    """Releases before the fingerprint stored the channel's URL; the first check --notify after the upgrade sends
    such a message if it was given that URL too, never to a URL it only read from the database (whoever may write
    there could aim the checkers at any host of their network), and replaces every stored URL by its stored form.
    """
    run_job(backend_url, fails=True, alert_after=1)
    legacy, planted = webhook.url + "/t/legacy-token", webhook.url + "/t/planted"
    with connect(backend_url) as db:
        job_id = db.history.job_id("shop/sync")
        for url in (legacy, planted):
            body = '{"text": "shop/sync is failing: queued by an older release", "event": "failing"}'
            db.backend.execute("INSERT INTO process_alert_deliveries (job_id, channel, event, body, status,"
                               " attempts, next_at, created_at) VALUES ($job, $url, 'failing', $body, 'pending', 0,"
                               " 0, $at)", {"job": job_id, "url": url, "body": body, "at": "2026-11-26 03:00:00"})
    assert check(backend_url, webhook.url + "/t/secret-token-123", legacy).returncode == 1
    assert sorted(path for path, _ in webhook.received) == ["/t/legacy-token", "/t/legacy-token",
                                                            "/t/secret-token-123"]  # this change's, and the old
    with connect(backend_url) as db:
        rows = db.backend.select("SELECT channel, status FROM process_alert_deliveries ORDER BY id")
    # the planted one, due since 1970 and to no channel any checker was given, failed as orphaned
    assert [status for _, status in rows] == ["sent", "failed", "sent", "sent"]
    assert not any("token" in channel or "planted" in channel for channel, _ in rows)


def test_a_slow_channel_holds_check_up_no_longer_than_its_timeout(tmp_path, webhook):
    url = f"sqlite:///{tmp_path}/slow.db"
    webhook.mode = "stall"
    run_job(url, fails=True, alert_after=1)
    started = time.monotonic()
    done = check(url, webhook.url + "?timeout=1")
    assert done.returncode == 1 and time.monotonic() - started < 15, done.stderr
    assert "did not answer" in done.stderr


@pytest.mark.parametrize("channel, message", [
    ("ftp://files.example.org/x", "unknown channel scheme 'ftp'"),
    ("https://", "has no host"),
    ("smtp://mail.example.org", "says no recipient: add ?to=you@example.org"),
    ("https://hooks.example.org/x?timeout=soon", "timeout='soon'"),
])
def test_a_bad_channel_is_one_line_and_exit_2(tmp_path, channel, message):
    done = cli("check", "-d", f"sqlite:///{tmp_path}/c.db", "--notify", channel)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "c.db").exists()


def test_the_variable_takes_several_channels_and_keeps_tokens_out_of_the_command_line(tmp_path, webhook, mailbox):
    url = f"sqlite:///{tmp_path}/env.db"
    run_job(url, fails=True, alert_after=1)
    done = cli("check", "-d", url, env={"PROCESSCACHE_NOTIFY": f"{webhook.url}/secret {mailbox.url}"})
    assert done.returncode == 1
    assert len(webhook.received) == 1 and len(mailbox.messages) == 1


def test_a_job_can_be_muted_before_its_first_run_and_alerts_lists_the_mute(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    run_job(url, fails=False)  # the database exists; the job to mute does not run yet
    muted = cli("jobs", "mute", "shop/new-import", "--for", "90m", "-d", url)
    assert muted.returncode == 0, muted.stderr
    listed = cli("alerts", "-d", url)
    assert "shop/new-import is muted for 1h" in listed.stderr


def test_the_mail_says_when_and_how_many_runs_failed_and_what_it_was_when_it_recovers(tmp_path, mailbox):
    url = f"sqlite:///{tmp_path}/mail.db"
    for fails in (True, True, True, False):
        run_job(url, fails)
        check(url, mailbox.url)
    failing, recovered = mailbox.messages
    assert failing["Date"] and failing["Message-ID"]
    text = failing.get_content()
    assert "failures: 3" in text and "kind: failed" in text and "fetched the price list" in text
    assert "was: failed" in recovered.get_content() and "status: succeeded" in recovered.get_content()
