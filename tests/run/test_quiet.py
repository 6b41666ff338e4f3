"""`processcache run` in a crontab: with -q, nothing printed unless the run fails, then everything;
exit codes and usage errors that say what to do."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cli_helpers import cli
from click.testing import CliRunner

from processcache import cache_session, connect
from processcache.cli.main import main
from processcache.run.quiet import HEAD_BYTES, TAIL_BYTES

JOBS = textwrap.dedent("""
    import logging
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from processcache import job

    logging.basicConfig()  # a handler on the real stderr, made before the run


    def chatter(ctx):
        print("printed to stdout")
        print("printed to stderr", file=sys.stderr)
        ctx.create_log("a log of the job")
        logging.getLogger("somelib").warning("a library's warning")
        subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)


    @job("quiet", "succeeds")
    def succeeds(ctx):
        chatter(ctx)


    @job("quiet", "fails")
    def fails(ctx):
        chatter(ctx)
        raise ValueError("the upstream API answered 500")


    @job("quiet", "sleeps")
    def sleeps(ctx):
        chatter(ctx)
        Path(os.environ["QUIET_STARTED"]).touch()
        time.sleep(60)


    @job("quiet", "floods")
    def floods(ctx):
        for n in range(40_000):
            print(f"line {n} " + "x" * 80)
        raise ValueError("after the flood")


    @job("quiet", "unrecordable")
    def unrecordable(ctx):
        chatter(ctx)
        ctx.database.backend.execute("ALTER TABLE process_job_runs RENAME TO process_job_runs_gone")
        raise ValueError("the real error")


    @job("quiet", "waits", overlap="wait")
    def waits(ctx):
        print("waited")
""")

CHATTER_OUT = "printed to stdout\na child process\n"
CHATTER_ERR = ["printed to stderr", "[GENERIC] a log of the job", "WARNING:somelib:a library's warning"]


@pytest.fixture
def jobs(tmp_path):
    path = tmp_path / "quiet_jobs.py"
    path.write_text(JOBS)
    return path


def test_a_quiet_run_that_succeeds_prints_nothing_at_all(backend_url, jobs, tmp_path):
    result = cli("run", "-q", f"{jobs}:succeeds", "-d", backend_url, "-m", "m", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    with connect(backend_url) as db:
        [run] = db.history.list_runs()
        assert run.status == "succeeded"
        logs = [(log.level, log.message) for log in db.store.logs()]
        assert logs == [(None, "a log of the job"), ("STDOUT", "printed to stdout"),
                        ("STDERR", "printed to stderr")], \
            "held back from the terminal, not from the database (what Python printed, without the job's log echoed)"


def test_a_quiet_run_skipped_by_the_lock_prints_nothing_and_exits_75(backend_url, jobs, tmp_path):
    with cache_session("quiet", "succeeds", machine="m", database=backend_url, overlap="skip"):
        result = cli("run", "-q", f"{jobs}:succeeds", "-d", backend_url, "-m", "m", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (75, "", "")


def test_a_quiet_run_that_fails_prints_everything_it_held_back_then_the_summary(backend_url, jobs, tmp_path):
    result = cli("run", "-q", f"{jobs}:fails", "-d", backend_url, "-m", "m", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == CHATTER_OUT
    lines = result.stderr.splitlines()
    assert lines[:3] == CHATTER_ERR
    assert lines[3] == "[ERROR] Traceback (most recent call last):"
    assert 'raise ValueError("the upstream API answered 500")' in result.stderr
    assert lines[-1].startswith("processcache: quiet/fails run 1 on m failed in ")
    assert lines[-1].endswith(": ValueError: the upstream API answered 500")


def test_a_quiet_run_stopped_by_a_signal_prints_everything_and_exits_128_plus_the_signal(jobs, tmp_path):
    started = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    process = subprocess.Popen([sys.executable, "-m", "processcache", "run", "-q", f"{jobs}:sleeps",
                                "-d", f"sqlite:///{tmp_path}/q.db", "-m", "m"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**env, "QUIET_STARTED": str(started)})
    deadline = time.monotonic() + 60
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert out == CHATTER_OUT
    assert err.splitlines()[:3] == CHATTER_ERR
    assert "quiet/sleeps run 1 on m terminated in" in err.splitlines()[-1] and "SIGTERM" in err.splitlines()[-1]


def test_a_quiet_run_whose_end_cannot_be_recorded_prints_everything_and_both_errors(jobs, tmp_path):
    result = cli("run", "-q", f"{jobs}:unrecordable", "-d", f"sqlite:///{tmp_path}/q.db", "-m", "m")
    assert result.returncode == 1
    assert result.stdout == CHATTER_OUT
    assert result.stderr.splitlines()[:3] == CHATTER_ERR
    assert 'raise ValueError("the real error")' in result.stderr
    last = result.stderr.splitlines()[-1]
    assert "the job failed (ValueError: the real error), but recording that failed" in last


def test_what_a_quiet_run_shows_is_bounded_to_its_first_and_last_lines(jobs, tmp_path):
    result = cli("run", "-q", f"{jobs}:floods", "-d", f"sqlite:///{tmp_path}/q.db", "-m", "m")
    assert result.returncode == 1
    lines = [f"line {n} " + "x" * 80 for n in range(40_000)]
    printed = sum(len(line) + 1 for line in lines)
    shown = result.stdout.splitlines()
    [notice] = [line for line in shown if line.startswith("[processcache -q: ")]
    assert notice.endswith(f"of {printed} bytes written here are left out; the end follows]")
    left_out = int(notice.split()[2])
    head, tail = shown[:shown.index(notice)], shown[shown.index(notice) + 1:]
    assert head == lines[:len(head)] and tail == lines[-len(tail):], "whole lines from the start and the end"
    assert printed - left_out == sum(len(line) + 1 for line in head + tail), "the count is what is not shown"
    assert HEAD_BYTES - 90 <= sum(len(line) + 1 for line in head) <= HEAD_BYTES
    assert TAIL_BYTES - 90 <= sum(len(line) + 1 for line in tail) <= TAIL_BYTES
    assert "ValueError: after the flood" in result.stderr.splitlines()[-1]


def test_a_run_without_quiet_prints_as_it_goes(jobs, tmp_path):
    result = cli("run", f"{jobs}:succeeds", "-d", f"sqlite:///{tmp_path}/q.db", "-m", "m")
    assert result.returncode == 0
    assert result.stdout == CHATTER_OUT
    assert result.stderr.splitlines()[:3] == CHATTER_ERR
    assert "quiet/succeeds run 1 on m succeeded in" in result.stderr.splitlines()[-1]


def test_quiet_under_clicks_cli_runner_runs_the_job(tmp_path):
    """CliRunner's streams have no file descriptor to hold back: the run still happens."""
    (tmp_path / "in_process_job.py").write_text(textwrap.dedent("""
        from processcache import job

        @job("quiet", "in-process")
        def in_process(ctx):
            print("ran")
    """))
    result = CliRunner().invoke(main, ["run", "-q", f"{tmp_path}/in_process_job.py", "-d", f"sqlite:///{tmp_path}/q.db"])
    assert result.exit_code == 0, result.output
    assert "ran" in result.output


def test_run_help_shows_the_crontab_that_mails_only_failures_and_every_exit_code():
    text = cli("run", "--help").stdout
    assert "MAILTO=ops@example.com" in text
    assert "processcache run -q --job example/hello-world /srv/jobs/hello.py:hello" in text
    codes = [line.split()[0] for line in text.split("Exit codes:")[1].split("Examples:")[0].splitlines()
             if line[:8].strip()]
    assert codes == ["0", "1", "2", "75", "128+n"]


@pytest.mark.parametrize("args, given", [
    (["--wait-timeout", "5m"], "quiet/succeeds has overlap='skip'"),
    (["--overlap", "skip", "--wait-timeout", "5m"], "--overlap skip"),
    (["--overlap", "allow", "--wait-timeout", "5m"], "--overlap allow"),
])
def test_wait_timeout_without_overlap_wait_is_a_one_line_usage_error(jobs, tmp_path, args, given):
    result = cli("run", f"{jobs}:succeeds", *args, "-d", f"sqlite:///{tmp_path}/q.db")
    assert result.returncode == 2
    assert result.stderr == (f"Error: --wait-timeout applies only to --overlap wait ({given}): add --overlap wait,"
                             " or leave out --wait-timeout\n")
    assert not (tmp_path / "q.db").exists(), "refused before the run"


@pytest.mark.parametrize("target, args", [
    ("succeeds", ["--overlap", "wait", "--wait-timeout", "5s"]),
    ("waits", ["--wait-timeout", "5s"]),
])
def test_wait_timeout_with_overlap_wait_runs(jobs, tmp_path, target, args):
    result = cli("run", f"{jobs}:{target}", *args, "-d", f"sqlite:///{tmp_path}/q.db")
    assert result.returncode == 0, result.stderr


def test_a_file_that_defines_no_job_is_a_one_line_usage_error(tmp_path):
    (tmp_path / "nothing_here.py").write_text("VALUE = 1\n")
    result = cli("run", tmp_path / "nothing_here.py", "-d", f"sqlite:///{tmp_path}/q.db")
    assert result.returncode == 2
    assert result.stderr == (f'Error: {tmp_path / "nothing_here.py"} defines no job:'
                             ' decorate a function with @job("group", "name")\n')
