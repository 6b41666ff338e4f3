"""Promises no other test pinned down: each fails if the behaviour it names breaks.

A renewed lease is a held lease; a password is masked in every form and
every copy; retries stop at a lost lock; everything the report and the
dashboard show of a stored text is text, whatever tag it holds.
"""

import string
import time
from html.parser import HTMLParser

import pytest
from cli_helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_exec import only_run, start_exec

import processcache
from processcache.errors import ProcessCacheError
from processcache.run.heartbeat import Heartbeat
from processcache.storage.config import parse_url


def test_a_command_that_runs_through_several_leases_while_they_are_renewed_succeeds(backend_url):
    """Five leases of 1.5 s long: a heartbeat that took a renewal for a loss would stop it at the first."""
    done = cli("exec", "--job", "ops/long", "-d", backend_url, "--lease", "1.5", "--", "sh", "-c",
               "sleep 7.5; echo finished")
    assert (done.returncode, done.stdout) == (0, "finished\n"), done.stderr
    detail = only_run(backend_url, "ops/long")
    assert (detail.run.status, detail.run.exit_code, detail.run.error) == ("succeeded", 0, None)
    assert "lease" not in done.stderr, "no warning of a lost or unconfirmed lease"


def test_each_renewal_resets_how_long_the_lease_went_unconfirmed():
    renewals: list[float] = []

    def renew() -> bool:
        renewals.append(time.monotonic())
        return True

    with Heartbeat(renew, 0.05, "a test lease") as heartbeat:
        time.sleep(0.6)
        unconfirmed = heartbeat.unconfirmed_for()
        lost = heartbeat.lease_lost
    assert len(renewals) >= 5 and not lost
    assert unconfirmed < 0.3, "measured from the last renewal, not from the start (0.6 s ago)"


def test_a_renewal_that_finds_the_lock_taken_marks_the_lease_lost_and_stops_resetting():
    answers = iter([True, False])

    with Heartbeat(lambda: next(answers, False), 0.05, "a test lease") as heartbeat:
        time.sleep(0.5)
    assert heartbeat.lease_lost and heartbeat.unconfirmed_for() >= 0.35


def test_a_renewal_that_raises_is_warned_about_and_the_heartbeat_goes_on_renewing(caplog):
    """A passing database fault: the next renewal still runs, and confirms the lease again."""
    calls: list[float] = []

    def renew() -> bool:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return True

    with Heartbeat(renew, 0.05, "a test lease") as heartbeat:
        time.sleep(0.5)
        unconfirmed = heartbeat.unconfirmed_for()
    assert len(calls) >= 5 and unconfirmed < 0.3 and not heartbeat.lease_lost
    assert "renewing a test lease failed: the database went away" in caplog.text


def test_how_long_a_lease_went_unconfirmed_is_the_time_since_it_was_last_known_held(monkeypatch):
    """Taken at 10 s on the monotonic clock, asked at 25 s: 15 s, whatever the clock's origin."""
    real, readings = time.monotonic, [10.0, 25.0]
    monkeypatch.setattr(time, "monotonic", lambda: readings.pop(0) if readings else real())
    heartbeat = Heartbeat(lambda: True, 60, "a test lease")
    assert heartbeat.unconfirmed_for() == 15.0


PASSWORDS = st.text(string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=24).filter(
    lambda word: not word.isdigit() and word.lower() not in "postgresql mysql cron localhost")


@settings(max_examples=40, deadline=None)
@given(password=PASSWORDS, form=st.sampled_from(["netloc", "password", "passwd", "pwd"]),
       scheme=st.sampled_from(["postgresql", "mysql"]))
def test_a_password_in_any_form_of_the_url_is_masked_in_every_copy_of_every_message(password, form, scheme):
    url = {"netloc": f"{scheme}://cron:{password}@127.0.0.1:1/db?connect_timeout=1&retry_for=0",
           "password": f"{scheme}://cron@127.0.0.1:1/db?password={password}&connect_timeout=1&retry_for=0",
           "passwd": f"{scheme}://cron@127.0.0.1:1/db?passwd={password}&connect_timeout=1&retry_for=0",
           "pwd": f"{scheme}://cron@127.0.0.1:1/db?pwd={password}&connect_timeout=1&retry_for=0"}[form]
    try:
        config = parse_url(url)
    except ProcessCacheError as refused:  # an option the driver does not take: refused, the URL masked
        assert password not in str(refused)
        return
    assert password not in config.safe_url and password not in repr(config)
    if config.password:
        assert config.mask(f"{password} then {password}, {password}") == "*** then ***, ***"
    with pytest.raises(ProcessCacheError) as failed:
        processcache.connect(url)
    assert password not in str(failed.value), "the driver's own message may quote the URL: masked too"


def test_retries_stop_at_a_lost_lock(backend_url):
    process = start_exec(backend_url, "--job", "ops/retried", "--lease", "1.5", "--retries", "3", "--retry-delay",
                         "0", "--", "sh", "-c", "echo ready; sleep 60")
    assert process.stdout.readline() == "ready\n"
    assert cli("locks", "break", "--yes", "ops/retried", "-d", backend_url).returncode == 0
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    detail = only_run(backend_url, "ops/retried")
    assert detail.run.status == "lost" and "lost the lease on the lock ops/retried" in detail.run.error
    assert [attempt.status for attempt in detail.attempts] in ([], ["lost"], ["failed"]), \
        "one attempt: another run holds the lock now, so none is tried again"
    assert "trying again" not in err


#: Tags and attributes a stored text may hold: none may reach a page as markup.
HOSTILE = "<u>u</u><img src=x onerror=alert(1)><iframe src=//x></iframe>\"q\" 'q' & &amp; <a href=javascript:x>"


class _Markup(HTMLParser):
    """Every tag and attribute a page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs


def markup(page: str) -> _Markup:
    parser = _Markup()
    parser.feed(page)
    return parser


def assert_only_text(page: str) -> None:
    found = markup(page)
    assert not {"u", "img", "iframe"} & set(found.tags), [tag for tag in found.tags if tag in ("u", "img", "iframe")]
    assert not [name for name, _ in found.attributes if name.startswith("on")]
    assert not [value for name, value in found.attributes if value and value.startswith("javascript:")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in page, "shown, as text"


def hostile_farm(url: str) -> int:
    """A job whose log, error, cache key and value, and machine hold every tag; its failed run's id."""
    registry = processcache.Registry()

    @registry.job("ops", "hostile")
    def hostile(ctx):
        ctx.create_log(HOSTILE, processcache.LogType.WARNING)
        ctx.create_cache(HOSTILE[:200], HOSTILE)
        raise RuntimeError(HOSTILE)

    return hostile.run(database=url, machine="m-<u>x</u>").id


def test_the_report_shows_every_stored_text_as_text_whatever_tag_it_holds(backend_url, tmp_path):
    hostile_farm(backend_url)
    page = tmp_path / "farm.html"
    done = cli("report", "--html", page, "-d", backend_url)
    assert done.returncode == 0, done.stderr
    assert_only_text(page.read_text(encoding="utf-8"))


def test_the_dashboards_pages_show_every_stored_text_as_text(backend_url):
    from processcache.web.dashboard import Dashboard, Settings

    run_id = hostile_farm(backend_url)
    dashboard = Dashboard(Settings(backend_url, show_values=True))
    try:
        for path in ("/", "/job/ops/hostile", f"/run/{run_id}"):
            assert_only_text(dashboard.page(path))
    finally:
        dashboard.close()
