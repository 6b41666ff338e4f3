"""A pgbouncer of the tests' own, in transaction pooling mode, in front of the test PostgreSQL server.

The distribution's ``pgbouncer`` runs from a temporary folder holding its
configuration, user list, pid file and log, on a port of its own; the
server's own configuration is never touched. Every database name reaches
the server's database of that name (the ``* =`` entry), so a database a
test creates on the server is reachable through pgbouncer at once.
pgbouncer refuses to run as root: run so, it runs as the postgres user.

`running` starts one for a test (tests/system/test_pgbouncer.py); .ci/run starts
one for the whole suite (``python tests/helpers/pgbouncer_server.py start FOLDER``,
then ``stop FOLDER``) and points ``PROCESSCACHE_TEST_PGBOUNCER_URL`` at it.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

#: The PostgreSQL server pgbouncer pools, as the tests name it.
SERVER_ENV = "PROCESSCACHE_TEST_POSTGRES_URL"

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
pidfile = {folder}/pgbouncer.pid
logfile = {folder}/pgbouncer.log
auth_type = trust
auth_file = {folder}/userlist.txt
admin_users = {user}
stats_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_db_connections = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_clients}
# A test's database is dropped after it: its pool goes a minute later.
autodb_idle_timeout = 60
log_connections = 0
log_disconnections = 0
"""


def as_postgres(*command: object) -> list[str]:
    """*command* run as the postgres user when the tests run as root (pgbouncer, PostgreSQL and Patroni refuse
    to run as root)."""
    words = [str(word) for word in command]
    return ["runuser", "-u", "postgres", "--", *words] if os.geteuid() == 0 else words


def write_config(folder: Path, listen: int, pool_size: int, max_clients: int) -> Path:
    """pgbouncer's configuration and user list in *folder* (made readable by the user it runs as); its path."""
    server = urlsplit(os.environ[SERVER_ENV])
    user = server.username or "postgres"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(CONFIG.format(host=server.hostname or "127.0.0.1", port=server.port or 5432, listen=listen,
                                    folder=folder, user=user, pool_size=pool_size, max_clients=max_clients))
    if os.geteuid() == 0:
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, "postgres")
    return config


def start(folder: Path, listen: int, pool_size: int = 20, max_clients: int = 1000) -> str:
    """Start pgbouncer in the background; once it accepts connections, the URL of the server's database through it."""
    config = write_config(folder, listen, pool_size, max_clients)
    started = subprocess.run(as_postgres("pgbouncer", "-d", str(config)), capture_output=True, text=True, timeout=30)
    if started.returncode != 0:
        raise RuntimeError(f"pgbouncer did not start: {started.stderr.strip()} {log(folder)}")
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), timeout=1):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{listen} within 15 s: {log(folder)}")
        time.sleep(0.05)
    return urlsplit(os.environ[SERVER_ENV])._replace(netloc=f"{_user()}@127.0.0.1:{listen}").geturl()


def stop(folder: Path) -> None:
    """Stop the pgbouncer started in *folder* (SIGTERM: at once), waiting until it is gone."""
    pid = int((folder / "pgbouncer.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def log(folder: Path) -> str:
    """The end of pgbouncer's log, for an error message."""
    path = folder / "pgbouncer.log"
    return path.read_text()[-2000:] if path.exists() else "(no log)"


@contextlib.contextmanager
def running(pool_size: int, max_clients: int) -> Iterator[tuple[str, Path]]:
    """A pgbouncer of *pool_size* server connections per database on a free port: (URL, its folder)."""
    folder = Path(tempfile.mkdtemp(prefix="pc-pgbouncer-"))
    try:
        yield start(folder, free_port(), pool_size, max_clients), folder
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _user() -> str:
    return urlsplit(os.environ[SERVER_ENV]).username or "postgres"


def main(argv: list[str]) -> None:
    """``start FOLDER [PORT]`` (a free port by default; prints the URL) or ``stop FOLDER``: for .ci/run."""
    if argv[:1] == ["start"] and len(argv) in (2, 3):
        print(start(Path(argv[1]), int(argv[2]) if len(argv) == 3 else free_port()))
    elif argv[:1] == ["stop"] and len(argv) == 2:
        stop(Path(argv[1]))
    else:
        sys.exit("usage: pgbouncer_server.py start FOLDER [PORT] | stop FOLDER")


if __name__ == "__main__":
    main(sys.argv[1:])
