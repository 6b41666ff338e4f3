"""Memoised calls' database work off the event loop, and memoize when the database is down.

Off the loop means no call into the SQL executor on the loop's thread
(`loop_stalls.LongestStall.on_loop`, a profile hook): that is asserted. The
loop's longest stall is measured too and printed (``pytest -s``); its bound
is only the gross one, a second, far below the database's own timeouts
that a wait on the loop would cost: a busy 2-core machine alone stalls a
loop for a quarter of a second now and then. Outages are made by `tcpproxy.Proxy` in front of the real
servers: ``stall`` (a server that accepts and never answers) and ``cut``
(connections closed, new ones refused); on SQLite, by a file where the
database's folder should be.
"""

import asyncio
import gc
import logging
import time

import pytest
from loop_stalls import LongestStall
from tcpproxy import Proxy

from processcache import ANY, DatabaseUnavailableError, connect, memoize
from processcache.cache import memo
from processcache.cache.context import CacheContext

#: The longest the event loop may stall, in seconds: far below the 2 to 7 s a database wait on it would cost, far
#: above a busy machine's scheduling (about 8 ms usually, 250 ms seen in CI beside other test processes).
STALL_BOUND = 1.0
#: Short timeouts, so that an outage is spent in seconds: without if_database_down="call", a call fails after
#: 3 s (refused) to about 7 s (stalled).
SHORT = "read_timeout=2s&retry_for=3s&connect_timeout=2"
DOWN_AFTER = 1.0
#: How long a cut lasts: the port is closed, then forwards again by itself.
CUT = 3.0


@pytest.fixture(autouse=True)
def memoised_databases_dropped():
    """The Databases `memoize` opened in a test are let go after it, so that their connections close."""
    before = set(memo._contexts)
    yield
    for key in set(memo._contexts) - before:
        del memo._contexts[key]
    gc.collect()


@pytest.fixture
def proxied(server_backend_url):
    """(real URL, proxy): the schema made through the real URL, the proxy in front of the server."""
    connect(server_backend_url).close()
    with Proxy.before(server_backend_url) as proxy:
        yield server_backend_url, proxy


def through(proxy: Proxy, url: str) -> str:
    return proxy.url(url) + "?" + SHORT


def start_outage(proxy: Proxy, fault: str, cut: float = CUT) -> None:
    if fault == "stall":
        proxy.stall()
    else:
        proxy.cut(cut)


def async_double(url: str):
    @memoize("loop", database=url)
    async def double(x):
        return 2 * x

    return double


def end_outage(proxy: Proxy, fault: str) -> None:
    if fault == "stall":
        proxy.forward()  # a cut ends by itself


# -- the event loop ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keys", ["different", "one"])
def test_fifty_concurrent_calls_compute_each_key_once_and_never_stall_the_event_loop(backend_url, keys):
    """50 misses on different keys (the first call connects), or 50 calls for one key: one task computes it and
    the others wait for its value."""
    connect(backend_url).close()  # the schema made; the first call below still connects
    arguments = list(range(50)) if keys == "different" else [21] * 50
    calls = []

    @memoize("loop", database=backend_url)
    async def double(x):
        calls.append(x)
        await asyncio.sleep(0.01 if keys == "different" else 0.3)
        return 2 * x

    async def main():
        async with LongestStall() as stall:
            values = await asyncio.gather(*(double(n) for n in arguments))
        return values, stall

    values, stall = asyncio.run(main())
    print(f"\nlongest stall of the event loop, 50 concurrent calls on {keys} keys: {stall}")
    assert values == [2 * n for n in arguments] and sorted(calls) == sorted(set(arguments))
    assert stall.on_loop == [], "no database work on the event loop"
    assert stall.seconds < STALL_BOUND, f"the event loop stalled {stall}"


@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_an_outage_never_stalls_the_event_loop(proxied, fault):
    url, proxy = proxied
    double = async_double(through(proxy, url))

    async def main():
        assert await double(1) == 2
        start_outage(proxy, fault, cut=60)
        async with LongestStall() as stall:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError):
                await double(2)
        return stall, time.monotonic() - started

    stall, failed_after = asyncio.run(main())
    print(f"\nlongest stall of the event loop, an outage ({fault}) failing a call after {failed_after:.1f} s: {stall}")
    assert stall.on_loop == [], "no database work on the event loop"
    assert stall.seconds < STALL_BOUND, f"the event loop stalled {stall}"


def test_a_call_waiting_on_a_stalled_server_is_cancelled_at_once_and_the_next_works_once_it_answers(proxied):
    url, proxy = proxied
    double = async_double(through(proxy, url))

    async def main():
        assert await double(1) == 2
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(double(2), 0.3)
        cancelled_after = time.monotonic() - started
        proxy.forward()
        return cancelled_after, await double(2)

    cancelled_after, value = asyncio.run(main())
    assert cancelled_after < 1.0, f"cancelled after {cancelled_after:.1f} s"
    assert value == 4


def test_a_call_cancelled_while_computing_releases_its_lock_at_once(backend_url):
    calls = []

    @memoize("loop", database=backend_url)
    async def once_slow(x):
        calls.append(x)
        if len(calls) == 1:
            await asyncio.sleep(60)
        return 2 * x

    async def main():
        first = asyncio.create_task(once_slow(1))
        while not calls:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        cancelled_after = time.monotonic() - started
        # Had its lock stayed, this call would wait for the lease (60 s) to run out.
        return cancelled_after, await asyncio.wait_for(once_slow(1), 10)

    cancelled_after, value = asyncio.run(main())
    assert cancelled_after < 0.5 and value == 2 and calls == [1, 1]


# -- if_database_down="call" ---------------------------------------------------------------------------------------

def memoised(kind: str, url: str, calls: list):
    """``double``, memoised with if_database_down="call", plain or async (*kind*), noting each computation in
    *calls*; and a plain function that calls it, noting the event loop's longest stall of an async call in
    ``.stall``."""

    @memoize("down", database=url, if_database_down="call", down_after=DOWN_AFTER, name="double")
    def double(x):
        calls.append(x)
        return 2 * x

    @memoize("down", database=url, if_database_down="call", down_after=DOWN_AFTER, name="double")
    async def double_async(x):
        calls.append(x)
        return 2 * x

    async def measured(x):
        async with LongestStall() as stall:
            value = await double_async(x)
        call.stall = max(call.stall, stall.seconds)
        call.on_loop += stall.on_loop
        return value

    def call(x):
        return asyncio.run(measured(x)) if kind == "async" else double(x)

    call.stall = 0.0
    call.on_loop = []
    call.memo_key = double.memo_key
    return call


def assert_uncached_within_the_bound(call, calls: list, caplog) -> None:
    """While the database is down: every call returns the function's value, the first within the bound, the next
    at once; one warning."""
    started = time.monotonic()
    assert call(1) == 2, "the value cached before the outage cannot be read: computed"
    first = time.monotonic() - started
    started = time.monotonic()
    assert [call(n) for n in range(2, 22)] == [2 * n for n in range(2, 22)]
    next_twenty = time.monotonic() - started
    print(f"\nwhile down: the first call returned after {first:.2f} s, 20 more took {next_twenty:.2f} s")
    assert first < DOWN_AFTER + 1.5, f"the first call took {first:.1f} s"
    assert next_twenty < 2.0, f"20 calls took {next_twenty:.1f} s: they waited for the database"
    assert calls[-21:] == list(range(1, 22))
    warnings = [r for r in caplog.records if r.name == "processcache.cache.memo" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "cannot be reached" in warnings[0].getMessage()


def until_cached(call, calls: list, x: int) -> None:
    """Call ``call(x)`` until its value is read from the cache (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        before = calls.count(x)
        assert call(x) == call(x) == 2 * x
        if calls.count(x) - before <= 1:
            break
        assert time.monotonic() < deadline, "calls still went uncached after 30 s"
        time.sleep(0.2)
    before = len(calls)
    assert call(x) == 2 * x and len(calls) == before, "read from the cache"


def assert_cached_again(call, calls: list, caplog, url: str) -> None:
    """Once the database answers: within seconds, a value is computed once and then read from the cache."""
    until_cached(call, calls, 100)
    assert any(r.name == "processcache.cache.memo" and "answers again" in r.getMessage() for r in caplog.records)
    with connect(url) as db:
        assert CacheContext(db, "down", "memoize").latest(call.memo_key(100), machine=ANY) == 200


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "async"])
@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_while_the_server_is_down_a_call_returns_the_functions_value_within_the_bound(proxied, fault, kind, caplog):
    url, proxy = proxied
    caplog.set_level(logging.INFO, "processcache.cache.memo")
    calls = []
    call = memoised(kind, through(proxy, url), calls)
    until_cached(call, calls, 1)  # the first call connects: on a loaded machine that may take longer than the bound
    caplog.clear()
    start_outage(proxy, fault)
    assert_uncached_within_the_bound(call, calls, caplog)
    end_outage(proxy, fault)
    assert_cached_again(call, calls, caplog, url)
    print(f"longest stall of the event loop: {call.stall * 1000:.1f} ms")
    assert call.on_loop == [] and call.stall < STALL_BOUND


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_while_the_sqlite_file_cannot_be_opened_a_call_returns_the_functions_value(tmp_path, kind, caplog):
    caplog.set_level(logging.INFO, "processcache.cache.memo")
    blocker = tmp_path / "state"
    blocker.write_text("")  # a file where the database's folder should be
    url = f"sqlite:///{blocker}/cache.db"

    @memoize("down", database=url)
    def failing(x):
        return x

    with pytest.raises(DatabaseUnavailableError, match="cannot create the folder"):
        failing(1)  # the default, if_database_down="fail"
    calls = []
    call = memoised(kind, url, calls)
    calls.append(1)  # as if cached before: assert_uncached_within_the_bound looks for the calls after it
    assert_uncached_within_the_bound(call, calls, caplog)
    blocker.unlink()
    assert_cached_again(call, calls, caplog, url)
    assert call.on_loop == [] and call.stall < STALL_BOUND


def test_if_database_down_is_fail_or_call_and_down_after_a_positive_duration():
    with pytest.raises(ValueError, match="'fail'.*'call'"):
        memoize("down", if_database_down="ignore")
    with pytest.raises(ValueError, match="down_after"):
        memoize("down", if_database_down="call", down_after=0)
