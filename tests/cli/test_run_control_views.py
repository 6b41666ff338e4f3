"""Run control made visible: what `runs`, `runs show`, `jobs`, `check` and `logs` show of
timed-out runs, a command's exit code, the attempts of a run that retried, its once_per slot and its output."""

import json
import time
from datetime import datetime

from cli_helpers import cli
from test_cli_style import RED, on_a_terminal

from processcache import Registry, connect
from processcache.records import RUN_STATUSES

#: A command that prints two lines on stdout and one on stderr, then fails with its own code.
FAILING = ["sh", "-c", "echo first line; echo second line; echo oops >&2; exit 3"]


def execute(url: str, job: str, *args: str) -> tuple[int, int]:
    """`processcache exec --job JOB ARGS` on machine m: (its exit code, the id of the run it recorded)."""
    ran = cli("exec", "--job", job, "-m", "m", "-d", url, *args)
    listed = cli("runs", job, "-n", "1", "--skipped", "--json", "-d", url)
    assert listed.returncode == 0, listed.stderr + ran.stderr
    return ran.returncode, json.loads(listed.stdout)[0]["id"]


def sleeper(url: str) -> int:
    """A Python job stopped by its 0.3 s timeout: the id of its timed-out run."""

    @Registry().job("py", "sleeper", timeout=0.3)
    def sleeper(ctx):
        time.sleep(30)

    run = sleeper.run(database=url, machine="m")
    assert run.status == "timed-out"
    return run.id


def table(url: str, *args: str) -> list[str]:
    shown = cli(*args, "-d", url)
    assert shown.returncode in (0, 1), shown.stderr
    return shown.stdout.splitlines()


def row_of(lines: list[str], first: object) -> list[str]:
    """The table row that starts with *first* (a run's id, a job's name), split on white space."""
    [row] = [line.split() for line in lines if line.split()[:1] == [str(first)]]
    return row


def test_runs_lists_timed_out_runs_the_attempts_and_a_commands_exit_code(backend_url):
    assert "timed-out" in RUN_STATUSES
    code, failed = execute(backend_url, "sh/fails", "--retries", "2", "--", *FAILING)
    assert code == 3
    timed_out = sleeper(backend_url)
    listed = cli("runs", "--status", "timed-out", "--json", "-d", backend_url)
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert (run["id"], run["status"], run["exit_code"], run["attempts"]) == (timed_out, "timed-out", None, None)
    lines = table(backend_url, "runs")
    assert lines[0].split()[:7] == ["RUN", "JOB", "MACHINE", "STARTED", "(UTC)", "STATUS", "EXIT"]
    assert row_of(lines, failed)[5:9] == ["failed", "(3", "attempts)", "3"]
    assert row_of(lines, timed_out)[5:7] == ["timed-out", "-"], "no exit code: a Python job's run"
    only_python = table(backend_url, "runs", "py")
    assert "EXIT" not in only_python[0].split(), "no column of dashes for Python jobs alone"
    assert row_of(only_python, timed_out)[5] == "timed-out"
    data = json.loads(cli("runs", "sh/fails", "--json", "-d", backend_url).stdout)
    assert [(r["status"], r["exit_code"], r["attempts"], r["slot"]) for r in data] == [("failed", 3, 3, None)]
    assert datetime.fromisoformat(data[0]["started_at"]).utcoffset().total_seconds() == 0
    coloured = on_a_terminal("runs", "-d", backend_url)
    assert RED + "timed-out" in coloured and RED + "failed (3 attempts)" in coloured


def test_runs_show_lists_a_retried_commands_attempts_then_its_output_line_by_line(backend_url):
    _, run_id = execute(backend_url, "sh/fails", "--retries", "2", "--", *FAILING)
    shown = cli("runs", "show", run_id, "-d", backend_url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "exit code: 3" in lines and "error:     exit code 3" in lines
    start = lines.index("attempts:  3")
    assert lines[start + 1].split() == ["#", "STATUS", "STARTED", "(UTC)", "EXIT", "DURATION", "ERROR"]
    attempts = [line.split() for line in lines[start + 2:start + 5]]
    assert [(a[0], a[1], a[4], a[-3:]) for a in attempts] == [
        (str(n), "failed", "3", ["exit", "code", "3"]) for n in (1, 2, 3)]
    assert lines[start + 5] == "logs:      4", "the attempts come before the logs"
    stdout = next(i for i, line in enumerate(lines) if line.endswith(f"run {run_id} [STDOUT]"))
    heading = "  [processcache: attempt {} of 3]"
    assert lines[stdout + 1:stdout + 9] == ["  first line", "  second line", heading.format(2), "  first line",
                                            "  second line", heading.format(3), "  first line", "  second line"], \
        "each attempt's output, indented, under its heading"
    assert lines[stdout + 9].endswith(f"run {run_id} [STDERR]")
    assert lines[stdout + 10:] == ["  oops", heading.format(2), "  oops", heading.format(3), "  oops"]
    data = json.loads(cli("runs", "show", run_id, "--json", "-d", backend_url).stdout)
    assert (data["exit_code"], data["run"]["exit_code"], data["run"]["attempts"]) == (3, 3, 3)
    assert [(a["number"], a["status"], a["exit_code"], a["error"]) for a in data["attempts"]] == [
        (n, "failed", 3, "exit code 3") for n in (1, 2, 3)]
    assert all(datetime.fromisoformat(a["started_at"]).utcoffset().total_seconds() == 0 for a in data["attempts"])
    output = {log["level"]: log["message"] for log in data["logs"] if log["level"]}
    assert output == {"STDOUT": "first line\nsecond line\n[processcache: attempt 2 of 3]\nfirst line\nsecond line\n"
                                "[processcache: attempt 3 of 3]\nfirst line\nsecond line",
                      "STDERR": "oops\n[processcache: attempt 2 of 3]\noops\n[processcache: attempt 3 of 3]\noops"}


def test_a_timed_out_run_shows_exit_code_124_and_check_reports_it_as_timed_out(backend_url):
    code, command = execute(backend_url, "sh/hangs", "--timeout", "0.5", "--", "sleep", "30")
    assert code == 124
    python = sleeper(backend_url)
    shown = cli("runs", "show", command, "-d", backend_url).stdout.splitlines()
    assert "status:    timed-out" in shown and "error:     timed out after 500ms" in shown
    assert "exit code: 124 (the command's own: 143)" in shown, "SIGTERM stopped it: 128 + 15"
    assert "exit code: 124" in cli("runs", "show", python, "-d", backend_url).stdout.splitlines()
    checked = cli("check", "--json", "-d", backend_url)
    assert checked.returncode == 1
    problems = json.loads(checked.stdout)["problems"]
    assert [(p["job"], p["kind"], p["detail"], p["run_id"]) for p in problems] == [
        ("py/sleeper", "timed-out", "timed out after 300ms", python),
        ("sh/hangs", "timed-out", "timed out after 500ms", command)]
    assert (problems[1]["run"]["machine"], problems[1]["run"]["exit_code"]) == ("m", 143)
    assert row_of(table(backend_url, "check"), "sh/hangs")[1:3] == ["timed-out", str(command)]
    jobs = row_of(table(backend_url, "jobs"), "sh/hangs")
    assert jobs[3:5] == ["timed-out", "143"]


def test_runs_show_prints_the_once_per_slot_the_run_claimed(backend_url):
    code, first = execute(backend_url, "sh/hourly", "--once-per", "1h", "--", "true")
    again, second = execute(backend_url, "sh/hourly", "--once-per", "1h", "--", "true")
    assert (code, again) == (0, 75)
    data = json.loads(cli("runs", "show", first, "--json", "-d", backend_url).stdout)
    slot = datetime.fromisoformat(data["run"]["slot"])
    assert slot.utcoffset().total_seconds() == 0 and (slot.minute, slot.second) == (0, 0)
    shown = cli("runs", "show", first, "-d", backend_url).stdout.splitlines()
    [line] = [line for line in shown if line.startswith("slot:")]
    assert line.startswith(f"slot:      {slot:%Y-%m-%d %H:%M:%S} UTC, ")
    assert line.endswith("(the once_per slot it claimed)")
    assert not any(line.startswith(("slot:", "attempts:")) for line in
                   cli("runs", "show", second, "-d", backend_url).stdout.splitlines()), "the skipped run claimed none"


def test_check_judges_runs_not_attempts(backend_url):
    registry = Registry()
    tries = []

    @registry.job("py", "third-time-lucky", retries=2)
    def lucky(ctx):
        tries.append(1)
        if len(tries) < 3:
            raise RuntimeError("not yet")

    @registry.job("py", "hopeless", retries=2)
    def hopeless(ctx):
        raise RuntimeError("down")

    with connect(backend_url) as db:
        assert (lucky.run(database=db, machine="m").status, len(tries)) == ("succeeded", 3)
        assert db.check() == [], "a run that succeeded on its third attempt is well"
        failed = hopeless.run(database=db, machine="m")
        [problem] = db.check()
    assert (problem.job, problem.kind, problem.run_id) == ("py/hopeless", "failed", failed.id)
    assert problem.detail == "RuntimeError: down (3 attempts)" and problem.run.attempts == 3
    checked = cli("check", "-d", backend_url)
    assert checked.returncode == 1 and len(checked.stdout.splitlines()) == 2, "one header, one problem"
    jobs = table(backend_url, "jobs")
    assert "EXIT" not in jobs[0].split()
    assert row_of(jobs, "py/third-time-lucky")[3:6] == ["succeeded", "(3", "attempts)"]
    [summary] = [s for s in json.loads(cli("jobs", "--json", "-d", backend_url).stdout) if s["job"] == "hopeless"]
    assert (summary["last_run"]["attempts"], summary["last_run"]["exit_code"]) == (3, None)


def test_logs_prints_what_a_run_printed_indented_and_its_type_is_generic(backend_url):
    _, run_id = execute(backend_url, "sh/fails", "--retries", "1", "--", *FAILING)
    lines = table(backend_url, "logs", "--run", str(run_id))
    levels = [line.rsplit(" ", 1)[-1] for line in lines if not line.startswith("  ")]
    assert levels[1:] == ["[STDOUT]", "[STDERR]"] and "[WARNING] attempt 1 of 2 failed" in lines[0]
    heading = "  [processcache: attempt 2 of 2]"
    assert lines[2:7] == ["  first line", "  second line", heading, "  first line", "  second line"]
    assert lines[8:] == ["  oops", heading, "  oops"]
    warnings = table(backend_url, "logs", "--run", str(run_id), "--type", "warning")
    assert len(warnings) == 1 and "[WARNING]" in warnings[0], "the output is not a warning"
    generic = table(backend_url, "logs", "--run", str(run_id), "--type", "generic")
    assert [line for line in generic if not line.startswith("  ")] == lines[1:2] + lines[7:8]
    printed = cli("logs", "--run", run_id, "--json", "-d", backend_url).stdout
    streamed = [json.loads(line) for line in printed.splitlines()]
    assert [(log["type"], log["level"]) for log in streamed] == [
        ("WARNING", None), ("GENERIC", "STDOUT"), ("GENERIC", "STDERR")]
