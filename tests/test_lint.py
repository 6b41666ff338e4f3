"""The tree passes ruff and mypy, as pyproject.toml and setup.cfg configure them.

They run here, in the suite, so the one test command (README, .ci/run) lints
too: an unused import, a name used before it exists or an Optional read as a
value fails CI like a failing test. Each runs as a user would run it, from
the project's folder, and a failure shows everything the tool said. mypy
without its cache (a fresh clone, as in CI) takes 10 to 25 s on 2 busy cores,
ruff under a second: not slow enough to leave out of a quick run.
"""

import subprocess
import sys

import pytest
from paths import ROOT


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["mypy", "processcache"]], ids=["ruff", "mypy"])
def test_the_tree_passes(command):
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"python -m {' '.join(command)} failed:\n{done.stdout}{done.stderr}"
