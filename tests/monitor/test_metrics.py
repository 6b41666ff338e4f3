"""`processcache metrics`: printed, written for node_exporter's textfile collector, and served to a real scrape.

Every exposition is read back with prometheus_client's own parser, and
checked for what the parser forgives but Prometheus refuses (a family
given twice, a series given twice, a sample without its TYPE).
"""

import gzip
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from cli_helpers import cli
from hypothesis import given
from hypothesis import strategies as st
from meanwhile import a_run_in_progress
from paths import ROOT
from prometheus_client.parser import text_string_to_metric_families

import processcache
from processcache.cli.metrics import write_whole
from processcache.monitor.metrics import Family, collect, escape, render
from processcache.records import RUN_STATUSES
from processcache.storage.timeutil import db_time

README = (ROOT / "README.rst").read_text()
#: A machine name holding every character the text format escapes, and some it does not need to.
ODD_MACHINE = 'rack "7"\\web\nnode ✓'


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample by (name, labels); fails on what Prometheus would refuse though the parser forgives it."""
    names = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)
    assert len(names) == len({name for name, _ in names}), "a family given twice"
    assert {kind for _, kind in names} == {"gauge"}
    assert text.endswith("\n") and "# EOF" not in text  # the classic format, which node_exporter reads
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.name in dict(names), family.name
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"series given twice: {key}"
            samples[key] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def where(samples: dict, name: str, **labels: str) -> dict[str, str]:
    """The labels of the samples of *name* that have *labels* and the value 1 (a state set's true states)."""
    return {dict(key)[state]: dict(key) for (found, key), held in samples.items() for state in ("status", "kind")
            if found == name and state in dict(key) and held == 1 and labels.items() <= dict(key).items()}


def seed(url: str) -> dict[str, processcache.RunRecord]:
    """Jobs with real runs: succeeded (two machines, one oddly named, entries), failed twice after a success,
    timed out, lost (its process died), expected every 0.2 s, and a retired one; the runs, by name."""
    registry = processcache.Registry()

    @registry.job("ops", "nightly")
    def nightly(ctx):
        ctx.create_cache("token", "abc")
        ctx.create_cache("page", 1)

    @registry.job("ops", "flaky")
    def flaky(ctx):
        if ctx.get_cache("broken"):
            raise RuntimeError("the feed is down")
        ctx.create_cache("broken", True)

    @registry.job("ops", "slow", timeout=0.2)
    def slow(ctx):
        time.sleep(30)

    @registry.job("ops", "old")
    def old(ctx):
        pass

    @registry.job("ops", "frequent", expect_every=0.2)
    def frequent(ctx):
        pass

    with processcache.connect(url) as db:
        runs = {"nightly": nightly.run(database=db, machine="web1"),
                "odd": nightly.run(database=db, machine=ODD_MACHINE),
                "flaky-ok": flaky.run(database=db, machine="web1"),
                "flaky-1": flaky.run(database=db, machine="web1"),
                "flaky-2": flaky.run(database=db, machine="web1"),
                "slow": slow.run(database=db, machine="web2"),
                "old": old.run(database=db, machine="web1"),
                "frequent": frequent.run(database=db, machine="web1"),
                "dead": db.runs.start("ops", "dead", "web2", 1, lease=0.05)}
        db.retire_job("ops/old")
        time.sleep(0.3)  # the dead run's lease ends (it is lost), and so do frequent's 0.2 s
    assert [runs[name].status for name in ("nightly", "odd", "flaky-ok", "flaky-1", "flaky-2", "slow")] == \
        ["succeeded", "succeeded", "succeeded", "failed", "failed", "timed-out"]
    return runs


def test_the_metrics_say_what_each_job_did_on_each_machine(backend_url):
    runs = seed(backend_url)
    with processcache.cache_session("ops", "held", machine="web3", database=backend_url, overlap="skip"):
        with pytest.raises(processcache.JobLockedError):  # another machine's copy, skipped by the lock
            with processcache.cache_session("ops", "held", machine="web4", database=backend_url, overlap="skip"):
                pass
        printed = cli("metrics", "--database", backend_url, "--grace", "0s")
    assert printed.returncode == 0 and printed.stderr == "", printed.stderr
    samples = parse(printed.stdout)

    def of(name, job, machine):
        return value(samples, f"processcache_job_{name}", group="ops", job_name=job, machine=machine)

    def status(job, machine):
        return set(where(samples, "processcache_job_last_run_status", job_name=job, machine=machine))

    # each machine's newest run that did the work, one status of every status a run has
    assert {status for (name, key) in samples if name == "processcache_job_last_run_status"
            for label, status in key if label == "status"} == set(RUN_STATUSES)
    assert [status(job, machine) for job, machine in [
        ("nightly", "web1"), ("nightly", ODD_MACHINE), ("flaky", "web1"), ("slow", "web2"), ("dead", "web2"),
        ("held", "web3"), ("held", "web4")]] == \
        [{"succeeded"}, {"succeeded"}, {"failed"}, {"timed-out"}, {"lost"}, {"running"}, {"skipped"}]
    assert of("machine_last_success_timestamp_seconds", "nightly", ODD_MACHINE) == \
        pytest.approx(runs["odd"].finished_at.timestamp(), abs=1e-3)
    assert of("machine_last_success_timestamp_seconds", "flaky", "web1") == \
        pytest.approx(runs["flaky-ok"].finished_at.timestamp(), abs=1e-3)
    assert of("machine_last_success_timestamp_seconds", "slow", "web2") == 0  # never succeeded
    assert of("last_run_duration_seconds", "slow", "web2") == pytest.approx(runs["slow"].duration, abs=1e-3)
    assert runs["slow"].duration >= 0.2
    assert ("processcache_job_last_run_duration_seconds",
            frozenset({"group": "ops", "job_name": "held", "machine": "web3"}.items())) not in samples  # none ended
    assert [of("consecutive_failures", job, machine) for job, machine in [
        ("flaky", "web1"), ("slow", "web2"), ("dead", "web2"), ("nightly", "web1"), ("held", "web3")]] == \
        [2, 1, 1, 0, 0]
    assert [of("running", "held", "web3"), of("lock_held", "held", "web3"), of("running", "held", "web4"),
            of("lock_held", "held", "web4"), of("lock_held", "nightly", "web1")] == [1, 1, 0, 0, 0]
    assert [of("cache_entries", "nightly", "web1"), of("cache_entries", "nightly", ODD_MACHINE),
            of("cache_entries", "flaky", "web1")] == [2, 2, 1]
    # per job, what `check` reports, each kind a series of its own
    problems = {job: set(where(samples, "processcache_job_problem", job_name=job))
                for job in ("nightly", "flaky", "slow", "dead", "held", "frequent")}
    assert problems == {"nightly": set(), "flaky": {"failed"}, "slow": {"timed-out"}, "dead": {"lost"},
                        "held": set(), "frequent": {"overdue"}}
    assert value(samples, "processcache_job_problem", group="ops", job_name="nightly", kind="overdue") == 0
    # a retired job is left out, as check and jobs leave it out
    assert value(samples, "processcache_jobs") == 6
    assert not [key for key in samples if ("job_name", "old") in key[1]]


def readme_rule_fires(samples: dict, now: float) -> list[dict[str, str]]:
    """The labels the README's rule on a job's last success fires for, as Prometheus evaluates it at *now*."""
    name, limit = re.search(r"time\(\) - (processcache_\w+) > (\d+)", README).groups()
    return [dict(key) for (found, key), at in samples.items() if found == name and now - at > int(limit)]


def test_a_farm_wide_job_has_one_last_success_and_the_readme_rule_fires_only_when_no_machine_succeeded(backend_url):
    """A job that one of three machines runs (web1 and web2 win its lock by turns) is paged for only when none
    succeeded for a day; the machine that lost the race is nobody's problem. A problem of a run names its machine."""
    registry = processcache.Registry()
    report = registry.job("farm", "report")(lambda ctx: None)  # lock="job": whichever machine comes first runs it

    @registry.job("farm", "feed")
    def feed(ctx):
        raise RuntimeError("the feed is down")

    hourly = registry.job("farm", "hourly", expect_every=0.2)(lambda ctx: None)
    runs = [report.run(database=backend_url, machine=machine) for machine in ("web1", "web2", "web1", "web2", "web1")]
    assert feed.run(database=backend_url, machine="web3").status == "failed"
    assert hourly.run(database=backend_url, machine="web3").ok
    time.sleep(0.3)  # hourly's 0.2 s pass: overdue, a problem of the job's, not of a machine

    def age(moved: list, days: timedelta) -> None:
        with processcache.connect(backend_url) as db:
            for run in moved:
                db.backend.execute("UPDATE process_job_runs SET started_at = $started, finished_at = $finished"
                                   " WHERE id = $id", {"id": run.id, "started": db_time(run.started_at - days),
                                                       "finished": db_time(run.finished_at - days)})

    def scrape() -> tuple[dict, float]:
        with processcache.connect(backend_url) as db:
            now = db.clock.now().timestamp()  # time() at the scrape, by the server's clock the stamps are in
        printed = cli("metrics", "--database", backend_url, "--grace", "0s")
        assert printed.returncode == 0 and printed.stderr == "", printed.stderr
        return parse(printed.stdout), now

    age(runs[:-1], timedelta(days=2))  # web2 last won the race two days ago, web1 just now
    samples, now = scrape()
    assert {key: at for (name, key), at in samples.items() if name == "processcache_job_last_success_timestamp_seconds"
            and ("job_name", "report") in key} == \
        {frozenset({"group": "farm", "job_name": "report"}.items()): pytest.approx(runs[-1].finished_at.timestamp(),
                                                                                     abs=1e-3)}
    assert value(samples, "processcache_job_machine_last_success_timestamp_seconds", group="farm", job_name="report",
                 machine="web2") == pytest.approx((runs[-2].finished_at - timedelta(days=2)).timestamp(), abs=1e-3)
    assert [fired for fired in readme_rule_fires(samples, now) if fired["job_name"] == "report"] == []
    assert where(samples, "processcache_job_problem", job_name="feed") == \
        {"failed": {"group": "farm", "job_name": "feed", "kind": "failed", "machine": "web3"}}
    assert where(samples, "processcache_job_problem", job_name="hourly") == \
        {"overdue": {"group": "farm", "job_name": "hourly", "kind": "overdue"}}
    assert value(samples, "processcache_job_problem", group="farm", job_name="feed", kind="overdue") == 0
    assert value(samples, "processcache_job_problem", group="farm", job_name="report", kind="failed") == 0

    age(runs[-1:], timedelta(days=2))  # now no machine succeeded for two days: it fires, once, for the job
    samples, now = scrape()
    assert [fired for fired in readme_rule_fires(samples, now) if fired["job_name"] == "report"] == \
        [{"group": "farm", "job_name": "report"}]


def test_every_scrape_reads_the_database_in_the_same_few_queries_however_many_jobs(backend_url):
    """No query per job: a ledger of 25 jobs is read with as many queries as one of a single job."""
    registry = processcache.Registry()
    specs = [registry.job("many", f"job-{n}")(lambda ctx: None) for n in range(25)]

    def queries_of_a_scrape(db) -> int:
        counted = []
        select = db.backend.select
        db.backend.select = lambda *args: counted.append(args) or select(*args)  # counts; the query is real
        try:
            collect(db)
        finally:
            del db.backend.select
        return len(counted)

    with processcache.connect(backend_url) as db:
        specs[0].run(database=db, machine="m1")
        one = queries_of_a_scrape(db)
        for spec in specs:
            for machine in ("m1", "m2"):
                spec.run(database=db, machine=machine)
        assert queries_of_a_scrape(db) == one


def test_output_replaces_the_file_whole_with_mode_0644_and_leaves_nothing_beside_it(backend_url, tmp_path):
    seed(backend_url)
    folder = tmp_path / "textfile"
    folder.mkdir()
    target = folder / "processcache.prom"
    target.write_text("# an older exposition\n")
    os.chmod(target, 0o600)
    before = os.stat(target).st_ino
    written = cli("metrics", "--database", backend_url, "--output", target)
    assert written.returncode == 0 and written.stdout == "" and written.stderr == "", written
    assert os.listdir(folder) == ["processcache.prom"]  # no temporary file left
    assert os.stat(target).st_ino != before  # a new file put in place, not the old one rewritten
    assert os.stat(target).st_mode & 0o777 == 0o644  # node_exporter runs as a user of its own
    assert value(parse(target.read_text()), "processcache_jobs") == 5
    assert target.read_text() == cli("metrics", "--database", backend_url).stdout


def test_a_failed_read_leaves_the_file_as_it_was(tmp_path):
    target = tmp_path / "processcache.prom"
    target.write_text("processcache_jobs 3\n")
    failed = cli("metrics", "--database", f"sqlite:///{tmp_path}/missing.db", "--output", target)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert target.read_text() == "processcache_jobs 3\n" and os.listdir(tmp_path) == ["processcache.prom"]


def test_a_reader_never_sees_a_half_written_file(tmp_path):
    """node_exporter reads whenever it is scraped: every read is one whole exposition, old or new."""
    target = tmp_path / "processcache.prom"
    texts = [render([Family("processcache_jobs", "Jobs.", ("n",), [((str(i),), n) for i in range(5000)])])
             for n in range(2)]
    write_whole(str(target), texts[0])
    seen, done = set(), threading.Event()

    def read():
        while not done.is_set():
            seen.add(target.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(200):
            write_whole(str(target), texts[n % 2])
    finally:
        done.set()
        reader.join()
    assert seen <= set(texts) and len(seen) == 2


def _serve(url: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`processcache metrics --serve` on a free port, and the address it says it serves."""
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    server = subprocess.Popen([sys.executable, "-m", "processcache", "metrics", "--database", url, "--serve",
                               "127.0.0.1:0", *args], stderr=subprocess.PIPE, text=True, env=environ)
    line = server.stderr.readline()
    found = re.search(r"serving (http://127\.0\.0\.1:\d+)/metrics", line)
    assert found, line + server.stderr.read()
    return server, found[1]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_real_scrape_of_serve_reads_the_database_fresh_each_time_and_a_signal_stops_it(backend_url, stop):
    runs = seed(backend_url)
    server, address = _serve(backend_url)
    try:
        status, content_type, text = _get(address + "/metrics")
        assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
        assert value(parse(text), "processcache_job_consecutive_failures", group="ops", job_name="flaky",
                     machine="web1") == 2
        scrape = urllib.request.Request(address + "/metrics", headers={"Accept-Encoding": "gzip"})  # as Prometheus
        with urllib.request.urlopen(scrape, timeout=60) as answer:
            assert answer.headers["Content-Encoding"] == "gzip" and answer.headers["Vary"] == "Accept-Encoding"
            assert parse(gzip.decompress(answer.read()).decode()).keys() == parse(text).keys()
        registry = processcache.Registry()
        assert registry.job("ops", "flaky")(lambda ctx: None).run(database=backend_url, machine="web1").ok
        samples = parse(_get(address + "/metrics")[2])  # the next scrape sees the run that ended since
        assert value(samples, "processcache_job_consecutive_failures", group="ops", job_name="flaky",
                     machine="web1") == 0
        assert value(samples, "processcache_job_machine_last_success_timestamp_seconds", group="ops",
                     job_name="flaky", machine="web1") > runs["flaky-ok"].finished_at.timestamp()
        assert _get(address + "/")[:2] == (200, "text/plain; charset=utf-8")
        assert _get(address + "/nothing")[0] == 404
    finally:
        server.send_signal(stop)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err  # a clean stop: SIGTERM from systemd, Ctrl-C by hand
    assert err == ""


def test_serve_answers_500_with_one_line_while_the_database_cannot_be_read(tmp_path):
    url = f"sqlite:///{tmp_path}/later.db"
    server, address = _serve(url)
    try:
        status, _, text = _get(address + "/metrics")
        assert status == 500 and len(text.strip().splitlines()) == 1 and "later.db" in text, text
        processcache.connect(url).close()  # the database appears: the next scrape reads it
        status, _, text = _get(address + "/metrics")
        assert status == 200 and value(parse(text), "processcache_jobs") == 0
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0 and len(err.strip().splitlines()) == 1 and "a scrape failed" in err, err


def test_a_database_password_never_shows_in_the_metrics_or_their_errors(secret_url):
    url, marker = secret_url
    seed(url)
    wrong = urlsplit(url)._replace(path="/no_such_database").geturl()
    printed, failed = cli("metrics", "--database", url), cli("metrics", "--database", wrong)
    assert printed.returncode == 0 and value(parse(printed.stdout), "processcache_jobs") == 5
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    server, address = _serve(wrong)
    try:
        status, _, text = _get(address + "/metrics")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert status == 500 and "no_such_database" in text
    assert [output for output in (printed.stdout, printed.stderr, failed.stdout, failed.stderr, text, err)
            if marker in output] == []


@pytest.mark.parametrize("args, says", [
    (["--serve", "nonsense"], "is not HOST:PORT"),
    (["--serve", "127.0.0.1:70000"], "is not HOST:PORT"),
    (["--serve", "no-such-host.invalid:9464"], "is not an address or a known host name"),
    (["--serve", "127.0.0.1:9464", "--output", "m.prom"], "--output or --serve, not both"),
    (["--output", "/no/such/folder/m.prom"], "no folder /no/such/folder"),
    (["--grace", "soon"], "is not a duration"),
])
def test_bad_input_is_a_usage_error_before_any_database_opens(tmp_path, args, says):
    url = f"sqlite:///{tmp_path}/never.db"
    refused = cli("metrics", "--database", url, *args, cwd=tmp_path)
    assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    assert os.listdir(tmp_path) == []


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    url = f"sqlite:///{tmp_path}/db.db"
    processcache.connect(url).close()
    server, address = _serve(url)
    try:
        taken = cli("metrics", "--database", url, "--serve", address.removeprefix("http://"))
    finally:
        server.terminate()
        server.communicate(timeout=60)
    assert taken.returncode == 1, taken.stderr
    assert taken.stderr.strip().splitlines() == [
        f"Error: {address.removeprefix('http://')} is in use: stop what listens there, or choose another port"
        " with --serve HOST:PORT"]


names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40)


@given(st.lists(st.tuples(names, names, names), min_size=1, max_size=5, unique=True))
def test_any_group_job_and_machine_name_reads_back_as_it_was(labels):
    """Label values are escaped as the format says: the parser gives back every name exactly."""
    text = render([Family("processcache_job_running", "Runs.", ("group", "job_name", "machine"),
                          [(label, n) for n, label in enumerate(labels)])])
    assert {tuple(key_labels[name] for name in ("group", "job_name", "machine")): found
            for (_, key), found in parse(text).items() for key_labels in [dict(key)]} == \
        {label: n for n, label in enumerate(labels)}
    assert text.count("\n") == 2 + len(labels)  # a newline in a name never starts a line


def test_escape_follows_the_text_format():
    assert escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


def test_a_scrape_reads_one_moment_so_a_run_that_fails_meanwhile_is_not_running_and_failed_at_once(backend_url,
                                                                                                 monkeypatch):
    """A scrape reads each machine's runs, then what `check` reports: a run that fails between the two must not
    be running in one family and a failed problem in another."""
    with a_run_in_progress(backend_url, "ops", "feed", "web3", RuntimeError("the feed is down")) as finish:
        with processcache.connect(backend_url, read_only=True) as db:
            from processcache.monitor import check as verdicts

            def check_after_the_run_failed(database, grace, now=None):
                finish()  # the run fails and its connection commits, between the scrape's reads
                return verdicts.check(database, grace, now)

            monkeypatch.setattr("processcache.monitor.metrics.check", check_after_the_run_failed)
            families = {family.name: family for family in collect(db)}
            assert [run.status for run in db.list_runs("ops/feed")] == ["failed"]
    running = dict(families["processcache_job_running"].samples)
    problems = {labels[2]: found for labels, found in families["processcache_job_problem"].samples
                if labels[:2] == ("ops", "feed")}
    assert running[("ops", "feed", "web3")] == 1 and problems["failed"] == 0


@pytest.mark.parametrize("read", ["metrics", "jobs"])
def test_a_run_deleted_while_it_is_read_is_read_as_it_was(backend_url, read):
    """prune or ``jobs delete`` may take a run between the statement that finds each machine's newest run and the
    one that reads that run; the read sees one moment (`Backend.snapshot`), so the run is read as it was, even
    where the server or the session reads each statement's newest commits (READ COMMITTED)."""
    from processcache.storage.metrics import read_ledger

    with processcache.connect(backend_url) as db, processcache.connect(backend_url) as other:
        job = processcache.Registry().job("ops", "gone")(lambda ctx: None)
        job.run(database=db, machine="m1")
        doomed = job.run(database=db, machine="m2")
        if db.backend.dialect.name == "mysql":  # a server set to READ COMMITTED, as PostgreSQL's default is
            db.backend.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        select = db.backend.select

        def deleting(sql, params=None):
            rows = select(sql, params)
            if "WITH" in sql and not deleting.done:  # each machine's newest run found: another process deletes one
                deleting.done = True
                other.backend.execute("DELETE FROM process_job_runs WHERE id = $id", {"id": doomed.id})
            return rows

        deleting.done = False
        db.backend.select = deleting
        if read == "metrics":
            machines = {state.machine: state.last_status for state in read_ledger(db).machines}
            assert machines == {"m1": "succeeded", "m2": "succeeded"}
        else:
            (summary,) = db.jobs()
            assert summary.machines == ("m1", "m2") and summary.last_run.id == doomed.id
        assert deleting.done and [run.machine for run in db.list_runs("ops/gone")] == ["m1"]
