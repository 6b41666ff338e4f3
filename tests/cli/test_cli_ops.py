"""The operations commands, run as an operator would at 9 a.m."""

import json
import time

from cli_helpers import cli
from paths import HELPERS

from processcache import CacheContext, Registry, connect

JOBS = HELPERS / "cli_jobs.py"


def seed(url):
    registry = Registry()

    @registry.job("ops", "nightly", expect_every="1h", max_duration="10m")
    def nightly(ctx):
        ctx.create_cache("k", 1)
        ctx.logger.info("fetched 3 pages")
        return {"pages": 3}

    @registry.job("ops", "broken")
    def broken(ctx):
        ctx.create_log("about to fail")
        raise RuntimeError("API down at 3 a.m.")

    with connect(url) as db:
        return nightly.run(database=db, machine="box-1"), broken.run(database=db, machine="box-2")


def test_jobs_shows_last_run_status_machines_and_entries(backend_url):
    seed(backend_url)
    table = cli("jobs", "-d", backend_url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["JOB", "LAST", "RUN", "(UTC)", "STATUS", "DURATION", "ENTRIES", "MACHINES"]
    assert lines[1].startswith("ops/broken") and "failed" in lines[1] and lines[1].endswith("box-2")
    assert lines[2].startswith("ops/nightly") and "succeeded" in lines[2] and lines[2].endswith("box-1")
    data = json.loads(cli("jobs", "--json", "-d", backend_url).stdout)
    nightly = next(job for job in data if job["job"] == "nightly")
    assert nightly["entries"] == 1 and nightly["machines"] == ["box-1"] and nightly["expect_every"] == 3600
    assert nightly["last_run"]["result"] == {"pages": 3}


def test_runs_filters_and_json(backend_url):
    ok, bad = seed(backend_url)
    failed = cli("runs", "--status", "failed", "-d", backend_url)
    assert failed.returncode == 0
    assert "RuntimeError: API down at 3 a.m." in failed.stdout and "ops/nightly" not in failed.stdout
    one = json.loads(cli("runs", "ops/nightly", "--json", "-d", backend_url).stdout)
    assert [run["id"] for run in one] == [ok.id]
    assert json.loads(cli("runs", "--machine", "box-2", "--json", "-d", backend_url).stdout)[0]["id"] == bad.id
    assert "no runs match" in cli("runs", "--status", "lost", "-d", backend_url).stdout


def test_logs_filters(backend_url):
    ok, bad = seed(backend_url)
    all_logs = cli("logs", "-d", backend_url).stdout
    assert "[INFO] fetched 3 pages" in all_logs and "[GENERIC] about to fail" in all_logs
    errors = cli("logs", "ops/broken", "--type", "error", "-d", backend_url).stdout
    assert "RuntimeError: API down" in errors and "about to fail" not in errors
    by_run = [json.loads(line) for line in cli("logs", "--run", ok.id, "--json", "-d", backend_url).stdout.splitlines()]
    assert [(log["level"], log["message"]) for log in by_run] == [("INFO", "fetched 3 pages")]
    assert cli("logs", "--since", "1h", "--machine", "box-1", "-d", backend_url).stdout.count("\n") == 1
    assert cli("logs", "--since", "2999-01-01T00:00", "-d", backend_url).stdout == ""
    paged = cli("logs", "--offset", "1", "--limit", "1", "--json", "-d", backend_url).stdout.splitlines()
    assert len(paged) == 1 and json.loads(paged[0])["message"] == "about to fail"
    bad_since = cli("logs", "--since", "yesterday", "-d", backend_url)
    assert bad_since.returncode == 2 and "'yesterday' is neither a duration ago" in bad_since.stderr


def test_logs_follow_prints_new_logs_as_they_come(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/f.db"
    seed(url)
    follower = subprocess.Popen([sys.executable, "-m", "processcache", "logs", "--follow", "-d", url],
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        registry = Registry()

        @registry.job("ops", "late")
        def late(ctx):
            ctx.create_log("written while following")

        late.run(database=url, machine="m")
        deadline = time.time() + 20
        seen = ""
        while "written while following" not in seen and time.time() < deadline:
            seen += follower.stdout.readline()
        assert "written while following" in seen
    finally:
        follower.kill()
        follower.communicate()


def test_locks_lists_and_breaks_after_asking(backend_url):
    with connect(backend_url) as db:
        db.runs.acquire("ops/nightly", "box-9", 4242, run_id=77, lease=300)
    listed = cli("locks", "-d", backend_url)
    assert "ops/nightly" in listed.stdout and "box-9" in listed.stdout and "4242" in listed.stdout
    assert json.loads(cli("locks", "--json", "-d", backend_url).stdout)[0]["run_id"] == 77
    refused = cli("locks", "break", "ops/nightly", "-d", backend_url, input="n\n")
    assert refused.returncode == 1 and "Break ops/nightly, held by run 77 on box-9 (pid 4242)?" in refused.stdout
    assert "ops/nightly" in cli("locks", "-d", backend_url).stdout
    broken = cli("locks", "break", "ops/nightly", "--yes", "-d", backend_url)
    assert broken.returncode == 0 and "broke the lock ops/nightly" in broken.stdout
    assert "no lock is held" in cli("locks", "-d", backend_url).stdout
    again = cli("locks", "break", "ops/nightly", "--yes", "-d", backend_url)
    assert again.returncode == 1 and "no one holds the lock ops/nightly" in again.stderr


def test_check_exits_0_when_well_and_1_for_each_problem(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    assert cli("check", "-d", url).returncode == 1, "no database there yet"
    registry = Registry()

    @registry.job("ops", "quick", expect_every="1s")
    def quick(ctx):
        pass

    quick.run(database=url, machine="m")
    well = cli("check", "-d", url)
    assert well.returncode == 0 and "all jobs are well" in well.stdout
    time.sleep(1.2)
    overdue = cli("check", "--grace", "0s", "--json", "-d", url)
    assert overdue.returncode == 1
    report = json.loads(overdue.stdout)
    assert report["ok"] is False and [p["kind"] for p in report["problems"]] == ["overdue"]

    for name, options, body, kind in [
            ("failing", {}, lambda ctx: 1 / 0, "failed"),
            ("too-long", {"max_duration": "0.01s"}, lambda ctx: time.sleep(0.05), "too-long")]:
        url = f"sqlite:///{tmp_path}/{name}.db"
        registry.job("ops", name, **options)(body).run(database=url, machine="m")
        result = cli("check", "-d", url)
        assert result.returncode == 1 and f"ops/{name}" in result.stdout and kind in result.stdout
    url = f"sqlite:///{tmp_path}/lost.db"
    with connect(url) as db:
        db.runs.start("ops", "lost", "m", 1, lease=0.01)
    time.sleep(0.1)
    lost = cli("check", "-d", url)
    assert lost.returncode == 1 and "lost" in lost.stdout


def test_prune_dry_run_then_prune(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    seed(url)
    seed(url)  # each job's latest run, and its logs, are kept whatever their age
    dry = cli("prune", "--runs-older-than", "0s", "--logs-older-than", "0s", "--dry-run", "-d", url)
    assert dry.returncode == 0 and dry.stdout.strip() == "would delete 2 runs, would delete 3 logs"
    kept = cli("prune", "--runs-older-than", "0s", "--keep-failed-for", "30d", "--json", "-d", url)
    assert json.loads(kept.stdout) == {"dry_run": False, "runs": 1}
    statuses = [run["status"] for run in json.loads(cli("runs", "--json", "-d", url).stdout)]
    assert sorted(statuses) == ["failed", "failed", "succeeded"]
    nothing = cli("prune", "-d", url)
    assert nothing.returncode == 2 and "say what to prune" in nothing.stderr
    bad = cli("prune", "--runs-older-than", "a while", "-d", url)
    assert bad.returncode == 1 and "--runs-older-than 'a while' is not a duration" in bad.stderr


def test_run_overlap_options_and_exit_75(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    with connect(url) as db:
        db.runs.acquire("cli/env", "elsewhere", 1, run_id=5, lease=300)
    skipped = cli("run", f"{JOBS}:env", "-d", url)
    assert skipped.returncode == 75
    assert "skipped: run 5 on elsewhere (pid 1) holds the lock cli/env" in skipped.stderr
    waited = cli("run", f"{JOBS}:env", "-d", url, "--overlap", "wait", "--wait-timeout", "0.5s")
    assert waited.returncode == 75 and "after waiting 0.5s" in waited.stderr
    assert cli("run", f"{JOBS}:env", "-d", url, "--overlap", "allow").returncode == 0
    bad = cli("run", f"{JOBS}:env", "-d", url, "--overlap", "wait", "--wait-timeout", "soon")
    assert bad.returncode == 1 and "wait_timeout 'soon' is not a duration" in bad.stderr
    statuses = json.loads(cli("runs", "--skipped", "--json", "-d", url).stdout)
    assert [run["status"] for run in statuses] == ["succeeded", "skipped", "skipped"]
    assert [run["status"] for run in json.loads(cli("runs", "--json", "-d", url).stdout)] == ["succeeded"]


def test_every_command_has_help_with_an_example():
    for command in ["jobs", "runs", "logs", "locks", "check", "prune"]:
        result = cli(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout, command
    assert "exit 1 if any" in cli("check", "--help").stdout
    assert "75" in cli("run", "--help").stdout


def runs_json(url, *args):
    return [(run["id"], run["status"]) for run in json.loads(cli("runs", "--json", *args, "-d", url).stdout)]


def test_runs_status_lost_lists_a_dead_run_before_anyone_takes_its_lock(backend_url):
    with connect(backend_url) as db:
        dead = db.runs.start("ops", "dead", "box-1", 1, lease=0.3)
        assert db.runs.acquire("ops/dead", "box-1", 1, dead.id, lease=0.3)
        alive = db.runs.start("ops", "alive", "box-1", 2, lease=300)
    time.sleep(0.8)
    assert runs_json(backend_url, "--status", "lost") == [(dead.id, "lost")]
    assert runs_json(backend_url, "--status", "running") == [(alive.id, "running")]
    table = cli("runs", "--status", "lost", "-d", backend_url).stdout.splitlines()
    assert len(table) == 2 and table[1].split()[:2] == [str(dead.id), "ops/dead"] and "lost" in table[1]


def test_check_reports_a_run_still_going_past_its_max_duration(backend_url):
    with connect(backend_url) as db:
        hung = db.runs.start("ops", "hung", "box-1", 1, lease=300, max_duration=0.5)
        db.runs.start("ops", "within", "box-1", 2, lease=300, max_duration=3600)
    time.sleep(1.0)
    result = cli("check", "--json", "-d", backend_url)
    assert result.returncode == 1, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["job"], p["kind"], p["run_id"]) for p in problems] == [("ops/hung", "too-long", hung.id)]
    table = cli("check", "-d", backend_url).stdout
    assert "ops/hung" in table and "has been running for" in table and "ops/within" not in table


def test_prune_expired_deletes_every_batch(backend_url):
    count = 2345  # more than two of prune's batches of 1,000
    with connect(backend_url) as db:
        ctx = CacheContext(db, "ops", "expiring", "box-1")
        ctx.create_cache_many([(f"k{n % 7}", n) for n in range(count)], ttl=0.5)
        ctx.set_cache("live", "kept")
    time.sleep(1.0)
    assert cli("prune", "--expired", "--dry-run", "-d", backend_url).stdout.strip() == f"would delete {count} entries"
    pruned = cli("prune", "--expired", "--json", "-d", backend_url)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {"dry_run": False, "entries": count}
    with connect(backend_url) as db:
        assert db.backend.values("SELECT entry_key FROM process_cache", {}) == ["live"]
    assert cli("prune", "--expired", "--dry-run", "-d", backend_url).stdout.strip() == "would delete 0 entries"


def test_logs_show_the_newest_page_oldest_first_and_offset_pages_back_from_the_newest(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "ops", "pager", "box-1")
        for n in range(7):
            ctx.create_log(f"m{n}")

    def page(*args):
        out = cli("logs", "ops/pager", "--json", *args, "-d", backend_url).stdout
        return [json.loads(line)["message"] for line in out.splitlines()]

    assert page() == [f"m{n}" for n in range(7)]
    assert page("--limit", "3") == ["m4", "m5", "m6"]
    assert page("--limit", "3", "--offset", "0") == ["m4", "m5", "m6"]
    assert page("--limit", "3", "--offset", "3") == ["m1", "m2", "m3"]
    assert page("--limit", "3", "--offset", "6") == ["m0"]
    assert page("--limit", "3", "--offset", "7") == []
    table = cli("logs", "ops/pager", "--limit", "2", "--offset", "1", "-d", backend_url).stdout.splitlines()
    assert [line.rsplit(" ", 1)[1] for line in table] == ["m4", "m5"]


def test_check_reports_a_dead_run_only_as_lost_not_also_as_running_too_long(backend_url):
    with connect(backend_url) as db:
        dead = db.runs.start("ops", "dead", "m", 1, lease=0.2, max_duration=0.1)
    time.sleep(0.6)
    result = cli("check", "--json", "-d", backend_url)
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["job"], p["kind"], p["run_id"]) for p in problems] == [("ops/dead", "lost", dead.id)]


def test_check_on_a_database_without_jobs_says_so_and_fails(backend_url):
    connect(backend_url).close()  # the schema, and not one job
    result = cli("check", "-d", backend_url)
    assert result.returncode == 1, "a monitoring probe pointed at the wrong database must not pass"
    assert "no-jobs" in result.stdout and "holds no job" in result.stdout and "all jobs are well" not in result.stdout
    assert json.loads(cli("check", "--json", "-d", backend_url).stdout)["ok"] is False


def test_locks_break_acts_on_the_database_given_to_the_group(tmp_path):
    other, default = f"sqlite:///{tmp_path}/other.db", f"sqlite:///{tmp_path}/default.db"
    env = {"PROCESSCACHE_DATABASE_URL": default}
    for url in (other, default):
        with connect(url) as db:
            run = db.runs.start("ops", "held", "m", 1, lease=300)
            assert db.runs.acquire("ops/held", "m", 1, run.id, lease=300)
    broken = cli("locks", "-d", other, "break", "ops/held", "--yes", env=env)
    assert broken.returncode == 0, broken.stderr
    assert "ops/held" not in cli("locks", "-d", other).stdout, "the lock of the database given is broken"
    assert "ops/held" in cli("locks", env=env).stdout, "the default database's lock is untouched"
    twice = cli("locks", "-d", other, "break", "ops/held", "--yes", "-d", default)
    assert twice.returncode == 2 and "two different --database values" in twice.stderr
    as_json = cli("locks", "--json", "break", "ops/held", "--yes", env=env)  # --json of the group, as --database
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"lock": "ops/held", "run_id": run.id, "machine": "m", "pid": 1}
    assert "ops/held" not in cli("locks", env=env).stdout
