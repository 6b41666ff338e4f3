"""`cache import` is strict (one line naming the line and the field) and repeatable (a second import is a no-op)."""

import json
import math
import subprocess
import sys

import pytest
from cli_helpers import cli
from hypothesis import given
from hypothesis import strategies as st

from processcache import CacheContext, connect
from processcache.cache.context import ANY
from processcache.storage.transfer import ImportLineError, parse_line, parse_lines

GOOD = {"key": "k", "value": 1, "machine": "m", "created_at": "2026-01-01T00:00:00+00:00", "expires_at": None}


def line(**changes):
    item = {**GOOD, **changes}
    return json.dumps({name: value for name, value in item.items() if value is not ...}, allow_nan=True)


@pytest.mark.parametrize("text, message", [
    (line(created_at=...), "line 7: missing field created_at"),
    (line(key=..., value=...), "line 7: missing field key, value"),
    (line(expires_at=math.nan), "line 7: expires_at: nan is not a number of seconds since 1970"),
    (line(expires_at=math.inf), "line 7: expires_at: inf is not a number"),
    (line(expires_at=-math.inf), "line 7: expires_at: -inf is not a number"),
    (line(expires_at=True), "line 7: expires_at: True is not a number"),
    (line(expires_at="tomorrow"), "line 7: expires_at: 'tomorrow' is not a number"),
    (line(created_at=5), "line 7: created_at: 5 is not an ISO 8601 time"),
    (line(created_at="yesterday"), "line 7: created_at: Invalid isoformat string"),
    (line(value=math.nan), "line 7: value: cache values must be JSON values (NaN and infinity are not)"),
    (line(key=""), "line 7: key: a cache key must not be empty"),
    (line(machine=7), "line 7: machine: a machine name must be a non-empty str"),
    ("[1, 2]", "line 7: a list, not the JSON object `cache export` writes"),
    ("{oops", "line 7: not JSON (Expecting property name enclosed in double quotes, column 2)"),
    ("[" * 100_000 + "]" * 100_000, "line 7: nested too deeply to read"),
])
def test_each_bad_line_is_one_message_naming_the_line_and_field(text, message):
    with pytest.raises(ImportLineError) as raised:
        parse_line(7, text)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@given(st.dictionaries(st.sampled_from(["key", "value", "machine", "created_at", "expires_at", "other"]),
                       st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
                                    lambda inner: st.lists(inner, max_size=3), max_leaves=8)))
def test_any_json_object_is_an_entry_or_one_line_error(item):
    try:
        entry = parse_line(1, json.dumps(item))
    except ImportLineError as exc:
        assert str(exc).startswith("line 1: ") and "\n" not in str(exc)
    else:
        assert entry.created_at.tzinfo is not None
        assert entry.expires_at is None or math.isfinite(entry.expires_at)


def test_a_naive_time_is_utc_whatever_the_local_zone(tmp_path):
    url = f"sqlite:///{tmp_path}/naive.db"
    naive = line(created_at="2026-01-01T00:00:00", expires_at=4102444800)
    imported = cli("cache", "import", "g/j", "-d", url, input=naive + "\n", env={"TZ": "America/New_York"})
    assert imported.returncode == 0, imported.stderr
    [exported] = cli("cache", "export", "g/j", "-d", url, env={"TZ": "Asia/Tokyo"}).stdout.splitlines()
    assert json.loads(exported)["created_at"] == "2026-01-01T00:00:00+00:00"


def test_a_bad_expiry_stores_nothing_on_any_database(backend_url):
    text = line(key="fine") + "\n" + line(expires_at=math.nan) + "\n"
    result = cli("cache", "import", "g/j", "-d", backend_url, input=text)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: line 2: expires_at: nan is not a number of seconds since 1970"
                                     " (or null, for never): nothing was imported")
    assert cli("cache", "list", "g/j", "-a", "-d", backend_url).returncode == 1, "the job was not even created"


def test_a_line_of_invalid_utf8_is_refused_naming_its_line_and_byte():
    with pytest.raises(ImportLineError, match=r"^line 2: byte 10 \(0xff\) is not UTF-8, which `cache export` always"):
        parse_lines([line().encode() + b"\n", b'{"key": "\xff"}\n'])
    [entry] = parse_lines([b"\n", line(key="caf\u00e9").replace("\\u00e9", "\u00e9").encode()])
    assert entry.key == "caf\u00e9", "UTF-8 itself is read"


def test_a_file_of_invalid_utf8_imports_nothing_and_keeps_what_is_stored_on_any_database(backend_url):
    """Python's stdin in a C or POSIX locale (cron's) turned b"\\xff" into a lone surrogate, and it was stored."""
    with connect(backend_url) as db:
        CacheContext(db, "g", "j", "m").create_cache("kept", "old")
    before = cli("cache", "export", "g/j", "-d", backend_url).stdout
    bad = line(value="a?b").encode().replace(b"?", b"\xff")
    text = line(key="fine").encode() + b"\n" + line(key="caf\u00e9").encode() + b"\n" + bad + b"\n"
    result = subprocess.run([sys.executable, "-m", "processcache", "cache", "import", "g/j", "-d", backend_url],
                            input=text, capture_output=True, timeout=120, env={"LC_ALL": "C"})
    assert result.returncode == 1
    at = bad.index(b"\xff") + 1
    assert result.stderr.decode() == (f"Error: line 3: byte {at} (0xff) is not UTF-8, which"
                                      " `cache export` always writes: nothing was imported\n")
    assert cli("cache", "export", "g/j", "-d", backend_url).stdout == before, "nothing stored, nothing lost"


def test_importing_a_file_twice_changes_nothing_unless_appending(backend_url):
    with connect(backend_url) as db:
        ctx = CacheContext(db, "exp", "job", "m1")
        ctx.create_cache_many([("k", "same"), ("k", "same"), ("k", "other")])  # one stamp, a repeated value
        ctx.create_cache("token", "abc", ttl="1h")
    exported = cli("cache", "export", "exp/job", "-d", backend_url).stdout
    assert len(exported.splitlines()) == 4
    again = cli("cache", "import", "exp/job", "-d", backend_url, input=exported)
    assert again.returncode == 0 and again.stdout.strip() == "imported 0 entries into exp/job (4 already there)"
    assert cli("cache", "export", "exp/job", "-d", backend_url).stdout == exported
    appended = cli("cache", "import", "exp/job", "--append", "-d", backend_url, input=exported)
    assert appended.stdout.strip() == "imported 4 entries into exp/job"
    with connect(backend_url) as db:
        values = [e.value for e in CacheContext(db, "exp", "job", "m1").get_cache("k", machine=ANY)]
    assert sorted(values) == ["other", "other", "same", "same", "same", "same"]


def test_cache_set_reads_a_secret_from_stdin_and_never_echoes_it(backend_url):
    piped = cli("cache", "set", "ops/api", "token", "--string", "-m", "m", "-d", backend_url, input="s3cr3t-t0ken\n")
    assert piped.returncode == 0, piped.stderr
    assert cli("cache", "get", "ops/api", "token", "-m", "m", "-d", backend_url).stdout == '"s3cr3t-t0ken"\n'
    dash = cli("cache", "set", "ops/api", "cursor", "-", "-m", "m", "-d", backend_url, input='{"page": 2}')
    assert dash.returncode == 0, dash.stderr
    assert cli("cache", "get", "ops/api", "cursor", "-m", "m", "-d", backend_url).stdout == '{"page":2}\n'
    bad = cli("cache", "set", "ops/api", "token", "-m", "m", "-d", backend_url, input="s3cr3t-t0ken\n")
    assert bad.returncode == 1 and "VALUE is not JSON" in bad.stderr and "s3cr3t" not in bad.stderr
