"""Where the tests' helpers and the project are, wherever a test lives."""

from pathlib import Path

#: tests/helpers: workers, job files, proxies and fixtures that tests start.
HELPERS = Path(__file__).resolve().parent
#: The project's root (README.rst, examples/).
ROOT = HELPERS.parent.parent
