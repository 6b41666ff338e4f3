"""The report and the dashboard in a real browser: what a person sees, clicks and must not suffer.

Playwright's Python package drives the distribution's Chromium (apt-get
install chromium; browser download sites are out of reach, so never
``playwright install``). Without either the tests skip, saying which is
missing. Screenshots go to PROCESSCACHE_TEST_ARTIFACTS when set (CI keeps
them), else to the test's temporary folder. With
PROCESSCACHE_TEST_REQUIRE_BROWSER set (as .ci/run sets it), a missing one
fails the tests instead.
"""

import os
import shutil
from pathlib import Path

import pytest
from test_report import seed, serving, write_report

pytestmark = pytest.mark.slow


def _missing(reason: str) -> None:
    """Skip the module for *reason*, or fail it when CI requires the browser."""
    if os.environ.get("PROCESSCACHE_TEST_REQUIRE_BROWSER"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright import sync_api
except ImportError:
    _missing("playwright is missing: pip install playwright")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
if CHROMIUM is None:
    _missing("no Chromium on this machine: apt-get install -y chromium")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("PROCESSCACHE_TEST_ARTIFACTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watched(context) -> tuple:
    """A new page of *context* and the list of every dialog (alert) that opened on it: none may."""
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return page, dialogs


def counts(page) -> dict[str, str]:
    """The summary's numbers as the page shows them."""
    return {name: page.locator(f"#count-{name} b").inner_text()
            for name in ("healthy", "failing", "overdue", "running")}


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_report_reads_and_opens_a_traceback_with_or_without_javascript(browser, tmp_path, artifacts, javascript):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    path = tmp_path / "farm.html"
    write_report(url, path)
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1100, "height": 800})
    page, dialogs = watched(context)
    page.goto(path.as_uri())
    assert counts(page) == {"healthy": "2", "failing": "1", "overdue": "0", "running": "0"}
    failure = page.locator('section[data-job="ops/flaky"] details')
    traceback = failure.locator("pre").last
    assert not traceback.is_visible()
    failure.locator("summary").click()
    assert traceback.is_visible() and "Traceback (most recent call last)" in traceback.inner_text()
    assert page.get_by_text("ops/<script>alert('job')").is_visible()  # the name shown as written, not run
    assert page.locator("#tz").is_visible() is javascript  # the local-time switch, only with JavaScript
    if javascript:
        page.locator("#tz").click()
        assert " UTC" not in page.locator("h1 time").inner_text()
    page.screenshot(path=str(artifacts / f"report-{'js' if javascript else 'nojs'}.png"), full_page=True)
    assert dialogs == []
    context.close()


def test_the_dashboard_leads_from_the_overview_to_a_job_and_a_failed_run(browser, tmp_path, artifacts):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    last = seed(url)
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page, dialogs = watched(context)
    with serving(url) as base:
        page.goto(base + "/")
        assert counts(page)["failing"] == "1"
        page.get_by_role("link", name="ops/flaky", exact=True).click()
        page.wait_for_url(base + "/job/ops/flaky")
        assert page.get_by_role("heading", name="Last 2 runs").is_visible()
        assert page.get_by_role("cell", name="broken", exact=True).is_visible()  # a cache key, its value hidden
        page.screenshot(path=str(artifacts / "dashboard-job.png"), full_page=True)
        page.get_by_role("link", name=str(last["flaky"]), exact=True).click()
        assert page.get_by_text("RuntimeError: the feed is down <b>now</b>").first.is_visible()
        assert "Traceback (most recent call last)" in page.locator("details pre").inner_text()
        page.goto(base + f"/run/{last['hostile']}")
        assert page.get_by_text("<script>alert('log')</script>").is_visible()  # shown literally, never run
        page.goto(base + "/")
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    assert dialogs == []
    context.close()
