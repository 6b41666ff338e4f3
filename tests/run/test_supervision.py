"""`processcache exec` stops the whole tree its command started: on a timeout, a signal, a lost lease, its own
death, and when the command exits leaving children behind. Real processes, real databases."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import cli
from test_exec import only_run, start_exec


def marker() -> str:
    """A sleep's duration no other test uses, to find its process with pgrep."""
    return f"{300 + uuid.uuid4().int % 100000 / 1000:.3f}"


def running(mark: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"sleep {mark}"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def wait_until_gone(mark: str, within: float) -> float:
    """Seconds until no `sleep MARK` runs; fails the test if one still runs after *within*."""
    started = time.monotonic()
    while running(mark):
        assert time.monotonic() - started < within, f"still running after {within} s: {running(mark)}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_timeout_ends_a_grandchild_that_ignores_sigterm_and_one_that_called_setsid(backend_url):
    ignoring, detached = marker(), marker()
    script = (f"bash -c \"trap '' TERM; sleep {ignoring}\" & setsid sh -c \"trap '' TERM; sleep {detached}\" &"
              " sleep 1000")
    done = cli("exec", "--job", "ops/tree", "-d", backend_url, "--timeout", "2s", "--kill-after", "1s", "--",
               "bash", "-c", script)
    assert done.returncode == 124, done.stderr
    assert running(ignoring) == [] and running(detached) == [], "nothing outlives a run recorded timed-out"
    run = only_run(backend_url, "ops/tree").run
    assert run.status == "timed-out"


def test_a_command_that_exits_0_leaving_a_child_has_the_child_stopped_and_the_run_says_so(backend_url):
    mark = marker()
    # the background child is named sleep once its fork of sh has exec'd it: wait for that before exiting
    done = cli("exec", "--job", "ops/leaves", "-d", backend_url, "--", "sh", "-c",
               f"sleep {mark} & until [ \"$(cat /proc/$!/comm)\" = sleep ]; do :; done; echo hi")
    assert done.returncode == 0 and done.stdout == "hi\n", done.stderr
    assert running(mark) == [], "the background child does not run on beside the next run"
    detail = only_run(backend_url, "ops/leaves")
    assert detail.run.status == "succeeded"
    [warning] = [log for log in detail.logs if log.type.value == "WARNING"]
    assert warning.message.startswith("the command exited and left 1 process running: sleep (pid ")
    assert "they were stopped (SIGTERM, SIGKILL 10s later)" in warning.message
    assert "left 1 process running: sleep" in done.stderr, "the terminal and cron's mail say it too"


def test_a_signal_to_processcache_ends_a_detached_grandchild_that_ignores_sigterm(backend_url):
    mark = marker()
    process = start_exec(backend_url, "--job", "ops/signalled", "--kill-after", "1", "--", "sh", "-c",
                         f"setsid sh -c \"trap '' TERM; sleep {mark}\" & echo ready; sleep 1000")
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert running(mark) == [], "the run ended terminated with nothing of it left running"
    assert only_run(backend_url, "ops/signalled").run.status == "terminated"


def test_processcache_killed_with_sigkill_takes_the_whole_tree_with_it(backend_url):
    mark, detached = marker(), marker()
    process = start_exec(backend_url, "--job", "ops/orphaned", "--kill-after", "1", "--", "sh", "-c",
                         f"setsid sh -c \"trap '' TERM; sleep {detached}\" & echo ready; sleep {mark}")
    assert process.stdout.readline() == "ready\n"
    assert running(mark) and running(detached)
    process.kill()
    process.communicate(timeout=60)
    took = max(wait_until_gone(mark, 10), wait_until_gone(detached, 10))
    assert took < 5, "SIGTERM, then SIGKILL after --kill-after (1 s), well before the lease (60 s) frees the lock"


def test_a_lost_lease_kills_the_command_at_once_even_if_it_handles_sigterm(backend_url, tmp_path):
    got = tmp_path / "got-term"
    process = start_exec(backend_url, "--job", "ops/taken", "--lease", "1.5", "--kill-after", "60", "--",
                         "sh", "-c", f"trap 'touch {got}' TERM; echo ready; while :; do sleep 0.1; done")
    assert process.stdout.readline() == "ready\n"
    assert cli("locks", "break", "--yes", "ops/taken", "-d", backend_url).returncode == 0
    broken = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert time.monotonic() - broken < 5, "not the --kill-after grace (60 s): SIGKILL at once"
    assert process.returncode == 1, err
    assert not got.exists(), "no SIGTERM first: the command never ran on after its lease was lost"
    run = only_run(backend_url, "ops/taken").run
    assert (run.status, run.signal) == ("lost", None) and "lost the lease on the lock ops/taken" in run.error


def test_lost_lease_grace_gives_the_command_sigterm_first(tmp_path):
    url, got = f"sqlite:///{tmp_path}/g.db", tmp_path / "got-term"
    process = start_exec(url, "--job", "ops/graceful", "--lease", "1.5", "--lost-lease-grace", "5s", "--", "sh",
                         "-c", f"trap 'touch {got}; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    assert process.stdout.readline() == "ready\n"
    assert cli("locks", "break", "--yes", "ops/graceful", "-d", url).returncode == 0
    process.communicate(timeout=60)
    assert got.exists() and process.returncode == 1
    assert only_run(url, "ops/graceful").run.status == "lost"


@pytest.mark.parametrize("own", [75, 124])
def test_a_commands_own_75_or_124_is_not_read_as_skipped_or_timed_out(backend_url, own):
    done = cli("exec", "--job", "ops/codes", "-d", backend_url, "--", "sh", "-c", f"exit {own}")
    assert done.returncode == 1, "75 means skipped and 124 timed out: a command's own is reported as 1"
    run = only_run(backend_url, "ops/codes").run
    assert (run.status, run.exit_code, run.error) == ("failed", own, f"exit code {own}"), "the record keeps it"
    assert done.stderr.rstrip().endswith(f"failed in {run.duration:.3f} s: exit code {own}")


def test_quiet_keeps_no_file_of_what_a_never_ending_writer_prints_and_shows_its_start_and_end(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "processcache", "exec", "-q", "--job", "ops/yes", "-d", url, "--timeout", "4s",
         "--", "sh", "-c", "echo first line; yes 'a line that yes repeats'; exit 3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(2.5)
    files = [os.readlink(f"/proc/{process.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{process.pid}/fd")]
    out, err = process.communicate(timeout=60)
    held = [name for name in files if name.endswith("(deleted)")]
    assert held == [], "-q holds what it hides in memory, bounded, not in a file that grows with the output"
    assert process.returncode == 124, err
    assert out.startswith(b"first line\na line that yes repeats\n"), "the start of what it printed"
    assert len(out) < 2 * 1024 * 1024 + 64 * 1024 + 1024, "no more than the first 64 KiB and the last 1 MiB"
    cut = [line for line in out.splitlines() if line.startswith(b"[processcache -q: ")]
    assert len(cut) == 1 and b"bytes written here are left out" in cut[0], cut
    assert out.endswith(b"a line that yes repeats\n"), "the end, from a line's start"
