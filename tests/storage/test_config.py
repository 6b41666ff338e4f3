"""Database URLs: every accepted form, the precedence, and masked passwords."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processcache import ConfigError, connect
from processcache.storage.config import ENV_VAR, default_sqlite_path, parse_url, resolve_url


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


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
@pytest.mark.parametrize("name", ["password", "passwd"])
def test_a_password_given_as_an_option_is_the_one_the_driver_gets(scheme, name):
    config = parse_url(f"{scheme}://cron@db.internal/jobs?{name}=s%26cret%231")
    assert config.password == "s&cret#1"
    assert config.bind_args["password"] == (b"s&cret#1" if scheme == "mysql" else "s&cret#1")
    assert "passwd" not in config.bind_args
    assert config.safe_url == f"{scheme}://cron@db.internal/jobs?{name}=***"


def test_a_password_in_the_user_part_is_used_over_one_given_as_an_option():
    assert parse_url("postgresql://cron:first@db.internal/jobs?password=second").bind_args["password"] == "first"


def test_an_at_sign_in_an_option_of_a_url_without_a_password_is_kept():
    config = parse_url("postgresql://cron@db.internal:5432/jobs?application_name=cron@web1")
    assert config.bind_args["application_name"] == "cron@web1" and config.bind_args["port"] == 5432
    assert config.safe_url == "postgresql://cron@db.internal:5432/jobs?application_name=cron@web1"


def test_a_hash_in_a_server_url_is_refused_because_what_follows_it_would_be_dropped():
    # Read as a fragment, "#1" would silently leave the password "s3cret".
    with pytest.raises(ConfigError, match="percent-encode") as info:
        parse_url("postgresql://cron@db.internal/jobs?password=s3cret#1")
    assert "s3cret" not in str(info.value)


def test_a_mysql_password_reaches_pymysql_in_utf8_which_its_own_latin1_cannot_hold():
    assert parse_url("mysql://cron:p%C3%A4ss%E2%82%AC@db.internal/jobs").bind_args["password"] == "päss€".encode()


def test_echo_in_the_url_writes_each_statement_to_stderr_as_the_originals_logging_flag(tmp_path, capfd):
    with connect(f"sqlite:///{tmp_path}/quiet.db") as db:
        db.find_group("quiet")
    assert capfd.readouterr().err == ""
    with connect(f"sqlite:///{tmp_path}/echo.db?echo=1") as db:
        assert db.url == f"sqlite:///{tmp_path}/echo.db" and db.find_group("nightly") is None
    err = capfd.readouterr().err
    assert "processcache SQL: SELECT id, name, created_at FROM processes WHERE name = $name {'name': 'nightly'}\n" \
        in err and "INSERT INTO processcache_meta" in err
    with pytest.raises(ConfigError, match=r"echo='loud' in the URL: use true or false"):
        connect(f"sqlite:///{tmp_path}/echo.db?echo=loud")
