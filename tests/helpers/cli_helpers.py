"""Running `python -m processcache` as a user would, for the CLI tests."""

import os
import subprocess
import sys


def cli(*args, cwd=None, env=None, input=None):
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "processcache", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=environ, input=input, timeout=120)


def start_script(script, *args, env=None) -> subprocess.Popen:
    """A Python script of the tests' (a worker) started as its own process, its output captured."""
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def outputs(processes) -> list[str]:
    """What each process printed, once all have ended; each must have succeeded."""
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(out)
    return results


def seed_nightly(url: str) -> None:
    """One succeeded run of ops/nightly on machine box, with an entry (token) and a log: what read commands show."""
    from processcache import Registry, connect

    registry = Registry()

    @registry.job("ops", "nightly")
    def nightly(ctx):
        ctx.create_cache("token", "abc")
        ctx.create_log("fetched 3 pages")

    with connect(url) as db:
        assert nightly.run(database=db, machine="box").status == "succeeded"
