"""The SQLite file: read commands create nothing and work read-only; runs refuse a file they cannot write.

Permission tests run the command as another user (``nobody``) when the suite
runs as root, since root bypasses permission checks: a forked child drops
its rights and calls the CLI in process, with every module it needs
imported before the fork (the interpreter's own files may be closed to
``nobody``).
"""

import json
import os
import pickle
import pwd
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
from cli_helpers import cli, seed_nightly
from click.testing import CliRunner

import processcache
import processcache.cli.cache  # noqa: F401  (imported before the fork: see the module's docstring)
import processcache.cli.db  # noqa: F401
import processcache.cli.jobs  # noqa: F401
import processcache.cli.locks  # noqa: F401
import processcache.cli.runs  # noqa: F401
import processcache.storage.history  # noqa: F401
import processcache.storage.sqlitefiles  # noqa: F401
from processcache import CacheContext, connect
from processcache.cli.main import main

READ_COMMANDS = [
    (["check"], 0, "all jobs are well"),
    (["jobs"], 0, "ops/nightly"),
    (["runs"], 0, "succeeded"),
    (["logs"], 0, "fetched 3 pages"),
    (["locks"], 0, "no lock is held"),
    (["cache", "list", "ops/nightly", "-m", "box"], 0, "token"),
    (["cache", "get", "ops/nightly", "token", "-m", "box"], 0, '"abc"'),
    (["cache", "export", "ops/nightly"], 0, '"key": "token"'),
    (["db", "sync", "--mode", "check"], 0, "the schema is up to date"),
]


def as_other_user(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with *args* as a user with no rights of its own: ``nobody`` under root, else this user."""
    import difflib  # noqa: F401  (the did-you-mean of a mistyped job, imported before the fork)

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, report through the pipe, never return into pytest
        try:
            os.close(reader)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            result = CliRunner().invoke(main, args)
            outcome = (result.exit_code, result.stdout, result.stderr + (repr(result.exception)
                                                                         if result.exit_code not in (0, 1, 2) else ""))
            os.write(writer, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@pytest.fixture
def shared_folder():
    """A folder every user can traverse (pytest's tmp_path is root's alone)."""
    folder = tempfile.mkdtemp(prefix="processcache-ro-")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def _errors(stderr: str) -> list[str]:
    """The lines of *stderr* but the warning about a file others can read (which these tests make)."""
    return [line for line in stderr.splitlines() if "can be read by other users" not in line]


def snapshot(folder: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


@pytest.mark.parametrize("folder_writable", [False, True], ids=["read-only-folder", "read-only-file"])
def test_a_monitoring_user_reads_a_file_it_cannot_write(shared_folder, folder_writable):
    path = os.path.join(shared_folder, "cron.db")
    seed_nightly(f"sqlite:///{path}")
    os.chmod(path, 0o644)  # readable by the monitoring user, writable by the owner only
    if folder_writable:
        os.chmod(shared_folder, 0o777)
    before = snapshot(shared_folder)
    for args, code, shown in READ_COMMANDS:
        exit_code, stdout, stderr = as_other_user([*args, "-d", f"sqlite:///{path}"])
        assert exit_code == code and not _errors(stderr), (args, stdout, stderr)
        assert shown in stdout, (args, stdout, stderr)
    after = snapshot(shared_folder)
    assert after[os.path.basename(path)] == before[os.path.basename(path)], "the file was not changed"
    assert set(after) <= set(before) | {"cron.db-shm", "cron.db-wal"}


def test_a_run_on_a_file_it_cannot_write_fails_with_one_line(shared_folder):
    path = os.path.join(shared_folder, "cron.db")
    seed_nightly(f"sqlite:///{path}")
    os.chmod(path, 0o600 | stat.S_IROTH)
    job_file = os.path.join(shared_folder, "job.py")
    with open(job_file, "w") as out:
        out.write("from processcache import job\n\n@job('ops', 'nightly')\ndef nightly(ctx):\n    pass\n")
    exit_code, stdout, stderr = as_other_user(["run", job_file, "-d", f"sqlite:///{path}"])
    lines = _errors(stderr)
    assert exit_code == 1 and len(lines) == 1, stderr
    assert "read-only for this user: running jobs needs write access" in lines[0]
    with connect(f"sqlite:///{path}") as db:
        assert [r.status for r in db.history.list_runs()] == ["succeeded"], "nothing was recorded, nothing left running"


def test_read_commands_refuse_a_missing_file_and_create_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/typo.db"
    for args, _, _ in READ_COMMANDS:
        result = cli(*args, "-d", url)
        assert result.returncode == 1, args
        assert result.stderr == (f"Error: no database at {tmp_path}/typo.db: a job's first run or `processcache db"
                                 " sync` creates it (is --database right?)\n"), args
    assert os.listdir(tmp_path) == []
    dry = cli("prune", "--expired", "--dry-run", "-d", url)
    assert dry.returncode == 1 and "no database at" in dry.stderr and os.listdir(tmp_path) == []


def test_a_folder_given_as_the_file_is_refused_at_once_in_one_line(tmp_path):
    """Retried for the whole budget since f27968c (30 s, then "disk I/O error ... check that the server is up")."""
    folder = tmp_path / "somefolder"
    folder.mkdir()
    for args in (["jobs"], ["db", "sync"], ["cache", "set", "ops/nightly", "token", "1"]):
        started = time.monotonic()
        result = cli(*args, "-d", f"sqlite:///{folder}")
        assert time.monotonic() - started < 5, "refused at once, not retried"
        assert result.returncode == 1, args
        assert result.stderr == (f"Error: {folder} is a folder, not a SQLite database file: give a file's path in"
                                 f" the URL, such as sqlite:///{folder}/processcache.db\n"), args
    assert os.listdir(folder) == []


def test_a_file_others_can_read_gets_a_one_line_warning_and_a_private_one_none(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    seed_nightly(url)
    assert stat.S_IMODE(os.stat(tmp_path / "p.db").st_mode) == 0o600
    assert cli("jobs", "-d", url).stderr == ""
    os.chmod(tmp_path / "p.db", 0o644)
    warned = cli("jobs", "-d", url)
    assert warned.returncode == 0 and warned.stderr == (
        f"processcache: warning: {tmp_path}/p.db can be read by other users (mode 0644) and may hold secrets:"
        f" chmod 600 {tmp_path}/p.db\n")


def test_a_dangling_symlink_is_refused_not_followed(tmp_path):
    (tmp_path / "cron.db").symlink_to(tmp_path / "elsewhere" / "gone.db")
    (tmp_path / "elsewhere").mkdir()
    url = f"sqlite:///{tmp_path}/cron.db"
    for args in (["db", "sync"], ["jobs"]):
        result = cli(*args, "-d", url)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, args
        assert "is a symbolic link to" in result.stderr and "which does not exist" in result.stderr
    with pytest.raises(processcache.DatabaseUnavailableError, match="symbolic link"):
        CacheContext(connect(url), "g", "j", "m")
    assert os.listdir(tmp_path / "elsewhere") == [], "nothing was created where the link points"


def test_a_link_to_an_existing_file_is_used(tmp_path):
    seed_nightly(f"sqlite:///{tmp_path}/real.db")
    (tmp_path / "link.db").symlink_to(tmp_path / "real.db")
    jobs = json.loads(cli("jobs", "--json", "-d", f"sqlite:///{tmp_path}/link.db").stdout)
    assert [j["job"] for j in jobs] == ["nightly"]
