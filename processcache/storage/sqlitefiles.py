"""The SQLite file on disk: made private, checked before use, opened read-only for the read commands.

The cache may hold API tokens, so a file processcache creates is the
owner's alone (0600, in a 0700 folder), and an existing file others can
read gets a one-line warning. A symbolic link at the path whose target is
gone is refused: creating the file through it would put the database
wherever the link points. A folder at the path is refused at once, in one
line: SQLite cannot open it, and no wait makes it a file. Read commands
(``check``, ``jobs``, ``runs``, ``logs``, ``cache list``...) never create a
file, and work on a file or folder the user may only read: a mistyped path
is an error there, not a new empty database that "has no problems".
"""

import logging
import os
import sqlite3
import stat
from urllib.parse import quote

from ..errors import DatabaseUnavailableError

log = logging.getLogger("processcache")


def prepare(filename: str, read_only: bool) -> None:
    """Check the file at *filename* before it is opened, creating it private unless *read_only*."""
    if os.path.isdir(filename):
        raise DatabaseUnavailableError(
            f"{filename} is a folder, not a SQLite database file: give a file's path in the URL, such as"
            f" sqlite:///{os.path.join(filename, 'processcache.db')}")
    if os.path.islink(filename) and not os.path.exists(filename):
        raise DatabaseUnavailableError(
            f"{filename} is a symbolic link to {os.readlink(filename)}, which does not exist: fix or remove"
            " the link (processcache does not create a database through one)")
    if read_only and not os.path.exists(filename):
        raise DatabaseUnavailableError(f"no database at {filename}: a job's first run or"
                                       " `processcache db sync` creates it (is --database right?)")
    if not read_only:
        _create_private_file(filename)
        _refuse_read_only(filename)
    _warn_if_readable_by_others(filename)


def _create_private_file(filename: str) -> None:
    folder = os.path.dirname(filename)
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailableError(f"cannot create the folder {folder}: {exc.strerror}") from None
    if not os.path.exists(filename):
        try:
            os.close(os.open(filename, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        except OSError as exc:
            raise DatabaseUnavailableError(f"cannot create the database file {filename}: {exc.strerror}") from None


def _refuse_read_only(filename: str) -> None:
    """A run needs to write the file, and SQLite its -wal and -shm files beside it: say so before the driver fails."""
    folder = os.path.dirname(filename)
    if not os.access(filename, os.W_OK):
        denied = f"the database file {filename} is read-only for this user"
    elif not os.access(folder, os.W_OK | os.X_OK):
        denied = f"the folder {folder} is read-only for this user (SQLite writes its -wal and -shm files there)"
    else:
        return
    raise DatabaseUnavailableError(f"{denied}: running jobs needs write access; the read commands"
                                   " (check, jobs, runs, logs, cache list/get) work read-only")


def _warn_if_readable_by_others(filename: str) -> None:
    mode = stat.S_IMODE(os.stat(filename).st_mode)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("processcache: warning: %s can be read by other users (mode %04o) and may hold secrets:"
                    " chmod 600 %s", filename, mode, filename)


def read_only_connection(filename: str) -> type[sqlite3.Connection]:
    """A sqlite3 connection class that opens *filename* read-only, whatever name Pony passes.

    ``mode=ro`` never writes the file. A WAL database in a folder this user
    cannot write, with no -shm file there (no writer has it open), can only
    be read as ``immutable``: SQLite could not create the shared-memory file.
    """
    folder = os.path.dirname(filename)
    readable_in_place = os.access(folder, os.W_OK | os.X_OK) or os.path.exists(filename + "-shm")
    uri = f"file:{quote(filename)}?" + ("mode=ro" if readable_in_place else "immutable=1")

    class ReadOnlyConnection(sqlite3.Connection):
        def __init__(self, _database, *args, **kwargs):
            super().__init__(uri, *args, **{**kwargs, "uri": True})

    return ReadOnlyConnection
