"""Memoised calls: one key per call whatever its spelling, async functions, forgetting,
prompt waiters, one computation."""

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cli_helpers import cli, outputs, start_script
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import HELPERS

from processcache import ANY, InvalidKeyError, InvalidValueError, cache_session, connect
from processcache.cache.memo import POLL, default_name, memo_key

HERE = HELPERS
WORKERS = HERE / "workers.py"
MEMO_WORKERS = HERE / "memo_workers.py"


start = start_script


# -- keys -----------------------------------------------------------------------

def test_a_memoised_exception_is_not_cached_and_arguments_make_the_key(ctx):
    calls = []

    @ctx.memoize(ttl="1h")
    def fetch(page, size=10):
        calls.append((page, size))
        if page < 0:
            raise ValueError("no such page")
        return {"page": page, "size": size}

    assert fetch(1) == fetch(1) == {"page": 1, "size": 10}
    assert fetch(1, size=20) == {"page": 1, "size": 20} and fetch(2) == {"page": 2, "size": 10}
    assert calls == [(1, 10), (1, 20), (2, 10)]
    for _ in range(2):
        with pytest.raises(ValueError):
            fetch(-1)
    assert calls[-2:] == [(-1, 10), (-1, 10)], "exceptions are not cached"
    assert fetch.memo_key(1) != fetch.memo_key(1, size=20) == fetch.memo_key(1, size=20)
    with pytest.raises(TypeError, match="JSON"):
        fetch({1, 2})
    with pytest.raises(TypeError, match="parentheses"):
        ctx.memoize(lambda: None)


def test_one_call_spelled_three_ways_is_computed_once(ctx):
    calls = []

    @ctx.memoize()
    def f(x, y=2):
        calls.append((x, y))
        return x + y

    assert f(1) == f(x=1) == f(1, y=2) == f(y=2, x=1) == 3
    assert calls == [(1, 2)]


def test_a_call_that_does_not_fit_the_signature_is_the_type_error_python_gives_naming_the_function(ctx):
    @ctx.memoize()
    def f(x, y=2):
        return x

    with pytest.raises(TypeError, match=r"f\(\): missing a required argument: 'x'"):
        f(y=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        f(1, z=3)


JSON_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)


def _extra_names():
    return st.dictionaries(st.sampled_from(["d", "e", "zz"]), JSON_SCALARS, max_size=2)


@settings(max_examples=60, deadline=None)
@given(a=JSON_SCALARS, b=st.none() | JSON_SCALARS, rest=st.lists(JSON_SCALARS, max_size=2),
       c=st.none() | JSON_SCALARS, extra=_extra_names(), data=st.data())
def test_every_spelling_of_one_bound_call_has_one_key(a, b, rest, c, extra, data):
    """``f(a, b=2, *rest, c=3, **extra)``: positional or keyword, a default given or left out, one key."""

    def f(a, b=2, *rest, c=3, **extra):
        return None

    key_of = _memo_keys(f)
    b = 2 if b is None else b
    c = 3 if c is None else c
    explicit = key_of(a, b, *rest, c=c, **extra)
    kwargs = dict(extra)
    if c != 3 or data.draw(st.booleans(), "c spelled out"):
        kwargs["c"] = c
    if rest:
        args = (a, b, *rest)
    elif b == 2 and data.draw(st.booleans(), "b left out"):
        args, kwargs = ((a,), kwargs) if data.draw(st.booleans(), "a by position") else ((), {**kwargs, "a": a})
    elif data.draw(st.booleans(), "b by name"):
        args, kwargs = (a,), {**kwargs, "b": b}
    else:
        args = (a, b)
    assert key_of(*args, **kwargs) == explicit


@settings(max_examples=60, deadline=None)
@given(st.tuples(JSON_SCALARS, JSON_SCALARS), st.tuples(JSON_SCALARS, JSON_SCALARS))
def test_different_bound_arguments_have_different_keys(one, other):
    def f(x, y=2):
        return None

    key_of = _memo_keys(f)
    same = json.dumps(one) == json.dumps(other)
    assert (key_of(*one) == key_of(*other)) == same


def _memo_keys(func):
    """The wrapper's memo_key, without a database: the context is never asked for."""
    from processcache.cache.memo import memoizer

    return memoizer(lambda: pytest.fail("no database needed for a key"), None, 60, 600)(func).memo_key


arguments = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                         | st.floats(allow_nan=False, allow_infinity=False),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                     max_size=3), max_leaves=8)


@settings(max_examples=5)
@given(st.lists(st.tuples(st.lists(arguments, max_size=3), st.dictionaries(st.text(max_size=4), arguments,
                                                                               max_size=3)), min_size=1, max_size=20))
def test_memo_keys_are_the_same_in_other_processes_and_hash_seeds(calls):
    here = [memo_key("f", tuple(args), kwargs) for args, kwargs in calls]
    for seed in ("1", "4242"):
        there = subprocess.run([sys.executable, str(WORKERS), "memo_key"], input=json.dumps(calls),
                               capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed},
                               check=True).stdout
        assert json.loads(there) == here
    distinct = {json.dumps([args, kwargs], sort_keys=True) for args, kwargs in calls}
    assert len(set(here)) == len(distinct), "different arguments, different keys"


@pytest.mark.parametrize("argument", [{1: "a"}, {None: 1}, {(1, 2): 3}, [{"ok": {True: 1}}], {"a": 1, 2: "b"}])
def test_an_argument_holding_a_dict_key_that_is_not_a_str_is_refused_naming_it(argument):
    key_of = _memo_keys(lambda x: x)
    with pytest.raises(InvalidValueError, match="arguments of a memoised call .* whose dict keys are str") as error:
        key_of(argument)
    assert "\n" not in str(error.value)


def test_the_default_name_is_the_file_and_the_qualified_name():
    def inner():
        return None

    assert default_name(inner) == ("test_memo.test_the_default_name_is_the_file_and_the_qualified_name"
                                   ".<locals>.inner")
    assert default_name(default_name) == "memo.default_name"


def test_a_name_replaces_the_functions_in_its_keys_and_one_no_database_takes_is_refused_at_once(ctx):
    @ctx.memoize(name="rates")
    def fetch(day):
        return day

    assert fetch.memo_key("2026-01-01").startswith("memo:rates:")
    with pytest.raises(InvalidKeyError, match="NUL"):
        ctx.memoize(name="bad\x00name")(fetch)


JOB_FILE = """
    from processcache import job

    @job("memo-load", "job")
    def memoised_job(ctx):
        @ctx.memoize()
        def f(x):
            with open({counter!r}, "a") as out:
                out.write("computed\\n")
            return x * 2

        ctx.result = f(21)
"""


# A job file named like the standard library's (email) gets another module name.
@pytest.mark.parametrize("stem", ["memo", "email"])
def test_a_job_file_run_by_path_and_as_a_package_module_shares_one_memo_cache(backend_url, tmp_path, stem):
    counter = tmp_path / "computed.txt"
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "__init__.py").write_text("")
    (tmp_path / "jobs" / f"{stem}.py").write_text(textwrap.dedent(JOB_FILE).replace("{counter!r}", repr(str(counter))))
    for target in [f"jobs/{stem}.py:memoised_job", f"jobs.{stem}:memoised_job"]:
        result = cli("run", target, "-d", backend_url, "--machine", "m1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert counter.read_text() == "computed\n", "the second run, loaded the other way, reused the value"


# -- async ----------------------------------------------------------------------

def test_an_async_function_gets_an_async_wrapper_that_awaits_it_once(ctx):
    calls = []

    @ctx.memoize()
    async def fetch(page, size=10):
        await asyncio.sleep(0)
        calls.append(page)
        return {"page": page, "size": size}

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(1)) == asyncio.run(fetch(page=1, size=10)) == {"page": 1, "size": 10}
    assert calls == [1]
    assert fetch.forget(1) == 1 and asyncio.run(fetch(1)) == {"page": 1, "size": 10} and calls == [1, 1]


def test_an_async_exception_is_not_cached_and_releases_the_lock(ctx):
    attempts = []

    @ctx.memoize(timeout=5)
    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("the API is down")
        return "up"

    with pytest.raises(ConnectionError):
        asyncio.run(flaky())
    started = time.monotonic()
    assert asyncio.run(flaky()) == "up" and len(attempts) == 2
    assert time.monotonic() - started < 2, "the failed call left no lock to wait for"


def test_concurrent_async_calls_compute_once_and_waiting_does_not_block_the_event_loop(ctx):
    calls = []

    @ctx.memoize()
    async def slow(x):
        calls.append(x)
        await asyncio.sleep(1.0)
        return x * 2

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        beat = asyncio.create_task(ticker())
        results = await asyncio.gather(*(slow(21) for _ in range(4)))
        beat.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert results == [42] * 4 and calls == [21]
    assert ticks >= 10, "the event loop ran other tasks while the calls waited"


def test_four_processes_calling_one_async_memoised_function_compute_it_once(backend_url, tmp_path):
    connect(backend_url).close()
    counter = tmp_path / "calls.txt"
    start_at = time.time() + 3
    results = [json.loads(out.splitlines()[-1])["value"] for out in
               outputs([start(MEMO_WORKERS, "call", backend_url, "async", 1, counter, start_at) for _ in range(4)])]
    assert len(counter.read_text().splitlines()) == 1, "the function body ran exactly once"
    assert all(result == results[0] for result in results)


# -- forget and cache_clear -------------------------------------------------------

def test_forget_deletes_one_calls_value_on_every_machine(backend):
    def define(ctx, calls):
        @ctx.memoize()
        def rate(currency, day="today"):
            calls.append(currency)
            return {"EUR": 1.08, "GBP": 0.86}[currency]

        return rate

    with cache_session("memo", "forget", machine="m1", database=backend) as one:
        calls_one = []
        rate_one = define(one, calls_one)
        assert rate_one("EUR") == 1.08 and rate_one("GBP") == 0.86
    with cache_session("memo", "forget", machine="m2", database=backend) as two:
        calls_two = []
        rate_two = define(two, calls_two)
        assert rate_two.forget("EUR", day="today") == 1, "m1's value, forgotten from m2"
        assert rate_two.forget("EUR") == 0
        assert rate_two("GBP") == 0.86 and calls_two == [], "the other call is kept"
        assert rate_two("EUR") == 1.08 and calls_two == ["EUR"]


def test_cache_clear_deletes_every_value_of_the_function_and_nothing_else(backend):
    with cache_session("memo", "clear", machine="m1", database=backend) as one:
        one.create_cache("plain", "kept")

        @one.memoize()
        def double(x):
            return x * 2

        @one.memoize(name=f"{default_name(double)}:more")  # a name that starts with double's
        def other(x):
            return x

        assert [double(n) for n in range(3)] == [0, 2, 4] and other(1) == 1
    with cache_session("memo", "clear", machine="m2", database=backend) as two:
        calls = []

        @two.memoize()
        def double(x):
            calls.append(x)
            return x * 2

        assert double(3) == 6
        assert double.cache_clear() == 4, "three values from m1 and one from m2"
        assert double.cache_clear() == 0
        assert double(0) == 0 and calls == [3, 0]
        assert two.latest("plain", machine=ANY) == "kept"
        assert len(two.get_full_cache(machine=ANY)) == 3, "plain, other's value and double(0)"


# -- waiting for another process ---------------------------------------------------

def test_get_or_compute_reuses_a_value_from_another_machine(backend):
    with cache_session("memo", "job", machine="m1", database=backend) as one:
        assert one.get_or_compute("rates", lambda: {"EUR": 1.08}) == {"EUR": 1.08}
    with cache_session("memo", "job", machine="m2", database=backend) as two:
        assert two.get_or_compute("rates", lambda: pytest.fail("computed twice")) == {"EUR": 1.08}


def test_eight_processes_calling_one_memoised_function_compute_it_once(backend_url, tmp_path):
    connect(backend_url).close()
    counter = tmp_path / "calls.txt"
    start_at = time.time() + 3
    results = [json.loads(out.splitlines()[-1]) for out in
               outputs([start(WORKERS, "memo_call", backend_url, counter, start_at, 30) for _ in range(8)])]
    assert len(counter.read_text().splitlines()) == 1, "the function body ran exactly once"
    assert all(result == results[0] for result in results) and results[0]["sum"] == 42


def test_when_the_computing_process_dies_another_takes_over(backend_url, tmp_path):
    connect(backend_url).close()
    counter = tmp_path / "calls.txt"
    lease = 1.5
    slow = {"MEMO_SLEEP": "30"}
    doomed = start(WORKERS, "memo_call", backend_url, counter, 0, lease, env=slow)
    assert doomed.stdout.readline().strip() == "computing"
    waiters = [start(WORKERS, "memo_call", backend_url, counter, 0, lease, env={"MEMO_SLEEP": "0.2"})
               for _ in range(3)]
    time.sleep(1.0)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    results = [json.loads(out.splitlines()[-1]) for out in outputs(waiters)]
    computed_by = counter.read_text().splitlines()
    assert len(computed_by) == 2 and computed_by[0] == str(doomed.pid), "the killed one, then one other"
    assert {result["by"] for result in results} == {int(computed_by[1])}


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_waiting_processes_return_promptly_once_the_value_is_stored(backend_url, tmp_path, kind):
    """Four processes wait out a 3 s computation (the old backoff was then up to 1.75 s late): each returns within
    POLL and a few queries of its end."""
    connect(backend_url).close()
    counter = tmp_path / "calls.txt"
    computer = start(MEMO_WORKERS, "call", backend_url, kind, 3, counter, 0)
    assert computer.stdout.readline().strip() == "computing"
    waiters = [start(MEMO_WORKERS, "call", backend_url, kind, 3, counter, 0) for _ in range(4)]
    reports = [json.loads(out.splitlines()[-1]) for out in outputs([computer, *waiters])]
    assert len(counter.read_text().splitlines()) == 1
    late = [report["returned_at"] - report["value"]["done_at"] for report in reports[1:]]
    assert max(late) < POLL + 0.4, f"waiters returned {', '.join(f'{s:.2f}' for s in late)} s after the value"


def test_a_default_that_is_no_json_value_stays_out_of_the_key_unless_passed(ctx):
    client = object()  # a session, a client: not a JSON value
    calls = []

    @ctx.memoize()
    def rate(day, source=client, currency="EUR"):
        calls.append(day)
        return len(calls)

    assert rate("2026-11-26") == rate("2026-11-26", currency="EUR") == 1, "defaults that are JSON are bound"
    assert rate("2026-11-27") == 2 and calls == ["2026-11-26", "2026-11-27"]
    with pytest.raises(TypeError, match="JSON"):
        rate("2026-11-26", source=client)  # passed, it must be storable like any argument
