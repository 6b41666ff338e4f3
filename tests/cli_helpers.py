"""Running `python -m processcache` as a user would, for the CLI tests."""

import os
import subprocess
import sys


def cli(*args, cwd=None, env=None, input=None):
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "processcache", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=environ, input=input, timeout=120)
