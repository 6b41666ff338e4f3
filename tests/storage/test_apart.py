"""processcache's tables beside an application's of the same names: refused in one line, or kept apart."""

import sqlite3

import pytest
from conftest import _admin

from processcache import cache_session, connect
from processcache.errors import ConfigError, SchemaError

ADVICE = {"sqlite": "give processcache a file of its own", "postgres": "add ?schema=processcache to the URL",
          "pgbouncer": "add ?schema=processcache to the URL", "mysql": "give processcache a database of its own"}


def app_table(url: str, statement: str) -> None:
    """Run the application's own *statement* on its database, by its own driver."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(statement)
        return
    _admin("postgres" if url.startswith("postgres") else "mysql", url, statement)


def kind_of(url: str, request) -> str:
    return request.node.callspec.params["backend_url"]


def test_an_application_table_named_processes_is_refused_in_one_line_and_left_alone(backend_url, request):
    app_table(backend_url, "CREATE TABLE processes (id INTEGER PRIMARY KEY, title VARCHAR(50))")
    app_table(backend_url, "INSERT INTO processes (id, title) VALUES (1, 'the app''s own')")
    with pytest.raises(SchemaError) as refused:
        connect(backend_url)
    message = str(refused.value)
    assert "holds a table named processes that is not processcache's" in message and "\n" not in message
    assert "nothing was changed" in message and ADVICE[kind_of(backend_url, request)] in message
    with pytest.raises(SchemaError):
        connect(backend_url)  # and again: the first attempt created nothing beside it
    app_table(backend_url, "UPDATE processes SET title = 'still the app''s' WHERE id = 1")


def test_a_schema_of_its_own_keeps_processcache_apart_from_the_applications_tables(postgres_url):
    app_table(postgres_url, "CREATE TABLE processes (id INTEGER PRIMARY KEY, title VARCHAR(50))")
    app_table(postgres_url, "INSERT INTO processes VALUES (1, 'the app''s own')")
    apart = postgres_url + "?schema=processcache"
    with cache_session("etl", "crm", machine="m", database=apart) as ctx:
        ctx.create_cache("token", "abc")
    with connect(apart) as db:
        [run] = db.history.list_runs("etl/crm")
        assert run.status == "succeeded"
        found = db.backend.select("SELECT table_schema FROM information_schema.tables WHERE table_name = 'processes'"
                                  " ORDER BY table_schema")
    assert [schema for (schema,) in found] == ["processcache", "public"]
    with cache_session("etl", "crm", machine="m", database=apart) as ctx:
        assert ctx.get_cache("token")[0].value == "abc", "the next run reads what the first stored"


@pytest.mark.parametrize("url, message", [
    ("mysql://root@db/app?schema=pc", "schema='pc' in the URL is for PostgreSQL"),
    ("postgresql://cron@db/app?schema=a;drop", "use letters, digits and underscores"),
    ("postgresql://cron@db/app?schema=pc&options=-c%20x%3Dy", "schema= and libpq's options= in one URL"),
])
def test_a_bad_schema_option_is_refused_in_one_line(url, message):
    from processcache.storage.config import parse_url

    with pytest.raises(ConfigError, match=message):
        parse_url(url)
