"""libpq's multi-host URLs: parsed into the lists libpq takes, masked everywhere, and every command works with one.

``postgresql://cron:pw@db1:5432,db2:5433/cron?target_session_attrs=read-write``
is how a farm names a primary and its standby; libpq tries the hosts in
turn and keeps the first read-write one (the failover itself is in
tests/system/test_failover.py). MySQL's drivers take one host, so such a URL is
refused there in one line.
"""

import json
import time
from urllib.parse import quote, urlsplit

import pytest
from cli_helpers import cli
from hypothesis import given
from hypothesis import strategies as st
from paths import ROOT
from tcpproxy import Proxy
from test_secrets import assert_none_shown, passwords, what_a_user_sees

from processcache import ConfigError, connect
from processcache.storage.config import parse_url


@pytest.mark.parametrize("url, host, port", [
    ("postgresql://cron:pw@db1:5432,db2:5433/cron?target_session_attrs=read-write", "db1,db2", "5432,5433"),
    ("postgresql://cron@db1,db2:5433/cron", "db1,db2", ",5433"),  # a host without a port: libpq's default
    ("postgresql://cron@db1,db2,db3/cron", "db1,db2,db3", None),
    ("postgresql://cron@[::1]:5432,[fd00::2]:5433/cron", "::1,fd00::2", "5432,5433"),
    ("postgresql://cron@%2Fvar%2Frun%2Fpostgresql,db2:5433/cron", "/var/run/postgresql,db2", ",5433"),
    ("postgresql://cron@db1:5432/cron", "db1", 5432),  # one host: as ever
])
def test_several_hosts_reach_libpq_as_its_lists(url, host, port):
    args = parse_url(url).bind_args
    assert (args["host"], args.get("port")) == (host, port)
    assert args["database"] == "cron" and args["user"] == "cron"


def test_the_password_of_a_multi_host_url_is_masked_and_its_hosts_and_options_kept():
    config = parse_url("postgresql://cron:s%40cret@db1:5432,db2:5433/cron?target_session_attrs=read-write")
    assert config.password == "s@cret" and config.bind_args["target_session_attrs"] == "read-write"
    assert config.safe_url == "postgresql://cron:***@db1:5432,db2:5433/cron?target_session_attrs=read-write"
    assert "s@cret" not in repr(config) and "cret" not in config.safe_url


@pytest.mark.parametrize("url, message", [
    ("postgresql://cron:Secret@db1:5432,db2:port/cron", "bad database URL 'postgresql://cron:***@db1:5432,db2:port/cron':"
                                                         " 'db2:port' in its host list is not host or host:port"),
    ("postgresql://cron:Secret@db1:5432,db2:70000/cron", "'db2:70000' in its host list is not host or host:port"
                                                          " (a port is from 0 to 65535)"),
    ("postgresql://cron:Secret@db1,db2/", "names no database: add /dbname"),
    ("mysql://cron:Secret@db1:3306,db2:3306/cron", "the URL 'mysql://cron:***@db1:3306,db2:3306/cron' names several"
                                                    " hosts, which MySQL and MariaDB URLs cannot: name one"),
    ("mariadb://cron@db1,db2/cron?password=Secret", "names several hosts, which MySQL and MariaDB URLs cannot"),
])
def test_a_bad_host_list_or_several_mysql_hosts_are_one_line_without_the_password(url, message):
    with pytest.raises(ConfigError) as info:
        parse_url(url)
    assert message in str(info.value)
    assert "Secret" not in str(info.value) and "\n" not in str(info.value)


# -- masking, by hypothesis: any password, several hosts ----------------------------------------------------

hosts = st.lists(st.tuples(st.sampled_from(["db1", "db-2.internal", "10.0.0.7", "[fd00::2]", "%2Ftmp"]),
                           st.sampled_from(["", ":5432", ":6432", ":1"])), min_size=2, max_size=4)
SHAPES = {
    "user part": "postgresql://cron:{password}@{hosts}/cron?target_session_attrs=read-write",
    "?password=": "postgresql://cron@{hosts}/cron?password={password}&target_session_attrs=read-write",
    "MySQL user part": "mysql://cron:{password}@{hosts}/cron",
}


def host_list(pairs: list[tuple[str, str]]) -> str:
    return ",".join(host + port for host, port in pairs)


@given(password=passwords, pairs=hosts, shape=st.sampled_from(sorted(SHAPES)))
def test_a_percent_encoded_password_with_several_hosts_is_the_one_used_and_never_shown(password, pairs, shape):
    template = SHAPES[shape]
    url = template.format(password=quote(password, safe=""), hosts=host_list(pairs))
    if shape.startswith("MySQL"):
        with pytest.raises(ConfigError, match="names several hosts") as info:
            parse_url(url)
        seen = f"{info.value}\n{info.value!r}"
    else:
        config = parse_url(url)
        assert config.password == password
        assert config.bind_args["host"].split(",") == [host.strip("[]").replace("%2F", "/") for host, _ in pairs]
        seen = f"{config.safe_url}\n{config!r}"
        assert host_list(pairs) in config.safe_url
    for typed in (password, quote(password, safe="")):
        assert_none_shown(typed, template + host_list(pairs), seen)


@given(password=passwords, pairs=hosts, shape=st.sampled_from(sorted(SHAPES)))
def test_no_part_of_a_typed_password_is_shown_with_several_hosts(password, pairs, shape):
    template = SHAPES[shape].replace("{hosts}", host_list(pairs))
    assert_none_shown(password, template, what_a_user_sees(template.replace("{password}", password)))


# -- every command, the first host down ---------------------------------------------------------------------


def listing(postgres_url: str, *hosts: str, query: str = "target_session_attrs=read-write") -> str:
    """*postgres_url* with a password marker and these ``host:port``s (``server``: the test server's)."""
    parts = urlsplit(postgres_url)
    server = f"{parts.hostname}:{parts.port or 5432}"
    netloc = f"{parts.username}:Sekr3tMarker@{','.join(server if host == 'server' else host for host in hosts)}"
    return parts._replace(netloc=netloc, query=query).geturl()


@pytest.mark.slow
def test_every_command_works_when_the_first_host_is_down(postgres_url, tmp_path):
    url = listing(postgres_url, "127.0.0.1:1", "server")
    commands = [
        ["run", f"{ROOT}/examples/hello.py:hello", "--machine", "web1"],
        ["exec", "--job", "ops/echo", "--machine", "web2", "--", "echo", "hello"],
        ["cache", "set", "example/hello-world", "token", "abc", "--string"],
        ["cache", "list", "example/hello-world", "-a"], ["jobs"], ["logs", "example/hello-world"], ["locks"],
        ["check"], ["prune", "--runs-older-than", "30d", "--dry-run"], ["db", "sync", "--mode", "check"],
    ]
    for command in commands:
        done = cli(*command, cwd=tmp_path, env={"PROCESSCACHE_DATABASE_URL": url})
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (command, done.stdout, done.stderr)
        assert "Sekr3tMarker" not in done.stdout + done.stderr, command
        assert command[0] == "check" or done.returncode == 0, (command, done.stdout, done.stderr)
    runs = json.loads(cli("runs", "--json", "--database", url).stdout)
    assert {(run["group"], run["job"], run["machine"], run["status"]) for run in runs} == {
        ("example", "hello-world", "web1", "succeeded"), ("ops", "echo", "web2", "succeeded")}
    with connect(url) as db:
        assert "Sekr3tMarker" not in f"{db!r} {db.url} {db.config!r}"
        assert db.url.startswith("postgresql://postgres:***@127.0.0.1:1,")


def test_a_first_host_that_never_answers_costs_its_connect_timeout_then_the_next_host_is_used(postgres_url):
    # The old primary's machine gone, its packets dropped (the usual failover): each host has a timeout of its own.
    parts = urlsplit(postgres_url)
    with Proxy(parts.hostname, parts.port or 5432) as silent:
        silent.stall()
        url = listing(postgres_url, f"127.0.0.1:{silent.port}", "server", query="connect_timeout=2&retry_for=0")
        started = time.monotonic()
        done = cli("db", "sync", "--database", url)
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started >= 2


def test_when_no_host_takes_the_connection_the_error_says_why_for_each_in_one_line(postgres_url):
    done = cli("jobs", "--database", listing(postgres_url, "127.0.0.1:1", "127.0.0.1:2", query="retry_for=0"))
    assert done.returncode != 0 and "Sekr3tMarker" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "127.0.0.1:1: Connection refused; 127.0.0.1:2: Connection refused" in done.stderr, done.stderr


def test_a_host_that_cannot_be_had_does_not_stop_the_wait_for_another_that_is_restarting(postgres_url):
    # A standby's name gone from DNS and another's port refused, while the primary restarts behind a closed port.
    with Proxy.before(postgres_url) as restarting:
        restarting.cut(2)
        url = listing(postgres_url, "nohost.invalid:5432", "127.0.0.1:1", f"127.0.0.1:{restarting.port}",
                      query="retry_for=20s")
        started = time.monotonic()
        done = cli("db", "sync", "--database", url)
        assert done.returncode == 0, done.stderr
        assert 1.5 <= time.monotonic() - started < 15


def test_when_the_list_never_comes_back_the_one_line_says_how_each_host_failed(postgres_url):
    url = listing(postgres_url, "nohost.invalid:5432", "127.0.0.1:1", query="retry_for=1s")
    done = cli("jobs", "--database", url)
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "Sekr3tMarker" not in done.stderr
    assert ('nohost.invalid:5432: could not translate host name "nohost.invalid" to address: Name or service not'
            ' known; 127.0.0.1:1: Connection refused) since') in done.stderr, done.stderr
    assert "tried again for 1" in done.stderr, done.stderr
