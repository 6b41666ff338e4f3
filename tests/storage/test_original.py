"""The original process-cache's database, as its own code wrote it (tests/fixtures/original/): refused in one line
before anything is created, and imported whole, once, in its order, on request."""

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone

import original_db
import pytest
from cli_helpers import cli
from original_db import TABLES, tables
from paths import ROOT

from processcache import LogType, SchemaError, cache_session, connect
from processcache.cache.codec import decode_value
from processcache.storage.timeutil import py_time


def test_a_database_the_original_wrote_is_refused_in_one_line_naming_it_and_the_import_and_nothing_is_created(
        original_url):
    result = cli("run", ROOT / "examples" / "hello.py:hello", "--database", original_url)
    assert result.returncode == 1 and result.stdout == ""
    [line] = [line for line in result.stderr.splitlines() if "mode 0644" not in line]
    assert "holds the original process-cache's tables (process_cache, process_job_logs, process_jobs," \
           " processes)" in line
    assert "nothing was changed" in line and f"processcache db import-original {original_url}" in line
    assert [table for table in tables(original_url) if table != "sqlite_sequence"] == sorted(TABLES)
    with pytest.raises(SchemaError, match="original process-cache's tables"):
        connect(original_url)
    assert [table for table in tables(original_url) if table != "sqlite_sequence"] == sorted(TABLES)


# -- the import -----------------------------------------------------------------------------------------------------

#: The names processcache gives what the original allowed and it refuses (what the import prints, then uses).
GROUPS = {"imports/legacy": "imports-legacy", "-": "process-4"}
JOBS = {"fetch@home": "fetch-home", "-": "job-4"}
RENAMED = ["renamed: process 'imports/legacy' as 'imports-legacy'", "renamed: process '-' as 'process-4'",
           "renamed: job 'fetch@home' as 'fetch-home'", "renamed: key '' as '(empty key)'",
           "renamed: job '-' as 'job-4'", "renamed: machine '' as 'unknown'"]
COUNTS = (f"5 groups, 5 jobs, {original_db.ENTRIES} entries, {original_db.LOGS} logs")


def expected_entries(url, prefix=""):
    """The original's entries as processcache should hold them: names it takes, values as the stored strings."""
    return [(GROUPS.get(group, group), JOBS.get(job, job), machine or "unknown", key or "(empty key)", value,
             datetime.fromtimestamp(created, timezone.utc))
            for group, job, machine, key, value, created in original_db.entries(url, prefix)]


def expected_logs(url, prefix=""):
    return [(GROUPS.get(group, group), JOBS.get(job, job), machine or "unknown", kind, message,
             datetime.fromtimestamp(created, timezone.utc))
            for group, job, machine, kind, message, created in original_db.logs(url, prefix)]


def imported(url):
    """processcache's entries and logs at *url*, in id order, as (group, job, machine, key or type, value or
    message, time)."""
    with connect(url) as db:
        joined = "JOIN process_jobs j ON j.id = r.job_id JOIN processes p ON p.id = j.process_id ORDER BY r.id"
        entries = [(group, job, machine, key, decode_value(text), py_time(created)) for group, job, machine, key,
                   text, created in db.backend.select("SELECT p.name, j.name, r.machine, r.entry_key, r.entry_value,"
                                                      f" r.created_at FROM process_cache r {joined}")]
        logs = [(group, job, machine, kind, message, py_time(created)) for group, job, machine, kind, message,
                created in db.backend.select("SELECT p.name, j.name, r.machine, r.log_type, r.message, r.created_at"
                                             f" FROM process_job_logs r {joined}")]
    return entries, logs


def test_the_import_brings_every_entry_and_log_over_in_order_with_its_value_time_machine_and_type(
        original_url, tmp_path):
    target = f"sqlite:///{tmp_path}/processcache.db"
    result = cli("db", "import-original", original_url, "--database", target)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"imported {original_url} into {target}: {COUNTS}"
    assert [line.split(" (")[0] for line in lines[1:]] == RENAMED
    entries, logs = imported(target)
    assert entries == expected_entries(original_url) and len(entries) == original_db.ENTRIES
    assert logs == expected_logs(original_url) and len(logs) == original_db.LOGS
    assert entries[0] == ("example", "hello-world", "desktop-main", "foo", "nope",
                          datetime(2019, 7, 20, 12, tzinfo=timezone.utc))
    assert {entry[4] for entry in entries} >= {"42", "", "  padded value  ", "naïve café — 日本語 😀", "x" * 60000}
    assert [tables(original_url)] == [sorted(TABLES + (("sqlite_sequence",) if "sqlite" in original_url else ()))]


def test_a_ported_job_reads_what_the_original_stored_for_its_machine(mysql_url, tmp_path):
    original_db.load(mysql_url)
    target = f"sqlite:///{tmp_path}/processcache.db"
    assert cli("db", "import-original", mysql_url, "--database", target).returncode == 0
    with cache_session("example", "hello-world", machine="desktop-main", database=target, scope="machine",
                       load_cache="eager") as ctx:
        assert [entry.value for entry in ctx.tree["foo"]] == ["nope", "bar", "bar"]
        assert ctx.has_cache_key("foo") and not ctx.has_cache_key("bar")
        logs = ctx.get_logs(limit=5)
        assert [(log.type, log.message) for log in logs] == [
            (LogType.GENERIC, "Cache is empty and fresh"), (LogType.GENERIC, "Operation running"),
            (LogType.WARNING, "This is an example warning log"), (LogType.ERROR, "This is what an error looks like"),
            (LogType.GENERIC, 'Created value "nope" at key "foo" in cache')]
        assert {log.created_at for log in logs} == {datetime(2019, 7, 20, 12, tzinfo=timezone.utc)}
    with cache_session("nightly-reports", "send-emails", machine="server-01", database=target,
                       scope="machine") as ctx:
        assert [entry.value for entry in ctx.get_cache("last-sent")] == ["2019-07-26T06:00:00Z",
                                                                        "2019-07-27T06:00:00Z"]
        assert ctx.latest("count") == "42" and ctx.latest("empty") == "" and ctx.has_cache_key("  padded key  ")


def test_a_second_import_adds_nothing_and_says_what_was_there(mysql_url, tmp_path):
    original_db.load(mysql_url)
    target = f"sqlite:///{tmp_path}/processcache.db"
    assert cli("db", "import-original", mysql_url, "-d", target).returncode == 0
    before = imported(target)
    again = cli("db", "import-original", mysql_url, "-d", target, "--json")
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)
    assert (counts["entries"], counts["logs"], counts["entries_there"], counts["logs_there"]) == \
        (0, 0, original_db.ENTRIES, original_db.LOGS)
    assert imported(target) == before


def test_rename_original_moves_the_tables_aside_and_processcache_uses_the_database_in_place(original_url):
    before_entries, before_logs = expected_entries(original_url), expected_logs(original_url)
    result = cli("db", "import-original", original_url, "--rename-original")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"imported {original_url} into {original_url}: {COUNTS}")
    assert imported(original_url) == (before_entries, before_logs)
    assert expected_entries(original_url, "original_") == before_entries, "the original's rows, moved, untouched"
    again = cli("db", "import-original", original_url, "--rename-original")
    assert again.returncode == 0 and ": 5 groups, 5 jobs, 0 entries, 0 logs" in again.stdout
    ran = cli("run", ROOT / "examples" / "hello.py:hello", "--database", original_url)
    assert ran.returncode == 0, ran.stderr


def test_the_original_database_itself_as_the_target_is_refused_without_rename(mysql_url):
    original_db.load(mysql_url)
    result = cli("db", "import-original", mysql_url, "--database", mysql_url)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"Error: {mysql_url} holds the original's tables under processcache's names:" \
        " import into another database (--database URL), or add --rename-original to move them aside first"
    assert tables(mysql_url) == sorted(TABLES)


def test_a_source_without_the_original_tables_is_refused_in_one_line(tmp_path):
    source, target = f"sqlite:///{tmp_path}/empty.db", f"sqlite:///{tmp_path}/target.db"
    sqlite3.connect(f"{tmp_path}/empty.db").close()
    (tmp_path / "empty.db").chmod(0o600)
    result = cli("db", "import-original", source, "--database", target)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {source} holds no table processes, process_jobs, process_job_logs," \
        " process_cache of the original process-cache: give the URL of the database the original wrote"


@pytest.mark.slow
def test_an_import_killed_midway_leaves_whole_jobs_and_the_next_one_ends_complete(mysql_url, tmp_path):
    """Killed (SIGKILL) while it writes, then run again: every job's rows once, none twice."""
    original_db.load(mysql_url)
    original_db.grow(mysql_url, jobs=40, logs_each=2000)
    target, path = f"sqlite:///{tmp_path}/processcache.db", tmp_path / "processcache.db"
    total = original_db.LOGS + 40 * 2000
    first = start_cli("db", "import-original", mysql_url, "--database", target)
    written = 0
    while first.poll() is None and written < total // 3:
        time.sleep(0.02)
        written = logs_in(path)
    first.kill()
    first.communicate()
    assert first.returncode == -signal.SIGKILL, "the import ended before it was killed: grow the source"
    assert 0 < logs_in(path) < total
    again = cli("db", "import-original", mysql_url, "--database", target, "--json")
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)
    assert counts["logs"] + counts["logs_there"] == total and 0 < counts["logs"] < total
    assert imported(target) == (expected_entries(mysql_url), expected_logs(mysql_url))


def start_cli(*args):
    return subprocess.Popen([sys.executable, "-m", "processcache", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def logs_in(path) -> int:
    """How many logs the SQLite file at *path* holds (0 before its tables are there)."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
            return conn.execute("SELECT COUNT(*) FROM process_job_logs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
