"""`run --job`: a job whose code no longer loads is recorded as a failed run that `check` reports."""

import json
import os
import subprocess
import sys
import textwrap
import time

from channel_servers import Webhook
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


HOLDER = textwrap.dedent("""
    import os, time
    from pathlib import Path
    from processcache import job

    @job("etl", "crm", expect_every="1h")
    def crm(ctx):
        Path(os.environ["HOLDER_STARTED"]).touch()
        deadline = time.monotonic() + 60
        while not Path(os.environ["HOLDER_RELEASE"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
""")


def test_a_load_failure_while_another_machine_holds_the_lock_is_a_failed_run_check_reports(backend_url, tmp_path):
    """Issue 27, point 4: vm1's run holds etl/crm's lock when vm2's broken deploy fails to import the job's file."""
    good, broken = tmp_path / "good" / "etl.py", tmp_path / "broken" / "etl.py"
    good.parent.mkdir()
    broken.parent.mkdir()
    good.write_text(HOLDER)
    broken.write_text("import crm_client_not_installed\n" + HOLDER)
    started, release = tmp_path / "started", tmp_path / "release"
    env = {"HOLDER_STARTED": str(started), "HOLDER_RELEASE": str(release)}
    holder = subprocess.Popen([sys.executable, "-m", "processcache", "run", "--job", "etl/crm", f"{good}:crm",
                               "-m", "vm1", "-d", backend_url], env={**os.environ, **env}, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.stderr.read()
            time.sleep(0.05)
        for target in (f"{broken}:crm", f"{good}:crm_exprot"):
            failed = cli("run", "--job", "etl/crm", target, "-m", "vm2", "-d", backend_url, env=env)
            assert failed.returncode == 1, failed.stderr
            assert "skipped" not in failed.stderr and "failed" in failed.stderr.splitlines()[-1], failed.stderr
        assert "crm_client_not_installed" in cli("runs", "-d", backend_url).stdout
        code, found = problems(backend_url)
        assert code == 1 and "crm_exprot" in found[("etl/crm", "failed")]["detail"]
    finally:
        release.touch()
        holder.communicate(timeout=60)
    assert holder.returncode == 0
    with connect(backend_url) as db:
        runs = db.history.list_runs(limit=10)
    assert sorted((r.machine, r.status) for r in runs) == [("vm1", "succeeded"), ("vm2", "failed"), ("vm2", "failed")]
    assert "no module named 'crm_client_not_installed'" in " ".join(r.error or "" for r in runs).lower()


def test_a_typoed_target_is_one_line_and_no_frame_of_processcache_is_stored_or_sent(backend_url, tmp_path):
    """Issue 27, point 8: `run --job etl/crm jobs/etl.py:crm_exprot` says the one line that lists the file's jobs."""
    jobs = tmp_path / "etl.py"
    jobs.write_text("from processcache import job\n\n@job('etl', 'crm')\ndef crm(ctx):\n    pass\n")
    typo = cli("run", "--job", "etl/crm", f"{jobs}:crm_exprot", "-m", "vm2", "-d", backend_url)
    assert typo.returncode == 1
    assert typo.stderr.count("\n") == 1, typo.stderr
    assert f"{jobs} has no attribute 'crm_exprot' (jobs in it: crm)" in typo.stderr
    assert "processcache: etl/crm run 1 on vm2 failed" in typo.stderr
    with connect(backend_url) as db:
        detail = db.run(1)
    assert detail is not None and detail.run.status == "failed" and "crm_exprot" in detail.run.error
    stored = (detail.run.traceback or "") + "".join(log.message for log in detail.logs)
    assert "Traceback" not in stored and "processcache/" not in stored, stored
    receiver = Webhook()
    try:
        sent = cli("check", "--notify", receiver.url, "-d", backend_url)
        assert sent.returncode == 1, sent.stderr
        [(_path, body)] = receiver.received
    finally:
        receiver.close()
    assert "crm_exprot" in body["text"] and "crm_exprot" in body["error"]
    assert not any("Traceback" in line or "processcache/" in line for line in body["log_tail"]), body["log_tail"]
