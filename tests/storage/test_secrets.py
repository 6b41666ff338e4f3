"""A database password never appears in any output, log, stored row, error or repr."""

import os
import subprocess
import sys
from urllib.parse import quote, urlsplit

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import HELPERS, ROOT

import processcache
from processcache import ConfigError, ProcessCacheError, connect
from processcache.cli.main import main
from processcache.storage.config import parse_url

JOBS = HELPERS / "cli_jobs.py"


def run_cli(args, url=None, env_url=None, input=None):
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    if env_url:
        env["PROCESSCACHE_DATABASE_URL"] = env_url
    command = [sys.executable, "-m", "processcache", *args] + (["-d", url] if url else [])
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, input=input, timeout=120)
    return result.stdout + result.stderr


def every_text_in(db) -> str:
    texts = []
    for table, columns in [("process_job_logs", "message"), ("process_job_runs", "error, traceback, result, machine"),
                           ("process_cache", "entry_key, entry_value, machine"), ("processes", "name"),
                           ("process_jobs", "name"), ("process_job_locks", "name, machine")]:
        for row in db.backend.select(f"SELECT {columns} FROM {table}", {}):
            texts += [str(value) for value in (row if isinstance(row, tuple) else [row])]
    return "\n".join(texts)


def test_no_command_or_failure_shows_the_password(server_backend_url, secret_url, tmp_path):
    url, marker = secret_url
    outputs = [
        run_cli(["run", f"{ROOT}/examples/hello.py:hello"], url),
        run_cli(["run", f"{JOBS}:fails"], url),
        run_cli(["run", f"{JOBS}:parity"], env_url=url),
        run_cli(["jobs"], url), run_cli(["jobs", "--json"], url),
        run_cli(["runs"], url), run_cli(["runs", "--json"], url),
        run_cli(["logs"], url), run_cli(["logs", "--json"], url),
        run_cli(["locks"], url), run_cli(["check"], url), run_cli(["check", "--json"], url),
        run_cli(["prune", "--runs-older-than", "30d", "--dry-run"], url),
        run_cli(["cache", "list", "example/hello-world", "-a"], url),
        run_cli(["cache", "set", "example/hello-world", "k", "v", "--string"], url),
        run_cli(["cache", "export", "example/hello-world"], url),
        run_cli(["db", "sync", "--mode", "check"], url),
        run_cli(["--help"], env_url=url), run_cli(["run", "--help"], env_url=url),
        # failure paths: a wrong port, a bad port, a missing job, a bad sync mode
        run_cli(["jobs"], url.replace(f":{url.rsplit(':', 1)[1].split('/')[0]}/", ":1/") + "?retry_for=0"),
        run_cli(["jobs"], url.replace("@", "@[bad")),
        run_cli(["runs", "no/such-job"], url),
        run_cli(["run", "missing.py:job"], url),
    ]
    for output in outputs:
        assert marker not in output, output
    assert "***" in outputs[-4] or "***" in outputs[-3]
    with connect(url) as db:
        assert marker not in repr(db) and marker not in repr(db.config) and marker not in db.url
        assert marker not in every_text_in(db)


def as_option(url: str, name: str) -> str:
    """*url* with its password given as the option *name* (``?password=``) instead of in its user part."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@{parts.netloc.rpartition('@')[2]}",
                          query=f"{name}={parts.password}").geturl()


@pytest.mark.parametrize("name", ["password", "passwd"])
def test_a_password_given_as_an_option_connects_and_no_command_or_stored_row_shows_it(secret_url, name):
    url, marker = secret_url
    url = as_option(url, name)
    outputs = [run_cli(["run", f"{JOBS}:fails"], url), run_cli(["runs", "--json"], url),
               run_cli(["db", "sync", "--mode", "check"], url)]
    assert '"status": "failed"' in outputs[1] and f"?{name}=***: the schema is up to date" in outputs[2], outputs
    assert not [output for output in outputs if marker in output], outputs
    with connect(url) as db:
        assert marker not in repr(db) and marker not in every_text_in(db)


@pytest.mark.parametrize("where", ["user part", "password", "passwd"])
def test_a_failing_job_that_touches_the_database_keeps_the_password_out_of_its_traceback(server_backend_url,
                                                                                          secret_url, where):
    url, marker = secret_url
    url = url if where == "user part" else as_option(url, where)
    registry = processcache.Registry()

    @registry.job("secrets", "chained")
    def chained(ctx):
        processcache.connect(url.replace("@", "@nowhere.invalid.").replace("://", "://", 1) + "x")

    record = chained.run(database=url, machine="m")
    assert record.status == "failed"
    assert marker not in (record.error or "") and marker not in (record.traceback or "")
    with connect(url) as db:
        assert marker not in every_text_in(db)


# -- no part of a password in what a URL's errors and safe forms show, whatever the URL looks like ---------

#: Password characters: any but control characters, and often those that end or split a URL's user part.
characters = st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("/?#@:%[]")
passwords = st.text(characters, min_size=4, max_size=24)
#: In an option's value an unencoded & starts the next option, so such a password can only be given encoded.
option_passwords = st.text(characters.filter(lambda character: character != "&"), min_size=4, max_size=24)

#: Where a password may be typed as it is, in URLs that parse and URLs that do not.
TYPED_SHAPES = {
    "no colon after the scheme": "postgresql//cron:{}@db.internal/jobs",
    "one slash after the scheme": "postgresql:/cron:{}@db.internal/jobs",
    "no slash after the scheme": "mysql:cron:{}@db.internal/jobs",
    "no scheme": "cron:{}@db.internal/jobs",
    "the user part": "postgresql://cron:{}@db.internal:5432/jobs",
    "the user part, no database": "mysql://cron:{}@db.internal",
    "the user part, options after": "postgresql://cron:{}@db.internal/jobs?retry_for=0&sslmode=disable",
    "the user part of a SQLite URL": "sqlite://cron:{}@db.internal/jobs",
}
OPTION_SHAPES = {
    "?password=": "postgresql://cron@db.internal/jobs?sslmode=disable&password={}",
    "?passwd= on MySQL": "mysql://cron@db.internal/jobs?passwd={}&connect_timeout=5",
    "?password= and a bad port": "postgresql://cron@db.internal:notaport/jobs?password={}",
    "?password= and no database": "mysql://cron@db.internal?password={}",
}
#: Where a percent-encoded password stands in a URL that parses.
ENCODED_SHAPES = {
    "PostgreSQL user part": "postgresql://cron:{}@db.internal:5432/jobs",
    "MySQL user part": "mysql://cron:{}@db.internal/jobs?retry_for=0",
    "PostgreSQL ?password=": "postgresql://cron@db.internal/jobs?password={}&sslmode=disable",
    "MySQL ?passwd=": "mysql://cron@db.internal/jobs?connect_timeout=5&passwd={}",
}
#: What processcache writes itself, which a password may happen to share.
OWN_TEXT = (ROOT / "processcache" / "storage" / "config.py").read_text()


def shown_parts(password: str, text: str, elsewhere: str) -> list[str]:
    """The parts of *password* longer than three characters that *text* shows and *elsewhere* does not hold.

    Every such part holds one of exactly four, so looking for those finds them all.
    """
    known = elsewhere + OWN_TEXT
    fours = {password[i:i + 4] for i in range(len(password) - 3)}
    return sorted(part for part in fours if part in text and part not in known)


def what_a_user_sees(url: str) -> str:
    """The error parse_url raises for *url*, or the safe forms of the URL it accepts."""
    try:
        config = parse_url(url)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return f"{exc}\n{exc!r}"
    return f"{config.safe_url}\n{config!r}"


def assert_none_shown(password: str, shape: str, seen: str) -> None:
    assert shown_parts(password, seen, shape) == [], seen


@given(password=passwords, shape=st.sampled_from(sorted(TYPED_SHAPES)))
def test_no_part_of_a_typed_password_is_shown_whatever_the_url_looks_like(password, shape):
    assert_none_shown(password, TYPED_SHAPES[shape], what_a_user_sees(TYPED_SHAPES[shape].format(password)))


@given(password=option_passwords, shape=st.sampled_from(sorted(OPTION_SHAPES)))
def test_no_part_of_a_password_given_as_an_option_is_shown(password, shape):
    assert_none_shown(password, OPTION_SHAPES[shape], what_a_user_sees(OPTION_SHAPES[shape].format(password)))


@given(digits=st.text("0123456789", min_size=1, max_size=6), rest=passwords)
def test_no_part_of_a_password_of_digits_then_a_slash_is_shown(digits, rest):
    # The digits would parse as a port, and the rest as the path.
    password = f"{digits}/{rest}"
    shape = "postgresql://cron:{}@db.internal:5432/jobs"
    assert_none_shown(password, shape, what_a_user_sees(shape.format(password)))


@given(password=passwords, shape=st.sampled_from(sorted(ENCODED_SHAPES)))
def test_a_percent_encoded_password_of_any_characters_is_the_one_used_and_is_never_shown(password, shape):
    encoded = quote(password, safe="")
    config = parse_url(ENCODED_SHAPES[shape].format(encoded))
    assert config.password == password
    assert config.bind_args["password"] == (password.encode() if config.provider == "mysql" else password)
    for typed in (password, encoded):
        assert_none_shown(typed, ENCODED_SHAPES[shape], f"{config.safe_url}\n{config!r}")


@pytest.mark.parametrize("url, shown", [
    ("postgresql//cron:Secret@db/cron", "'postgresql//cron:***@db/cron' is not a database URL"),
    ("postgresql:/cron:Secret@db/cron", "'postgresql:***@db/cron' is not a database URL"),
    ("cron:Secret@host/db", "'cron:***@host/db' is not a database URL"),
    ("cron:Sec://retive@host/db", "'cron:***@host/db' is not a database URL"),
    ("postgresql:/cron:Sec://retive@db/cron", "'postgresql:***@db/cron' is not a database URL"),
    ("sqlite://cron:Secretive@host/db", "'sqlite://cron:***@host/db' has no file path"),
])
def test_a_url_that_does_not_parse_is_quoted_with_its_user_part_masked(url, shown):
    with pytest.raises(ConfigError) as info:
        parse_url(url)
    assert str(info.value).startswith(shown)
    assert "Secret" not in str(info.value) and "retive" not in str(info.value)


@pytest.mark.parametrize("url", [
    "postgresql://cron:Sup3r/Secret@db/cron", "postgresql://cron:Sup3r?Secret@db/cron",
    "postgresql://cron:Sup3r#Secret@db/cron", "mysql://cron:Sup3r/Secret@db",
    "postgresql://cron:Sup3r?retry_for=Secret@db/cron",  # not an option: the password's end
    "postgresql://cron:Sup3r\uff0fSecret@db/cron",  # a full-width slash, a / to the URL parser
    "postgresql://cron:Sup3r[Secret@db/cron", "postgresql://cron@db/cron?password=Sup3r#Secret",
])
def test_an_unencoded_character_in_a_password_is_one_line_that_says_to_percent_encode_it(url):
    with pytest.raises(ConfigError, match=r"percent-encode .*%2F") as info:
        parse_url(url)
    assert "Sup3r" not in str(info.value) and "Secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["postgresql://cron:12345/Secret@host/db", "mysql://cron:12345/Secret@host",
                                 "postgresql://cron:12345?retry_for=1s@host/db"])
def test_a_password_of_digits_then_a_slash_is_refused_without_any_of_it(url):
    with pytest.raises(ConfigError, match="percent-encode") as info:
        parse_url(url)
    assert "12345" not in str(info.value) and "Secret" not in str(info.value)


def cli_output(*args) -> str:
    """What the command prints, run in this process; a traceback fails the test."""
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def unreachable(template: str) -> str:
    """*template* pointing at a port where nothing listens, never retrying: the command fails at once."""
    template = template.replace("db.internal:5432", "db.internal").replace("db.internal", "127.0.0.1:1")
    base, mark, query = template.partition("?")
    return f"{base}?retry_for=0" + (f"&{query}" if mark else "")


@given(password=option_passwords)
def test_the_command_line_shows_no_part_of_a_password_whatever_the_url_looks_like(password):
    for shape in [*TYPED_SHAPES.values(), *OPTION_SHAPES.values()]:
        template = unreachable(shape)
        output = cli_output("db", "sync", "--mode", "check", "--database", template.format(password))
        assert output.startswith("Error: ") and "\n" not in output.strip(), output
        assert_none_shown(password, template, output)


def test_a_password_of_any_characters_connects_as_typed(secret_url):
    url, marker = secret_url
    password = f"p\u00e4ss \u0100\u20ac/?#@:%&= {marker}"
    parts = urlsplit(url)
    if parts.scheme == "mysql":  # PostgreSQL here takes any password
        import pymysql

        account = pymysql.connect(host=parts.hostname, port=parts.port, user=parts.username, password=parts.password,
                                  charset="utf8mb4")
        account.cursor().execute("SET PASSWORD = PASSWORD(%s)", (password,))
        account.close()
    with connect(server_url_with_password(url, password, "user part")) as db:
        assert marker not in repr(db) and db.sync("check") == []


def server_url_with_password(url: str, password: str, where: str) -> str:
    """*url* with *password* percent-encoded in its user part or as the option *where*."""
    parts = urlsplit(url)
    encoded = quote(password, safe="")
    if where == "user part":
        return parts._replace(netloc=f"{parts.username}:{encoded}@{parts.netloc.rpartition('@')[2]}").geturl()
    return parts._replace(query=f"{where}={encoded}").geturl()


@settings(max_examples=5, deadline=None)
@given(password=passwords, where=st.sampled_from(["user part", "password", "passwd"]))
def test_a_server_database_shows_no_part_of_a_percent_encoded_password(server_backend_url, password, where):
    # PostgreSQL here trusts local connections and takes any password; MariaDB's root refuses every one.
    url = server_url_with_password(server_backend_url, password, where)
    try:
        with connect(url, create=False) as db:
            seen = f"{db!r}\n{db.url}\n{db.config!r}"
    except ProcessCacheError as exc:
        assert server_backend_url.startswith("mysql") and "using password: YES" in str(exc), exc
        seen = f"{exc}\n{exc!r}"
    seen += run_cli(["db", "sync", "--mode", "check"], url)
    for typed in (password, quote(password, safe="")):
        assert_none_shown(typed, server_backend_url, seen)
