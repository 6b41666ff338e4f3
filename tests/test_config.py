"""Database URLs: every accepted form, the precedence, and masked passwords."""

import os

import pytest
from cli_helpers import cli
from hypothesis import given
from hypothesis import strategies as st

from processcache import ConfigError
from processcache.config import ENV_VAR, default_sqlite_path, parse_url, resolve_url


def test_a_relative_sqlite_path_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_url("sqlite:///state.db")
    assert config.bind_args["filename"] == str(tmp_path / "state.db")


def test_an_absolute_sqlite_path_is_kept():
    assert parse_url("sqlite:////var/lib/x/state.db").bind_args["filename"] == "/var/lib/x/state.db"


def test_memory_sqlite_is_shared_between_threads():
    assert parse_url("sqlite://:memory:").bind_args["filename"] == ":sharedmemory:"


def test_sqlite_defaults_are_wal_normal_and_a_busy_timeout():
    pragmas = parse_url("sqlite:///a.db").pragmas
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == "normal"
    assert int(pragmas["busy_timeout"]) >= 10000


def test_sqlite_options_come_from_the_query_string():
    assert parse_url("sqlite:///a.db?synchronous=FULL").pragmas["synchronous"] == "full"
    with pytest.raises(ConfigError, match="unknown SQLite option 'cache'"):
        parse_url("sqlite:///a.db?cache=1")


@pytest.mark.parametrize("url, provider", [
    ("postgresql://u:p@h:5433/db", "postgres"),
    ("postgres://u@h/db", "postgres"),
    ("mysql://u:p@h:3307/db", "mysql"),
    ("mariadb://u@h/db", "mysql"),
])
def test_server_urls(url, provider):
    config = parse_url(url)
    assert config.provider == provider
    assert config.bind_args["host"] == "h"
    assert config.bind_args["database"] == "db"


def test_percent_encoded_credentials_are_decoded_and_masked():
    config = parse_url("postgresql://cron:s%40cret%3A1@db.internal:5432/cron")
    assert config.bind_args["password"] == "s@cret:1"
    assert config.bind_args["user"] == "cron"
    assert config.safe_url == "postgresql://cron:***@db.internal:5432/cron"
    assert "s@cret" not in repr(config)
    assert config.mask("failed for s@cret:1") == "failed for ***"


def test_mysql_uses_utf8mb4():
    assert parse_url("mysql://u@h/db").bind_args["charset"] == "utf8mb4"


@pytest.mark.parametrize("url, message", [
    ("oracle://u@h/db", "unknown database URL scheme 'oracle'"),
    ("state.db", "is not a database URL"),
    ("postgresql://u:pw@h", "names no database"),
    ("postgresql://u:pw@h:notaport/db", "bad database URL"),
])
def test_bad_urls_say_what_to_do_and_never_show_the_password(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_url(url)
    assert "pw" not in str(info.value)


def test_precedence_explicit_then_environment_then_default(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "sqlite:///from-env.db")
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"
    assert resolve_url(None) == "sqlite:///from-env.db"
    monkeypatch.delenv(ENV_VAR)
    assert resolve_url(None) == "sqlite:///" + default_sqlite_path()


def test_the_default_file_is_in_the_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_sqlite_path() == os.path.join(str(tmp_path), "processcache", "processcache.db")


def test_the_retry_budget_is_a_duration_from_any_url_and_not_passed_to_the_driver():
    assert parse_url("sqlite:///a.db").retry_for == 30.0
    assert parse_url("sqlite:///a.db?retry_for=0&synchronous=full").retry_for == 0
    assert parse_url("sqlite:///a.db?retry_for=0&synchronous=full").pragmas["synchronous"] == "full"
    config = parse_url("postgresql://u@h/db?retry_for=2m&sslmode=disable")
    assert config.retry_for == 120 and config.bind_args["sslmode"] == "disable" and "retry_for" not in config.bind_args
    with pytest.raises(ConfigError, match="retry_for in the URL 'lots' is not a duration"):
        parse_url("mysql://u@h/db?retry_for=lots")


@pytest.mark.parametrize("url", ["sqlite:///a.db?retries=3", "postgresql://u@h/db?retries=0", "mysql://u@h/db?retries=7"])
def test_retries_of_older_versions_is_one_line_that_says_to_write_retry_for(url):
    with pytest.raises(ConfigError, match="write retry_for=") as info:
        parse_url(url)
    assert "\n" not in str(info.value)


def test_server_urls_bound_every_wait_by_default():
    postgres = parse_url("postgresql://u@h/db")
    assert {name: postgres.bind_args[name] for name in ("connect_timeout", "keepalives", "tcp_user_timeout")} == {
        "connect_timeout": "10", "keepalives": "1", "tcp_user_timeout": "30000"}
    assert (postgres.connect_timeout, postgres.read_timeout) == (10, 15) and "read_timeout" not in postgres.bind_args
    mysql = parse_url("mysql://u@h/db").bind_args
    assert (mysql["connect_timeout"], mysql["read_timeout"], mysql["write_timeout"]) == (10, 15, 15)


@given(seconds=st.integers(1, 10**6), unit=st.sampled_from(["", "s", "m", "h"]),
       name=st.sampled_from(["connect_timeout", "read_timeout", "write_timeout"]))
def test_mysql_timeouts_reach_pymysql_as_seconds(seconds, unit, name):
    value = parse_url(f"mysql://u@h/db?{name}={seconds}{unit}").bind_args[name]
    assert value == seconds * {"": 1, "s": 1, "m": 60, "h": 3600}[unit] and isinstance(value, float)


@given(text=st.sampled_from(["true", "false", "1", "0", "yes", "no", "TRUE", "No"]),
       name=st.sampled_from(["ssl_disabled", "ssl_verify_cert", "ssl_verify_identity"]))
def test_mysql_booleans_reach_pymysql_as_booleans(text, name):
    assert parse_url(f"mysql://u@h/db?{name}={text}").bind_args[name] is (text.lower() in ("true", "1", "yes"))


@given(seconds=st.floats(0.5, 10**5), unit=st.sampled_from(["", "s"]))
def test_postgres_read_timeout_is_processcaches_own(seconds, unit):
    config = parse_url(f"postgresql://u@h/db?read_timeout={seconds}{unit}")
    assert config.read_timeout == pytest.approx(seconds) and "read_timeout" not in config.bind_args


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/db?read_timeout=soon", "read_timeout in the URL 'soon' is not a duration"),
    ("mysql://u@h/db?read_timeout=0", "read_timeout='0' in the URL: use a positive duration"),
    ("mysql://u@h/db?ssl_disabled=maybe", "ssl_disabled='maybe' in the URL: use true or false"),
    ("mysql://u@h/db?max_allowed_packet=lots", "max_allowed_packet='lots' in the URL: use a whole number"),
    ("mysql://u@h/db?autocommit=1", "unknown MySQL option 'autocommit' in the URL: use one of connect_timeout"),
    ("postgresql://u@h/db?connect_timeout=10s", "connect_timeout='10s' in the URL: use a whole number of seconds"),
    ("postgresql://u@h/db?read_timeout=-1", "read_timeout in the URL '-1' must be a finite, non-negative"),
])
def test_a_malformed_driver_option_is_one_line_that_says_what_to_use(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_url(url)
    assert "\n" not in str(info.value)


# -- no part of a password in what a URL's errors and safe forms show -----------------------------------

#: Password characters: letters that no message of processcache holds four of in a row, digits, and the
#: characters that end a URL's user part when left unencoded (/ ? #) or that split it (@).
SECRET_ALPHABET = "QXZJKVW" + "23456789" + "/?#@"
_URL_SHAPES = {
    "no ://": "postgresql:cron:{}@db.internal/jobs",
    "no scheme": "cron:{}@db.internal/jobs",
    "no colon after the scheme": "mysql//cron:{}@db.internal/jobs",
    "?password=": "postgresql://cron@db.internal/jobs?sslmode=disable&password={}",
    "?password= and a bad port": "postgresql://cron@db.internal:notaport/jobs?password={}",
    "?password= and no database": "mysql://cron@db.internal?password={}",
}
#: A / ? or # in the user part ends it early: what follows the first ":" is parsed as the port.
_SPLIT_USER_PART_SHAPES = {
    "unencoded / ? # in the user part": "postgresql://cron:{}@db.internal/jobs",
    "unencoded / ? # and no database": "mysql://cron:{}@db.internal",
}


def shown_parts(secret: str, text: str) -> list[str]:
    """The parts of *secret* longer than three characters that *text* shows.

    Every such part holds a part of exactly four, so looking for those finds them all.
    """
    return sorted({secret[i:i + 4] for i in range(len(secret) - 3) if secret[i:i + 4] in text})


def what_a_user_sees(url: str) -> str:
    """The error parse_url raises for *url*, or the safe forms of the URL it accepts."""
    try:
        config = parse_url(url)
    except ConfigError as exc:
        return f"{exc}\n{exc!r}"
    return f"{config.safe_url}\n{config!r}"


secrets = st.text(SECRET_ALPHABET, min_size=20, max_size=40)


def assert_no_part_shown(secret: str, url: str) -> None:
    seen = what_a_user_sees(url)
    assert shown_parts(secret, seen) == [], seen


@given(secret=secrets, shape=st.sampled_from(sorted(_URL_SHAPES)))
def test_no_part_of_a_password_is_shown_whatever_the_url_looks_like(secret, shape):
    assert_no_part_shown(secret, _URL_SHAPES[shape].format(secret))


@given(secret=secrets, shape=st.sampled_from(sorted(_SPLIT_USER_PART_SHAPES)))
def test_no_part_of_a_password_with_an_unencoded_slash_question_mark_or_hash_is_shown(secret, shape):
    assert_no_part_shown(secret, _SPLIT_USER_PART_SHAPES[shape].format(secret))


@given(digits=st.text("23456789", min_size=1, max_size=6), secret=secrets)
def test_no_part_of_a_password_of_digits_then_a_slash_is_shown(digits, secret):
    # The part before the "/" parses as a port, and the rest as the path.
    password = f"{digits}/{secret}"
    assert_no_part_shown(password, f"postgresql://cron:{password}@db.internal:5432/jobs")


@pytest.mark.parametrize("shape", ["no ://", "no scheme", "no colon after the scheme", "?password= and a bad port",
                                   "?password= and no database"])
def test_the_command_line_shows_no_part_of_the_password_of_a_url_it_cannot_parse(shape):
    secret = "QXZJ7K?V#W@2345/ZZQXJK9"
    result = cli("jobs", "-d", _URL_SHAPES[shape].format(secret))
    assert result.returncode == 1 and result.stderr.startswith("Error: "), result
    assert shown_parts(secret, result.stdout + result.stderr) == [], result.stderr


def test_a_password_given_as_a_libpq_option_is_masked_in_what_the_driver_says():
    config = parse_url("postgresql://cron@db.internal/jobs?password=Opt10nSecret")
    assert config.bind_args["password"] == "Opt10nSecret" and "Opt10nSecret" not in config.safe_url
    assert config.mask("FATAL: password Opt10nSecret rejected") == "FATAL: password *** rejected"
