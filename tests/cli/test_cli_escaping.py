"""What the commands print of stored texts is escaped (`processcache.storage.texts.shown`), the stored text unchanged.

A log message, an error or a machine name is anyone's: a carriage return in
it would print a forged line over a real ERROR, an escape sequence would
drive the terminal, a right-to-left override would disguise a name.
"""

import json

import pytest
from cli_helpers import cli

from processcache import cache_session, connect

FORGER = '''
from processcache import job

@job("inject", "forger")
def forger(ctx):
    ctx.create_log("ok\\r[ERROR] forged")
    raise RuntimeError("boom\\x1b[2K\\u202egnp.exe")
'''
MACHINE = "desk\u202etop"
RAW = ("\r", "\x1b", "\u202e")


def assert_escaped(printed: str, machine: bool = True) -> None:
    assert not [char for char in RAW if char in printed], printed
    assert "desk\\u202etop" in printed or not machine


@pytest.fixture
def forged(backend_url, tmp_path):
    """A failed run of inject/forger on MACHINE that logged a forged ERROR and failed with an escape sequence;
    what `run` printed."""
    (tmp_path / "forger.py").write_text(FORGER)
    ran = cli("run", tmp_path / "forger.py:forger", "-d", backend_url, "-m", MACHINE, cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    return backend_url, ran


def test_run_echoes_its_logs_and_its_last_line_escaped(forged):
    _url, ran = forged
    assert_escaped(ran.stderr)
    assert "[GENERIC] ok\\r[ERROR] forged\n" in ran.stderr
    assert "run 1 on desk\\u202etop failed" in ran.stderr and "boom\\x1b[2K\\u202egnp.exe" in ran.stderr


def test_logs_runs_and_runs_show_print_stored_texts_escaped_and_the_database_keeps_them(forged):
    url, _ran = forged
    for command in [("logs",), ("runs",), ("runs", "show", "1"), ("jobs",), ("check",)]:
        printed = cli(*command, "-d", url)
        assert printed.returncode in (0, 1), printed.stderr
        assert_escaped(printed.stdout, machine=command != ("check",))
    assert "[GENERIC] ok\\r[ERROR] forged\n" in cli("logs", "-d", url).stdout
    assert "RuntimeError: boom\\x1b[2K\\u202egnp.exe" in cli("runs", "-d", url).stdout
    with connect(url) as db:
        assert db.logs("inject/forger")[0].message == "ok\r[ERROR] forged"
        [run] = db.list_runs("inject/forger")
        assert (run.machine, run.error) == (MACHINE, "RuntimeError: boom\x1b[2K\u202egnp.exe")


def test_json_carries_the_stored_text_exactly_with_nothing_a_terminal_acts_on(forged):
    url, _ran = forged
    printed = cli("logs", "--json", "-d", url).stdout
    assert not [char for char in RAW if char in printed]
    first = json.loads(printed.splitlines()[0])
    assert (first["message"], first["machine"]) == ("ok\r[ERROR] forged", MACHINE)
    [run] = json.loads(cli("runs", "--json", "-d", url).stdout)
    assert run["error"] == "RuntimeError: boom\x1b[2K\u202egnp.exe"


def test_cache_list_shows_a_key_escaped(tmp_path):
    url = f"sqlite:///{tmp_path}/cache.db"
    with cache_session("inject", "keys", machine="m1", database=url) as ctx:
        ctx.create_cache("token\x1b]0;owned\x07\u202e", 1)
    printed = cli("cache", "list", "inject/keys", "-d", url)
    assert printed.returncode == 0, printed.stderr
    assert "token\\x1b]0;owned\\x07\\u202e" in printed.stdout and "\x1b" not in printed.stdout
