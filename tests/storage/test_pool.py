"""A process's threads share a bounded pool of server connections (`processcache.storage.pool`)."""

import threading
import time
from urllib.parse import urlsplit

import pytest

from processcache import connect
from processcache.errors import ConfigError, PoolExhaustedError


def server_connections(url: str) -> int:
    """How many connections the server has open to the test's database, counted by the server."""
    name = urlsplit(url).path.lstrip("/")
    with connect(url) as counter:  # its own pool: one connection, counted out below
        if url.startswith("postgresql"):
            found = counter.backend.value("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $name",
                                          {"name": name})
        else:
            found = counter.backend.value("SELECT COUNT(*) FROM information_schema.processlist WHERE db = $name",
                                          {"name": name})
    return int(found) - 1


def busy_threads(db, count: int, rounds: int, during) -> list[BaseException]:
    """*count* threads reading the jobs *rounds* times each; *during* is called while they run."""
    errors: list[BaseException] = []
    started = threading.Barrier(count + 1)

    def work() -> None:
        started.wait()
        try:
            for _ in range(rounds):
                db.history.jobs()
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    started.wait()
    during()
    for thread in threads:
        thread.join(120)
    return errors


def test_forty_threads_share_the_pools_connections_and_no_more(server_backend_url):
    with connect(server_backend_url + "?pool_size=4") as db:
        db.history.jobs()
        seen: list[int] = []
        errors = busy_threads(db, 40, 30,
                              lambda: (time.sleep(0.3), seen.append(server_connections(server_backend_url))))
        assert errors == []
        assert 1 <= seen[0] <= 4, seen
        assert db.backend.pool.open <= 4


def test_the_default_pool_holds_ten_connections_not_one_a_thread(server_backend_url):
    with connect(server_backend_url) as db:
        seen: list[int] = []
        busy_threads(db, 40, 30, lambda: (time.sleep(0.3), seen.append(server_connections(server_backend_url))))
        assert 1 <= seen[0] <= 10, "Pony alone opens one a thread: 41 here"


def test_a_thread_that_waits_past_pool_timeout_fails_in_one_line(server_backend_url):
    with connect(server_backend_url + "?pool_size=2&pool_timeout=0.5s") as db:
        db.history.jobs()
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with db.backend.transaction():
                db.backend.value("SELECT 1")
                holding.set()
                release.wait(30)

        holders = [threading.Thread(target=hold) for _ in range(2)]
        for holder in holders:
            holder.start()
        while not holding.is_set():
            time.sleep(0.01)
        time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError) as refused:
            db.history.jobs()
        waited = time.monotonic() - started
        release.set()
        for holder in holders:
            holder.join()
        assert 0.4 < waited < 5
        message = str(refused.value)
        assert "all 2 connections to" in message and "in use for 0.5s" in message and "pool_size=" in message
        assert "\n" not in message
        assert db.history.jobs() == [], "once they are free again, the next thread gets one"


def test_a_connection_unused_for_pool_idle_is_closed(server_backend_url):
    with connect(server_backend_url + "?pool_idle=0.5s") as db:
        busy_threads(db, 6, 5, lambda: None)
        assert db.backend.pool.open >= 1
        deadline = time.monotonic() + 10
        while db.backend.pool.open and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.backend.pool.open == 0 and server_connections(server_backend_url) == 0
        assert db.history.jobs() == [], "a new one is opened when needed"


@pytest.mark.parametrize("option, message", [
    ("pool_size=1", "pool_size='1' in the URL: use a whole number of 2 or more"),
    ("pool_size=many", "pool_size='many' in the URL"),
    ("pool_timeout=soon", "pool_timeout in the URL"),
])
def test_bad_pool_options_are_refused_in_one_line(option, message):
    from processcache.storage.config import parse_url

    with pytest.raises(ConfigError, match=message):
        parse_url(f"postgresql://cron@db/cron?{option}")
