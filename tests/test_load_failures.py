"""`run --job`: a job whose code no longer loads is recorded as a failed run that `check` reports."""

import json
import textwrap

from cli_helpers import cli

from processcache import connect

JOBS = textwrap.dedent("""
    from processcache import job

    @job("ops", "nightly", expect_every="1h")
    def nightly(ctx):
        ctx.create_log("fine")

    @job("ops", "weekly")
    def weekly(ctx):
        ctx.create_log("weekly")
""")


def problems(url):
    result = cli("check", "--json", "-d", url)
    return result.returncode, {(p["job"], p["kind"]): p for p in json.loads(result.stdout)["problems"]}


def test_a_job_whose_module_no_longer_imports_is_a_failed_run_check_reports(backend_url, tmp_path):
    jobs = tmp_path / "jobs.py"
    jobs.write_text(JOBS)
    ok = cli("run", "--job", "ops/nightly", str(jobs), "-d", backend_url)
    assert ok.returncode == 0, ok.stderr
    assert problems(backend_url)[0] == 0
    jobs.write_text("import requests_that_is_not_installed\n" + JOBS)  # a deploy without its dependency
    broken = cli("run", "--job", "ops/nightly", str(jobs), "-d", backend_url)
    assert broken.returncode == 1
    assert "ModuleNotFoundError: No module named 'requests_that_is_not_installed'" in broken.stderr
    assert "ops/nightly run" in broken.stderr.splitlines()[-1] and "failed" in broken.stderr.splitlines()[-1]
    code, found = problems(backend_url)
    assert code == 1 and set(found) == {("ops/nightly", "failed")}
    assert "requests_that_is_not_installed" in found[("ops/nightly", "failed")]["detail"]
    with connect(backend_url) as db:
        [summary] = [s for s in db.history.jobs() if s.job == "nightly"]
        assert summary.expect_every == 3600, "the job's expectations outlive a run that could not load its code"
        [log] = db.store.logs(run_id=summary.last_run.id)
        assert "requests_that_is_not_installed" in log.message


def test_a_wrong_path_in_the_crontab_is_recorded_under_the_job_it_names(backend_url, tmp_path):
    missing = cli("run", "--job", "Ops/Nightly", str(tmp_path / "moved.py") + ":nightly", "-d", backend_url)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    code, found = problems(backend_url)
    assert code == 1 and "no such file" in found[("ops/nightly", "failed")]["detail"]


def test_job_picks_one_job_of_a_module_and_refuses_a_target_holding_another(backend_url, tmp_path):
    jobs = tmp_path / "jobs.py"
    jobs.write_text(JOBS)
    picked = cli("run", "-j", "ops/weekly", str(jobs), "-d", backend_url)
    assert picked.returncode == 0, picked.stderr
    assert "ops/weekly run" in picked.stderr
    wrong = cli("run", "--job", "ops/weekly", f"{jobs}:nightly", "-d", backend_url)
    assert wrong.returncode == 1 and "holds ops/nightly, not ops/weekly" in wrong.stderr
    with connect(backend_url) as db:
        runs = db.history.list_runs(limit=10)
    assert [(r.job, r.status) for r in runs] == [("weekly", "failed"), ("weekly", "succeeded")], \
        "the wrong target did not run ops/nightly"


def test_without_job_a_load_error_is_one_line_and_records_nothing(backend_url, tmp_path):
    result = cli("run", str(tmp_path / "moved.py"), "-d", backend_url)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such file" in result.stderr
    malformed = cli("run", "--job", "no-slash", str(tmp_path / "moved.py"), "-d", backend_url)
    assert malformed.returncode == 1 and "is not GROUP/JOB: write it as example/hello-world" in malformed.stderr


def test_a_load_failure_keeps_the_scope_the_jobs_code_declared(backend_url, tmp_path):
    jobs = tmp_path / "local.py"
    jobs.write_text("from processcache import job\n\n@job('ops', 'clean', lock='machine')\ndef clean(ctx):\n    pass\n")
    assert cli("run", "--job", "ops/clean", str(jobs), "-d", backend_url).returncode == 0
    jobs.write_text("import not_installed_anywhere\n")
    assert cli("run", "--job", "ops/clean", str(jobs), "-d", backend_url).returncode == 1
    with connect(backend_url) as db:
        assert db.runs.scope_of(db.history.job_id("ops/clean")) == "machine"
