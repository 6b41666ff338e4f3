"""`processcache exec`: any command as a recorded run, as cron starts it."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import cli

from processcache import connect


def only_run(url, job):
    with connect(url) as db:
        [run] = db.history.list_runs(job)
        return db.run(run.id)


def start_exec(url, *args):
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    return subprocess.Popen([sys.executable, "-m", "processcache", "exec", "-d", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_command_that_fails_exits_with_its_code_recorded_with_its_output(backend_url):
    done = cli("exec", "--job", "ops/backup", "-d", backend_url, "-m", "m", "--",
               "sh", "-c", "echo dumped 3 tables; echo 'disk full' >&2; exit 3")
    assert done.returncode == 3
    assert done.stdout == "dumped 3 tables\n" and "disk full" in done.stderr
    assert "ops/backup run 1 on m failed in" in done.stderr and done.stderr.rstrip().endswith("exit code 3")
    detail = only_run(backend_url, "ops/backup")
    assert (detail.run.status, detail.run.exit_code, detail.run.error, detail.exit_code) == \
        ("failed", 3, "exit code 3", 3)
    assert {log.level: log.message for log in detail.logs} == {"STDOUT": "dumped 3 tables", "STDERR": "disk full"}
    assert detail.run.traceback is None, "a command's failure has no Python traceback"


def test_a_command_that_succeeds_exits_0_and_no_shell_is_involved(backend_url):
    done = cli("exec", "--job", "ops/echo", "-d", backend_url, "--", "echo", "$HOME", "*")
    assert (done.returncode, done.stdout) == (0, "$HOME *\n")
    detail = only_run(backend_url, "ops/echo")
    assert (detail.run.status, detail.run.exit_code) == ("succeeded", 0)


def test_options_after_the_command_are_the_commands(tmp_path):
    done = cli("exec", "--job", "ops/ls", "-d", f"sqlite:///{tmp_path}/e.db", "ls", "-d", str(tmp_path))
    assert (done.returncode, done.stdout) == (0, f"{tmp_path}\n"), done.stderr


def test_a_command_killed_by_a_signal_records_the_signal(backend_url):
    done = cli("exec", "--job", "ops/crash", "-d", backend_url, "--", "sh", "-c", "kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL
    run = only_run(backend_url, "ops/crash").run
    assert (run.status, run.signal, run.exit_code, run.error) == ("failed", signal.SIGKILL, 137, "killed by SIGKILL")


def test_a_command_not_found_is_127_and_not_executable_126_both_recorded(backend_url, tmp_path):
    missing = cli("exec", "--job", "ops/missing", "-d", backend_url, "--", "/no/such/backup-tool")
    assert missing.returncode == 127 and "command not found: /no/such/backup-tool" in missing.stderr
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    refused = cli("exec", "--job", "ops/refused", "-d", backend_url, "--", str(script))
    assert refused.returncode == 126 and "is not executable" in refused.stderr
    assert (only_run(backend_url, "ops/missing").run.status, only_run(backend_url, "ops/missing").run.exit_code) \
        == ("failed", 127)
    assert only_run(backend_url, "ops/refused").run.exit_code == 126


def test_a_command_past_its_timeout_is_stopped_with_what_it_started_and_exits_124(backend_url):
    marker = f"{60 + uuid.uuid4().int % 1000 / 1000:.3f}"  # a sleep no other test runs
    started = time.monotonic()
    done = cli("exec", "--job", "ops/hangs", "-d", backend_url, "--timeout", "1", "--kill-after", "1", "--",
               "sh", "-c", f"trap '' TERM; sleep {marker}; echo never")
    assert done.returncode == 124 and time.monotonic() - started < 30
    run = only_run(backend_url, "ops/hangs").run
    assert (run.status, run.exit_code, run.signal) == ("timed-out", 128 + signal.SIGKILL, signal.SIGKILL)
    assert run.error == "timed out after 1.0s; it ignored SIGTERM and was killed 1.0s later"
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 1, \
        "the sleep the shell started was stopped with it"
    with connect(backend_url) as db:
        assert db.runs.locks("ops/hangs")[0].held is False
    again = cli("exec", "--job", "ops/hangs", "-d", backend_url, "--", "true")
    assert again.returncode == 0, "the next run starts: nothing left held"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_processcache_is_passed_to_the_command_and_the_run_ends_terminated(backend_url, signum):
    process = start_exec(backend_url, "--job", "ops/long", "--", sys.executable, "-u", "-c",
                         "import signal, sys, time\n"
                         "signal.signal(signal.SIGTERM, lambda n, f: (print('got', n), sys.exit(5)))\n"
                         "signal.signal(signal.SIGINT, lambda n, f: (print('got', n), sys.exit(5)))\n"
                         "signal.signal(signal.SIGHUP, lambda n, f: (print('got', n), sys.exit(5)))\n"
                         "print('ready'); time.sleep(60)")
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert out == f"got {signum}\n", "the command got the same signal and could clean up"
    run = only_run(backend_url, "ops/long").run
    assert (run.status, run.signal) == ("terminated", signum)


def test_a_second_run_is_skipped_while_the_first_holds_the_lock_and_allow_runs_beside_it(backend_url):
    first = start_exec(backend_url, "--job", "ops/nightly", "-m", "a", "--", sys.executable, "-u", "-c",
                       "import time; print('ready'); time.sleep(60)")
    assert first.stdout.readline() == "ready\n"
    skipped = cli("exec", "--job", "ops/nightly", "-d", backend_url, "-m", "b", "--", "echo", "never")
    beside = cli("exec", "--job", "ops/nightly", "-d", backend_url, "-m", "c", "--overlap", "allow", "--", "true")
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert skipped.returncode == 75 and skipped.stdout == "" and "holds the lock ops/nightly" in skipped.stderr
    assert beside.returncode == 0


def test_a_run_whose_lock_is_broken_stops_its_command_and_ends_lost(backend_url):
    process = start_exec(backend_url, "--job", "ops/frozen", "--lease", "1.5", "--", sys.executable, "-u", "-c",
                         "import time; print('ready'); time.sleep(60)")
    assert process.stdout.readline() == "ready\n"
    assert cli("locks", "break", "--yes", "ops/frozen", "-d", backend_url).returncode == 0
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    run = only_run(backend_url, "ops/frozen").run
    assert run.status == "lost" and "lost the lease on the lock ops/frozen" in run.error


def test_once_per_runs_each_slot_once_however_many_machines_fire_at_once(backend_url):
    machines = [f"web{n}" for n in range(6)]
    processes = [start_exec(backend_url, "--job", "ops/hourly", "--once-per", "1h", "-m", machine, "--",
                            "echo", "did the work") for machine in machines]
    codes = [process.communicate(timeout=120) and process.returncode for process in processes]
    with connect(backend_url) as db:
        runs = db.history.list_runs("ops/hourly", limit=100)
    by_slot = {}
    for run in runs:
        if run.status == "succeeded":
            by_slot.setdefault(run.slot, []).append(run.machine)
    assert all(len(ran) == 1 for ran in by_slot.values()), by_slot
    assert sorted(codes) == [0] * len(by_slot) + [75] * (len(machines) - len(by_slot))
    assert all("in this slot on" in run.error or "holds the lock" in run.error  # already ran, or already running
               for run in runs if run.status == "skipped")


def test_a_failed_attempt_of_a_command_is_retried(backend_url, tmp_path):
    counter = tmp_path / "count"
    done = cli("exec", "--job", "ops/flaky", "-d", backend_url, "--retries", "2", "--retry-delay", "0.1", "--",
               "sh", "-c", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]")
    assert done.returncode == 0 and "attempt 1 of 3 failed: exit code 1; trying again in 100ms" in done.stderr
    detail = only_run(backend_url, "ops/flaky")
    assert (detail.run.attempts, [(a.status, a.exit_code) for a in detail.attempts]) == \
        (2, [("failed", 1), ("succeeded", 0)])


def test_quiet_prints_nothing_on_success_and_the_commands_output_on_failure(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    fine = cli("exec", "-q", "--job", "ops/q", "-d", url, "--", "echo", "all good")
    failing = cli("exec", "-q", "--job", "ops/q", "-d", url, "--", "sh", "-c", "echo partial; exit 4")
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "", "")
    assert failing.returncode == 4 and failing.stdout == "partial\n" and "exit code 4" in failing.stderr


def test_json_prints_the_runs_record_with_its_exit_code(tmp_path):
    done = cli("exec", "--json", "--job", "ops/j", "-d", f"sqlite:///{tmp_path}/j.db", "--", "sh", "-c", "exit 2")
    record = json.loads(done.stdout)
    assert done.returncode == 2 and (record["status"], record["exit_code"]) == ("failed", 2)


@pytest.mark.parametrize("args, message", [
    (["--", "true"], "Missing option '--job'"),
    (["--job", "ops/x"], "Missing argument 'COMMAND...'"),
    (["--job", "ops/x", "--frobnicate", "--", "true"], "No such option '--frobnicate'"),
    (["--job", "ops/x", "--timeout", "soon", "--", "true"], "the timeout 'soon' is not a duration"),
    (["--job", "ops/x", "--retries", "many", "--", "true"], "retries='many': use a whole number"),
    (["--job", "ops/x", "--output-tail", "lots", "--", "true"], "output_tail='lots' is not a size"),
    (["--job", "no-slash", "--", "true"], "GROUP/JOB"),
    (["--job", "ops/x", "--wait-timeout", "1m", "--", "true"], "--wait-timeout applies only to --overlap wait"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_recorded(tmp_path, args, message):
    url = f"sqlite:///{tmp_path}/bad.db"
    done = cli("exec", "-d", url, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("Error:")] == \
        [done.stderr.splitlines()[-1]], "one line says what is wrong"
    assert not (tmp_path / "bad.db").exists(), "no database was opened, let alone a run recorded"


@pytest.mark.slow
def test_a_command_whose_lease_the_silent_database_cannot_confirm_is_stopped(server_backend_url):
    """A stalled server: the lease may be another run's once it has run out, and a command cannot be fenced."""
    from tcpproxy import Proxy

    connect(server_backend_url).close()
    marker = f"{70 + uuid.uuid4().int % 1000 / 1000:.3f}"
    with Proxy.before(server_backend_url) as proxy:
        url = proxy.url(server_backend_url) + "?read_timeout=2s&retry_for=3s&connect_timeout=2"
        process = start_exec(url, "--job", "ops/cut-off", "--lease", "3", "--kill-after", "1", "--", "sh", "-c",
                             f"echo ready; sleep {marker}")
        assert process.stdout.readline() == "ready\n"
        proxy.stall()
        started = time.monotonic()
        _, err = process.communicate(timeout=60)
        took = time.monotonic() - started
    assert process.returncode != 0 and took < 30, (took, err)
    assert "could not renew the lease on the lock ops/cut-off" in err
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 1, \
        "the command was stopped, not left running beside the lock's next holder"
