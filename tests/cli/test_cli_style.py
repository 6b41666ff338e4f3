"""What people expect of a CLI: times that say their zone, colour only on a terminal, completion, suggestions."""

import json
import os
import pty
import subprocess
import sys

import pytest
from cli_helpers import cli
from paths import ROOT

from processcache import Registry, connect

RED = "\x1b[31m"


def seed(url: str) -> None:
    registry = Registry()

    @registry.job("ops", "nightly")
    def nightly(ctx):
        pass

    @registry.job("ops", "broken")
    def broken(ctx):
        raise RuntimeError("API down")

    with connect(url) as db:
        nightly.run(database=db, machine="box")
        broken.run(database=db, machine="box")


def on_a_terminal(*args: str, env: dict | None = None, stream: str = "stdout") -> str:
    """What `processcache ARGS` prints to a terminal (a pseudo-terminal here) on *stream*."""
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PROCESSCACHE_TZ")} | (env or {})
    streams = {"stdout": follower, "stderr": subprocess.DEVNULL} if stream == "stdout" else {
        "stdout": subprocess.DEVNULL, "stderr": follower}
    process = subprocess.Popen([sys.executable, "-m", "processcache", *args], env=environ, **streams)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_statuses_are_coloured_on_a_terminal_only_and_never_with_no_color(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    seed(url)
    coloured = on_a_terminal("runs", "-d", url)
    assert RED + "failed" in coloured and "\x1b[32msucceeded" in coloured
    assert "\x1b" not in on_a_terminal("runs", "-d", url, env={"NO_COLOR": "1"})
    piped = cli("runs", "-d", url).stdout
    assert "\x1b" not in piped and "failed" in piped
    columns = [line.index("failed") for line in on_a_terminal("runs", "-d", url, env={"NO_COLOR": "1"}).splitlines()
               if "failed" in line]
    plain = [line.index("failed") for line in piped.splitlines() if "failed" in line]
    assert columns == plain, "colour codes do not shift the columns"
    assert RED in on_a_terminal("check", "-d", url), "check's problems are coloured too"


def test_time_columns_say_utc_and_show_another_zone_when_asked(tmp_path):
    url = f"sqlite:///{tmp_path}/t.db"
    seed(url)
    with connect(url) as db:
        started = db.history.list_runs(limit=1)[0].started_at
    utc = cli("runs", "-d", url).stdout
    assert utc.splitlines()[0].split()[3:5] == ["STARTED", "(UTC)"] and f"{started:%Y-%m-%d %H:%M:%S}" in utc
    berlin = cli("runs", "-d", url, env={"PROCESSCACHE_TZ": "Asia/Kolkata"}).stdout
    assert "STARTED (IST)" in berlin
    from datetime import timedelta
    assert f"{started + timedelta(hours=5, minutes=30):%Y-%m-%d %H:%M:%S}" in berlin
    local = cli("runs", "--local", "-d", url, env={"TZ": "America/New_York"}).stdout
    assert "STARTED (EST)" in local
    as_json = cli("runs", "--json", "--local", "-d", url, env={"TZ": "America/New_York"}).stdout
    assert started.isoformat() in as_json, "JSON keeps UTC with its offset"
    bad = cli("runs", "-d", url, env={"PROCESSCACHE_TZ": "Mars/Olympus"})
    assert bad.returncode == 2 and "is not a time zone" in bad.stderr


@pytest.mark.parametrize("typed, suggested", [("jbos", "'jobs'"), ("chek", "'check'"), ("lgos", "'logs'")])
def test_a_mistyped_command_gets_the_closest_one(typed, suggested):
    result = cli(typed)
    assert result.returncode == 2 and f"No such command '{typed}'" in result.stderr and suggested in result.stderr


def test_the_shell_completes_group_job_names_from_the_database(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    seed(url)

    def complete(words: str, env: dict) -> list[str]:
        environ = {"_PROCESSCACHE_COMPLETE": "bash_complete", "COMP_WORDS": words,
                   "COMP_CWORD": str(len(words.split()) - 1)} | env
        result = cli(env=environ)
        return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]

    assert complete("processcache cache list ops/n", {"PROCESSCACHE_DATABASE_URL": url}) == ["ops/nightly"]
    assert complete("processcache cache list o", {"PROCESSCACHE_DATABASE_URL": url}) == ["ops/broken",
                                                                                      "ops/nightly"]
    missing = f"sqlite:///{tmp_path}/none.db"
    assert complete("processcache cache list o", {"PROCESSCACHE_DATABASE_URL": missing}) == []
    assert not (tmp_path / "none.db").exists(), "completing never creates a database"


def test_run_colours_warnings_and_errors_on_a_terminal_and_leaves_generic_lines_plain(tmp_path):
    hello = [str(ROOT / "examples" / "hello.py"), "-d", f"sqlite:///{tmp_path}/h.db"]
    shown = on_a_terminal("run", *hello, stream="stderr")
    assert "\x1b[33m[WARNING]\x1b[0m This is an example warning log" in shown
    assert RED + "[ERROR]" in shown and "[GENERIC] Operation running" in shown.replace("\r", "")
    assert "\x1b[0m[GENERIC]" not in shown and "[GENERIC]\x1b" not in shown, "no stray reset code"
    assert "\x1b" not in on_a_terminal("run", *hello, stream="stderr", env={"NO_COLOR": "1"})
    assert "\x1b" not in cli("run", *hello).stderr


def test_every_command_that_prints_data_takes_json(tmp_path):
    url = f"sqlite:///{tmp_path}/j.db"
    db = ["-d", url]
    hello = str(ROOT / "examples" / "hello.py")
    ran = json.loads(cli("run", hello, "--json", "-q", *db).stdout)
    assert (ran["group"], ran["job"], ran["status"]) == ("example", "hello-world", "succeeded")
    stored = json.loads(cli("cache", "set", "ops/j", "k", "1", "--json", *db).stdout)
    assert (stored["key"], stored["value"]) == ("k", 1)
    exported = json.loads(cli("cache", "export", "ops/j", "--json", *db).stdout)
    assert [(e["key"], e["value"]) for e in exported] == [("k", 1)]
    lines = cli("cache", "export", "ops/j", *db).stdout
    imported = json.loads(cli("cache", "import", "ops/j", "--json", *db, input=lines).stdout)
    assert imported == {"job": "ops/j", "imported": 0, "skipped": 1}
    deleted = json.loads(cli("cache", "delete", "ops/j", "k", "--json", *db).stdout)
    assert deleted["deleted"] == 1 and deleted["key"] == "k"
    cleared = json.loads(cli("cache", "clear", "ops/j", "--yes", "--json", *db).stdout)
    assert cleared["deleted"] == 0
    synced = cli("db", "sync", "--mode", "check", "--json", *db)
    assert synced.returncode == 0 and json.loads(synced.stdout)["differences"] == []
    upgraded = json.loads(cli("db", "upgrade", "--json", *db).stdout)
    assert upgraded["before"] == upgraded["after"]


def test_logs_say_their_zone_and_since_names_every_form_it_takes(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    seed(url)
    assert cli("logs", "-n", "1", "-d", url).stdout.split()[2] == "UTC"
    assert cli("logs", "-n", "1", "-d", url, env={"PROCESSCACHE_TZ": "Asia/Tokyo"}).stdout.split()[2] == "JST"
    shown = cli("runs", "show", "1", "-d", url, env={"PROCESSCACHE_TZ": "Asia/Tokyo"}).stdout
    assert "UTC, " in shown and "JST local" in shown
    for command in ("logs", "runs"):
        bad = cli(command, "--since", "yesterday", "-d", url)
        assert bad.returncode == 2 and "neither a duration ago (30s, 15m, 2h, 1d" in bad.stderr
        assert "nor a time (2026-11-24T03:00" in bad.stderr


def test_the_shell_completes_jobs_for_the_operations_commands_too(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    seed(url)
    for words in ("processcache runs ops/b", "processcache logs ops/b", "processcache jobs retire ops/b",
                  "processcache locks break ops/b"):
        environ = {"_PROCESSCACHE_COMPLETE": "bash_complete", "COMP_WORDS": words,
                   "COMP_CWORD": str(len(words.split()) - 1), "PROCESSCACHE_DATABASE_URL": url}
        assert cli(env=environ).stdout.split() == ["plain,ops/broken"], words
