"""The `processcache` command, run as a user runs it: a real process per call."""

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import cli
from paths import HELPERS, ROOT

from processcache import cache_session, connect

HELLO = ROOT / "examples" / "hello.py"
JOBS = HELPERS / "cli_jobs.py"


def test_hello_world_twice_like_the_readme(backend_url, tmp_path):
    first = cli("run", f"{HELLO}:hello", "--database", backend_url, "--machine", "desktop-main", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "Cache is empty and fresh\n"
    for line in ["[GENERIC] Operation running", "[WARNING] This is an example warning log",
                 "[ERROR] This is an example error log", "example/hello-world run 1 on desktop-main succeeded"]:
        assert line in first.stderr
    second = cli("run", f"{HELLO}:hello", "-d", backend_url, "-m", "desktop-main", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Cache exists; the values under foo, oldest first:\n  nope\n" in second.stdout
    third = cli("run", f"{HELLO}", "-d", backend_url, "-m", "desktop-main", "--quiet", cwd=tmp_path)
    assert (third.returncode, third.stdout, third.stderr) == (0, "", ""), "quiet: nothing when the run succeeds"
    with cache_session("example", "hello-world", machine="desktop-main", database=backend_url) as ctx:
        assert [e.value for e in ctx.tree["foo"]] == ["nope", "bar", "bar"]
        assert [log.type.value for log in ctx.get_logs(limit=4)] == ["GENERIC", "GENERIC", "WARNING", "ERROR"]


def test_run_imports_only_what_a_run_on_sqlite_needs(tmp_path):
    """Start-up (benchmark W6): cron pays for every import at every run.

    Read from sys.modules as the process exits: ``-X importtime`` does not
    list what ``importlib.import_module`` loads, which is how the command
    group loads each command's module.
    """
    loaded = tmp_path / "modules.txt"
    code = ("import atexit, runpy, sys\n"
            f"atexit.register(lambda: open({str(loaded)!r}, 'w').write('\\n'.join(sys.modules)))\n"
            "runpy.run_module('processcache', run_name='__main__', alter_sys=True)\n")
    found = subprocess.run([sys.executable, "-c", code, "run", f"{HELLO}:hello", "-d", f"sqlite:///{tmp_path}/w6.db"],
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    imported = set(loaded.read_text().split("\n"))
    assert {"processcache.run.runner", "processcache.cli.run", "pony.orm.dbproviders.sqlite"} <= imported
    unneeded = {"psycopg2", "pymysql", "pony.orm.dbproviders.postgres", "pony.orm.dbproviders.mysql",
                "processcache.storage.history", "processcache.monitor.check", "processcache.cache.memo",
                "processcache.storage.transfer",
                "platformdirs", "processcache.web", "http.server"}
    assert unneeded & imported == set()
    commands = {name for name in imported if name.startswith("processcache.cli.")}
    assert commands <= {"processcache.cli.main", "processcache.cli.run", "processcache.cli.format",
                        "processcache.cli.style"}, "the module of no other command"


def test_every_parity_row_through_the_cli(backend_url, tmp_path):
    for machine in ["m1", "m1", "m2"]:
        result = cli("run", f"{JOBS}:parity", "-d", backend_url, "-m", machine, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["has_cache"] == "True has_key True missing False"
    assert lines["get_cache"] == "[1]"
    assert lines["full"] == "['machine', 'run'] all machines 3"
    assert lines["tree"] == "{'run': [1], 'machine': ['m2']} results 2"
    assert lines["logs"] == "['warn 1'] warnings ['warn 1', 'warn 2', 'warn 1']"


def test_a_failing_job_prints_the_error_exits_1_and_keeps_its_writes(backend_url, tmp_path):
    result = cli("run", f"{JOBS}:fails", "-d", backend_url, "-m", "m", cwd=tmp_path)
    assert result.returncode == 1
    assert 'raise ValueError("the upstream API answered 500")' in result.stderr
    assert result.stderr.startswith("[ERROR] Traceback (most recent call last):\n  File \"" + str(JOBS))
    assert "ValueError: the upstream API answered 500" in result.stderr.splitlines()[-1]
    with cache_session("cli", "fails", machine="m", database=backend_url) as ctx:
        assert [e.value for e in ctx.tree["before"]] == ["kept"]


def test_a_non_json_value_fails_the_run_naming_the_type(tmp_path):
    result = cli("run", f"{JOBS}:bad-value".replace("bad-value", "bad_value"), "-d", f"sqlite:///{tmp_path}/a.db")
    assert result.returncode == 1
    assert "InvalidValueError: cache values must be JSON values" in result.stderr
    assert "set is not JSON serializable" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "nowhere/jobs.py:job"], "Error: no such file: nowhere/jobs.py"),
    (["run", "not_a_module_anywhere:job"], "Error: no module named 'not_a_module_anywhere'"),
    (["run", f"{JOBS}:nothing"], "has no attribute 'nothing' (jobs in it: bad_value, env, fails, parity)"),
    (["run", f"{JOBS}:parity", "-d", "oracle://x@y/z"], "Error: unknown database URL scheme 'oracle'"),
    (["run", f"{JOBS}:parity", "-d", "postgresql://u:TopSecret@127.0.0.1:1/db?retry_for=0"],
     "processcache: the database at postgresql://u:***@127.0.0.1:1/db cannot be reached (connection refused)"),
    (["db", "sync", "-d", "mysql://u:TopSecret@127.0.0.1:1/db?retry_for=0"], "Error: the database at mysql://u:***@"),
])
def test_bad_input_is_one_line_and_exit_1(args, message, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "TopSecret" not in result.stderr + result.stdout


def test_a_module_with_several_jobs_lists_them(tmp_path):
    result = cli("run", str(JOBS), "-d", f"sqlite:///{tmp_path}/a.db")
    assert result.returncode == 2
    assert "defines 4 jobs; run one of them" in result.stderr
    assert f"{JOBS}:parity  (cli/parity)" in result.stderr


def test_the_database_comes_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path}/env.db"
    result = cli("run", f"{JOBS}:env", env={"PROCESSCACHE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    with connect(url) as db:
        assert db.backend.values("SELECT COUNT(*) FROM process_job_runs", {}) == [1]


def test_db_sync_modes(backend_url):
    created = cli("db", "sync", "-d", backend_url)
    assert created.returncode == 0 and "created" in created.stdout
    with cache_session("g", "j", machine="m", database=backend_url) as ctx:
        ctx.create_cache("k", 1)
    check = cli("db", "sync", "--mode", "check", "-d", backend_url)
    assert check.returncode == 0 and "the schema is up to date" in check.stdout
    refused = cli("db", "sync", "--mode", "new", "-d", backend_url, input="n\n")
    assert refused.returncode == 1 and "Drop every processcache table" in refused.stdout
    with cache_session("g", "j", machine="m", database=backend_url) as ctx:
        assert ctx.has_cache_key("k"), "answering no keeps the data"
    dropped = cli("db", "sync", "--mode", "new", "--yes", "-d", backend_url)
    assert dropped.returncode == 0, dropped.stderr
    with cache_session("g", "j", machine="m", database=backend_url) as ctx:
        assert not ctx.has_cache()


def test_db_sync_check_exits_1_on_a_missing_table(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    with connect(url) as db:
        db.backend.execute("DROP TABLE process_job_runs")
    result = cli("db", "sync", "--mode", "check", "-d", url)
    assert result.returncode == 1
    assert "table process_job_runs is missing" in result.stdout


def test_help_teaches_with_examples():
    for args in [["--help"], ["run", "--help"], ["db", "sync", "--help"]]:
        result = cli(*args)
        assert result.returncode == 0
        assert "processcache" in result.stdout and ("Example" in result.stdout or "run" in result.stdout)
    assert "processcache run examples/hello.py:hello" in cli("run", "--help").stdout
    assert "--mode new --yes" in cli("db", "sync", "--help").stdout


def test_version():
    import processcache

    assert cli("--version").stdout.strip() == f"processcache, version {processcache.__version__}"



def test_the_readme_shows_the_example_that_prints_its_output():
    """The job the README shows is examples/hello.py itself, so its output is the one shown above it."""
    readme = (ROOT / "README.rst").read_text()
    example = Path(HELLO).read_text()
    code = example[example.index("from processcache import"):].rstrip("\n")
    assert "\n".join(("    " + line) if line else "" for line in code.split("\n")) in readme
    assert "python -m processcache run examples/hello.py:hello --database sqlite:///try.db" in readme
