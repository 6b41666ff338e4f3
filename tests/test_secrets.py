"""A database password never appears in any output, log, stored row, error or repr."""

import os
import subprocess
import sys
from pathlib import Path

from pony.orm import db_session

import processcache
from processcache import connect

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "cli_jobs.py"


def run_cli(args, url=None, env_url=None, input=None):
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    if env_url:
        env["PROCESSCACHE_DATABASE_URL"] = env_url
    command = [sys.executable, "-m", "processcache", *args] + (["-d", url] if url else [])
    result = subprocess.run(command, capture_output=True, text=True, env=env, input=input, timeout=120)
    return result.stdout + result.stderr


def every_text_in(db) -> str:
    with db_session:
        texts = []
        for table, columns in [("process_job_logs", "message"), ("process_job_runs", "error, traceback, result, machine"),
                               ("process_cache", "entry_key, entry_value, machine"), ("processes", "name"),
                               ("process_jobs", "name"), ("process_job_locks", "name, machine")]:
            for row in db.pony.select(f"SELECT {columns} FROM {table}", {}):
                texts += [str(value) for value in (row if isinstance(row, tuple) else [row])]
    return "\n".join(texts)


def test_no_command_or_failure_shows_the_password(server_backend_url, secret_url, tmp_path):
    url, marker = secret_url
    outputs = [
        run_cli(["run", f"{ROOT}/examples/hello.py:hello"], url),
        run_cli(["run", f"{JOBS}:fails"], url),
        run_cli(["run", f"{JOBS}:parity"], env_url=url),
        run_cli(["jobs"], url), run_cli(["jobs", "--json"], url),
        run_cli(["runs"], url), run_cli(["runs", "--json"], url),
        run_cli(["logs"], url), run_cli(["logs", "--json"], url),
        run_cli(["locks"], url), run_cli(["check"], url), run_cli(["check", "--json"], url),
        run_cli(["prune", "--runs-older-than", "30d", "--dry-run"], url),
        run_cli(["cache", "list", "example/hello-world", "-a"], url),
        run_cli(["cache", "set", "example/hello-world", "k", "v", "--string"], url),
        run_cli(["cache", "export", "example/hello-world"], url),
        run_cli(["db", "sync", "--mode", "check"], url),
        run_cli(["--help"], env_url=url), run_cli(["run", "--help"], env_url=url),
        # failure paths: a wrong port, a bad port, a missing job, a bad sync mode
        run_cli(["jobs"], url.replace(f":{url.rsplit(':', 1)[1].split('/')[0]}/", ":1/") + "?retry_for=0"),
        run_cli(["jobs"], url.replace("@", "@[bad")),
        run_cli(["runs", "no/such-job"], url),
        run_cli(["run", "missing.py:job"], url),
    ]
    for output in outputs:
        assert marker not in output, output
    assert "***" in outputs[-4] or "***" in outputs[-3]
    with connect(url) as db:
        assert marker not in repr(db) and marker not in repr(db.config) and marker not in db.url
        assert marker not in every_text_in(db)


def test_a_failing_job_that_touches_the_database_keeps_the_password_out_of_its_traceback(server_backend_url,
                                                                                          secret_url):
    url, marker = secret_url
    registry = processcache.Registry()

    @registry.job("secrets", "chained")
    def chained(ctx):
        processcache.connect(url.replace("@", "@nowhere.invalid.").replace("://", "://", 1) + "x")

    record = chained.run(database=url, machine="m")
    assert record.status == "failed"
    assert marker not in (record.error or "") and marker not in (record.traceback or "")
    with connect(url) as db:
        assert marker not in every_text_in(db)
