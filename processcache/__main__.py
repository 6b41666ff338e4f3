"""``python -m processcache`` is the ``processcache`` command, with the same sys.path.

``python -m`` puts the current directory first on sys.path, where a file
there named like a standard-library module (``email.py``) replaces it; the
console script does not put it there at all. Taking it out here makes both
alike: ``run`` searches the current directory itself, after the standard
library (see `processcache.loader`).
"""

import os
import sys

from .cli.main import main

if sys.path and sys.path[0] == os.getcwd():  # not there under -P or PYTHONSAFEPATH
    del sys.path[0]
main(prog_name="processcache")
