"""`processcache report --html` and `processcache serve`: what the page holds, on every database.

Real runs of real jobs (succeeded on two machines with cache entries, failed
with a traceback, a job whose name and log messages are HTML), read back from
the file or from a running server over HTTP. What a person sees in a browser
is tests/web/test_browser.py's.
"""

import contextlib
import gzip
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from cli_helpers import cli
from meanwhile import a_run_in_progress

import processcache

HOSTILE_JOB = "<script>alert('job')"
HOSTILE_LOG = "<script>alert('log')</script>"


def seed(url: str) -> dict[str, int]:
    """ops/nightly succeeded on web1 and web2 (cache entries), ops/flaky failed with a traceback after a success
    (expected every hour), and ops/<script>... logged HTML; the id of each job's last run, by job."""
    registry = processcache.Registry()

    @registry.job("ops", "nightly", expect_every="1h")
    def nightly(ctx):
        ctx.create_cache("token", "s3cret-value")
        ctx.create_log("fetched 3 pages")

    @registry.job("ops", "flaky", schedule="*/5 * * * *")
    def flaky(ctx):
        if ctx.get_cache("broken"):
            raise RuntimeError("the feed is down <b>now</b>")
        ctx.create_cache("broken", True)

    @registry.job("ops", HOSTILE_JOB)
    def hostile(ctx):
        ctx.create_log(HOSTILE_LOG)
        ctx.create_cache("<key onclick=alert(3)>", 1)

    last = {}
    for machine in ("web1", "web2"):
        last["nightly"] = nightly.run(database=url, machine=machine).id
    flaky.run(database=url, machine="web1")
    failed = flaky.run(database=url, machine="web1")
    assert failed.status == "failed" and failed.traceback
    last["flaky"] = failed.id
    last["hostile"] = hostile.run(database=url, machine="web1").id
    return last


def write_report(url: str, path, *args: str) -> str:
    result = cli("report", "--html", path, "-d", url, *args)
    assert result.returncode == 0, result.stderr
    return path.read_text(encoding="utf-8")


def test_report_shows_each_job_its_runs_and_its_last_failure(backend_url, tmp_path):
    seed(backend_url)
    page = write_report(backend_url, tmp_path / "farm.html")
    counts = dict(re.findall(r'id="count-(\w+)"><b>(\d+)</b>', page))
    assert counts == {"healthy": "2", "failing": "1", "overdue": "0", "running": "0"}
    flaky = page[page.index('data-job="ops/flaky"'):page.index("</section>", page.index('data-job="ops/flaky"'))]
    assert "failing" in flaky and "schedule */5 * * * * (UTC), next due <time" in flaky
    assert '<li class="s-succeeded"' in flaky and '<li class="s-failed"' in flaky and ">F</li>" in flaky
    assert "<details" in flaky and "Traceback (most recent call last)" in flaky
    assert "RuntimeError: the feed is down &lt;b&gt;now&lt;/b&gt;" in flaky
    nightly = page[page.index('data-job="ops/nightly"'):]
    assert "expected every 1h00m, next due" in nightly and "<td>web1</td>" in nightly and "<td>web2</td>" in nightly
    assert "<svg" in nightly and "cache: 2 entries" in nightly
    assert " UTC</time>" in page and 'title="local time: ' in page


def test_report_escapes_every_text_of_jobs_and_loads_nothing(backend_url, tmp_path):
    seed(backend_url)
    page = write_report(backend_url, tmp_path / "farm.html")
    assert "alert('job')" not in page.replace("&lt;script&gt;alert(&#x27;job&#x27;)", "")
    assert "&lt;script&gt;alert(&#x27;job&#x27;)" in page
    assert page.count("<script") == 1  # the page's own, which its Content-Security-Policy allows by its hash
    assert not re.search(r"""(src|href)=["']?(https?:|//)|@import|url\(""", page), "something loaded from elsewhere"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_a_page_of_more_jobs_than_it_draws_lists_the_jobs_not_in_trouble_one_line_each(backend_url):
    """A farm of 1,000 jobs: a page of more than `cards` jobs draws half as many cards at most, for the jobs
    failing, then overdue, and the others one line each (the runs read are the cards' only); a page of no more
    jobs than that is all cards."""
    from processcache.web.gather import gather
    from processcache.web.pages import overview_page

    seed(backend_url)
    registry = processcache.Registry()
    registry.job("ops", "late", expect_every="1s")(lambda ctx: None).run(database=backend_url, machine="web2")
    time.sleep(1.2)  # overdue, with no grace
    with processcache.cache_session("ops", "long", machine="web3", database=backend_url):
        with processcache.connect(backend_url, read_only=True) as db:
            overview, fewer, every = (gather(db, grace=0, cards=cards) for cards in (4, 2, 5))
    views = {job.name: job for job in overview.jobs}
    assert [(job.name, job.card) for job in overview.jobs] == [
        ("ops/flaky", True), ("ops/late", True), ("ops/long", False), (f"ops/{HOSTILE_JOB}", False),
        ("ops/nightly", False)]
    assert [(job.name, job.card) for job in fewer.jobs][:2] == [("ops/flaky", True), ("ops/late", False)]
    assert [machine.machine for machine in views["ops/flaky"].machines] == ["web1"]
    assert len(views["ops/flaky"].machines[0].runs) == 2 and views["ops/flaky"].last_failure is not None
    assert views["ops/nightly"].machines == [] and views["ops/nightly"].last_failure is None
    assert views["ops/long"].state == "running" and views["ops/nightly"].state == "healthy"
    assert overview.counts == {"jobs": 5, "healthy": 3, "failing": 1, "overdue": 1, "running": 1}
    page = overview_page(overview)
    assert page.count("<section") == 2 and 'section class="job failing" data-job="ops/flaky"' in page
    assert "3 more jobs, one line each" in page and "more than 4 jobs draws the runs of 2 at most" in page
    nightly = page[page.index('<tr class="healthy" data-job="ops/nightly">'):]
    nightly = nightly[:nightly.index("</tr>")]
    assert '<li class="s-succeeded"' in nightly and "<td>2</td>" in nightly and "expected every 1h00m" in nightly
    assert "<td>2 entries, " in nightly
    assert page.index('data-job="ops/long"') < page.index('data-job="ops/nightly"')  # running before healthy
    assert "&lt;script&gt;alert(&#x27;job&#x27;)" in page and page.count("<script") == 1
    late = overview_page(fewer)
    late = late[late.index('<tr class="overdue" data-job="ops/late">'):]
    assert "<td>overdue</td>" in late[:late.index("</tr>")]
    assert all(job.card for job in every.jobs) and overview_page(every).count("<section") == 5
    assert "one line each" not in overview_page(every)


def test_the_report_reads_one_moment_so_a_run_that_ends_meanwhile_is_running_in_every_part(backend_url):
    """The report reads the jobs, then the locks, the runs alive, the strips...: a run that ends between two of
    those reads must not be running in the counts and done in its card."""
    from processcache.web.gather import gather

    seed(backend_url)
    with a_run_in_progress(backend_url, "ops", "long", "web3") as finish:
        with processcache.connect(backend_url, read_only=True) as db:
            read_locks = db.locks

            def locks_after_the_run_ended():
                finish()  # the job ends its run and commits, between the report's reads
                return read_locks()

            db.locks = locks_after_the_run_ended
            overview = gather(db)
            assert [run.status for run in db.list_runs("ops/long")] == ["succeeded"]
    (long,) = [job for job in overview.jobs if job.name == "ops/long"]
    assert long.summary.last_run.status == "running"
    assert long.running and long.state == "running" and overview.counts["running"] == 1
    assert long.machines[0].runs[0].status == "running"


def test_the_locks_held_are_listed_open_and_folded_when_there_are_many():
    """A farm of 1,000 jobs holds a hundred locks at a time: folded, so the jobs in trouble come first."""
    from datetime import datetime, timezone

    from processcache.records import LockRecord
    from processcache.web.gather import Overview
    from processcache.web.pages import OPEN_LOCKS, overview_page

    def page(count: int) -> str:
        locks = [LockRecord(f"ops/job-{k}", "web1", 100 + k, k, 60.0, 30.0) for k in range(count)]
        counts = {"jobs": 0, "healthy": 0, "failing": 0, "overdue": 0, "running": 0}
        return overview_page(Overview(datetime.now(timezone.utc), "sqlite:///farm.db", [], locks, counts=counts))

    assert '<details class="locks" open><summary><h2>1 lock held now</h2>' in page(1)
    assert f'<details class="locks" open><summary><h2>{OPEN_LOCKS} locks held now' in page(OPEN_LOCKS)
    many = page(OPEN_LOCKS + 1)
    assert f'<details class="locks"><summary><h2>{OPEN_LOCKS + 1} locks held now' in many
    assert many.count("<td>ops/job-") == OPEN_LOCKS + 1  # folded, not left out
    assert "No lock is held now." in page(0)


def test_report_of_a_group_and_of_a_group_not_there(backend_url, tmp_path):
    seed(backend_url)
    registry = processcache.Registry()
    registry.job("etl", "load")(lambda ctx: None).run(database=backend_url, machine="web1")
    page = write_report(backend_url, tmp_path / "etl.html", "--group", "ETL")
    assert 'data-job="etl/load"' in page and "ops/nightly" not in page and "(group etl)" in page
    result = cli("report", "--html", tmp_path / "none.html", "-d", backend_url, "--group", "nope")
    assert result.returncode == 1 and "no group nope" in result.stderr and len(result.stderr.splitlines()) == 1


def test_report_replaces_the_file_whole_and_refuses_a_missing_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    path = tmp_path / "out" / "farm.html"
    result = cli("report", "--html", path, "-d", url)
    assert result.returncode == 2 and "no folder" in result.stderr
    path.parent.mkdir()
    path.write_text("old")
    assert "ops/nightly" in write_report(url, path)
    assert os.listdir(path.parent) == ["farm.html"]  # no temporary file left beside it


@contextlib.contextmanager
def serving(url: str, *args: str, env: dict | None = None) -> Iterator[str]:
    """A real ``processcache serve`` on a free port; its base URL, then SIGTERM (it must exit 0)."""
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    with subprocess.Popen([sys.executable, "-m", "processcache", "serve", "--bind", "127.0.0.1:0", "-d", url, *args],
                          stderr=subprocess.PIPE, text=True, env={**environ, **(env or {})}) as process:
        try:
            line = process.stderr.readline()
            found = re.search(r"serving (http://\S+)/ ", line)
            assert found, line + process.stderr.read()
            yield found.group(1)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0


def fetch(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    """Status, body and headers of a GET, errors too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_serve_shows_the_overview_a_job_and_a_run_read_only(backend_url):
    last = seed(backend_url)
    with serving(backend_url, "--refresh", "5") as base:
        status, page, headers = fetch(base + "/")
        assert status == 200 and '<meta http-equiv="refresh" content="5">' in page
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert f'href="/run/{last["flaky"]}"' in page and 'href="/job/ops/flaky"' in page
        status, job, _ = fetch(base + "/job/ops/nightly")
        assert status == 200 and "<td>token</td><td>2</td>" in job and "s3cret-value" not in job
        status, run, _ = fetch(base + f"/run/{last['flaky']}")
        assert status == 200 and "Traceback (most recent call last)" in run and "the feed is down &lt;b&gt;" in run
        status, run, _ = fetch(base + f"/run/{last['hostile']}")
        assert "&lt;script&gt;alert(&#x27;log&#x27;)&lt;/script&gt;" in run and run.count("<script") == 1
        status, job, _ = fetch(base + "/job/ops/" + urllib.request.quote(HOSTILE_JOB, safe=""))
        assert status == 200 and "&lt;key onclick=alert(3)&gt;" in job and "<key" not in job
        assert fetch(base + "/job/ops/nope")[0] == 404 and fetch(base + "/run/999999")[0] == 404
        with urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Accept-Encoding": "gzip, br"}),
                                    timeout=30) as answer:  # as a browser asks
            assert answer.headers["Content-Encoding"] == "gzip"
            assert 'data-job="ops/flaky"' in gzip.decompress(answer.read()).decode()
    with processcache.connect(backend_url) as db:  # nothing written: still the seeded runs only
        assert len(db.list_runs(limit=None)) == 5


def test_serve_shows_values_only_when_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    with serving(url, "--show-values") as base:
        assert "s3cret-value" in fetch(base + "/job/ops/nightly")[1]


def test_serve_needs_a_token_beyond_this_machine_and_checks_it_on_every_request(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    result = cli("serve", "--bind", "0.0.0.0:0", "-d", url)
    assert result.returncode == 2 and "give --token" in result.stderr
    with serving(url, env={"PROCESSCACHE_SERVE_TOKEN": "t0ken"}) as base:
        assert fetch(base + "/")[0] == 401 and fetch(base + "/?token=wrong")[0] == 401
        assert fetch(base + "/run/1", {"Authorization": "Bearer wrong"})[0] == 401
        status, page, headers = fetch(base + "/?token=t0ken")
        assert status == 200 and "ops/nightly" in page and "HttpOnly" in headers["Set-Cookie"]
        assert fetch(base + "/job/ops/flaky", {"Authorization": "Bearer t0ken"})[0] == 200
        assert fetch(base + "/job/ops/flaky", {"Cookie": "processcache_token=t0ken"})[0] == 200


def test_report_and_serve_never_show_the_database_password(postgres_url, tmp_path):
    seed(postgres_url)
    with_password = postgres_url.replace("://postgres@", "://postgres:pa55word@")
    page = write_report(with_password, tmp_path / "farm.html")
    assert "pa55word" not in page and "postgres:***@" in page
    with serving(with_password) as base:
        status, page, _ = fetch(base + "/")
        assert status == 200 and "pa55word" not in page and "postgres:***@" in page


def test_the_report_and_the_dashboard_leave_out_skipped_copies_unless_asked(backend_url, tmp_path):
    """A farm of one slot a machine: most runs are skipped copies, which a person reads past."""
    from processcache.web.dashboard import Dashboard, Settings

    for machine in ("web1", "web2", "web3"):
        done = cli("exec", "--job", "ops/hourly", "--once-per", "1h", "-m", machine, "-d", backend_url, "--", "true")
        assert done.returncode in (0, 75), done.stderr
    with processcache.connect(backend_url) as db:
        runs = db.list_runs("ops/hourly", skipped=True)
    worked = [run.id for run in runs if run.status != "skipped"]
    copies = [run.id for run in runs if run.status == "skipped"]
    assert len(worked) == 1 and len(copies) == 2
    for skipped, shown in ((False, worked), (True, worked + copies)):
        dashboard = Dashboard(Settings(backend_url, skipped=skipped))
        try:
            page = dashboard.page("/job/ops/hourly")
        finally:
            dashboard.close()
        assert sorted({int(found) for found in re.findall(r'href="/run/(\d+)"', page)}) == sorted(shown)
        written = write_report(backend_url, tmp_path / f"farm-{skipped}.html", *(["--skipped"] if skipped else []))
        assert ('<li class="s-skipped"' in written) is skipped, "a skipped copy in the strip only when asked"


def test_a_run_recorded_late_is_marked_in_its_strip_and_said_on_hover(backend_url, tmp_path, monkeypatch):
    from datetime import timedelta

    from processcache.storage import Spool

    monkeypatch.setenv("PROCESSCACHE_SPOOL", str(tmp_path / "spool.sqlite"))
    seed(backend_url)
    with processcache.connect(backend_url) as db:
        spool = Spool()  # web3 ran ops/nightly while it could not reach the database
        now = db.clock.now()
        spool_id = spool.start(db.url, "ops", "nightly", "web3", "job", now - timedelta(minutes=5))
        spool.finish(spool_id, "succeeded", now - timedelta(minutes=4), 60.0, None, None, None, 0, None, 1)
        [late_id] = spool.flush(db).stored
        spool.close()
    page = write_report(backend_url, tmp_path / "farm.html")
    [cell] = re.findall(rf'<li class="s-succeeded late" title="run {late_id} [^"]*, recorded late">', page)
    assert page.count(" late\" title=") == 1, "only the run recorded late is marked"
    assert "recorded late</span>" in page, "the legend says what the mark means"


def test_an_overview_read_from_a_standby_says_how_far_behind_its_primary_it_is():
    from datetime import datetime, timezone

    from processcache.web.gather import Overview
    from processcache.web.pages import overview_page

    def page(lag: float | None) -> str:
        counts = {"jobs": 0, "healthy": 0, "failing": 0, "overdue": 0, "running": 0}
        return overview_page(Overview(datetime.now(timezone.utc), "postgresql://cron@db2/cron", [], [], counts=counts,
                                      lag=lag))

    assert "database postgresql://cron@db2/cron, a standby 12s behind its primary</p>" in page(12.4)
    assert "a standby an unknown time (nothing replayed since it started) behind" in page(float("inf"))
    assert "standby" not in page(None)
