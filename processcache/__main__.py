"""``python -m processcache`` is the ``processcache`` command, with the same sys.path.

``python -m`` puts the current directory first on sys.path, where a file
there named like a standard-library module (``email.py``) replaces it; the
console script does not put it there at all. Taking it out here makes both
alike: ``run`` searches the current directory itself, after the standard
library (see `processcache.loader`). It is taken out before the CLI is
imported, so that a ``click.py`` there is not imported for click either
(the package's own ``__init__`` has imported Pony by then).
"""

import os
import sys

if sys.path and sys.path[0] == os.getcwd():  # not there under -P or PYTHONSAFEPATH
    del sys.path[0]

from .cli.main import main  # noqa: E402  (after the current directory is out of the way)

main(prog_name="processcache")
