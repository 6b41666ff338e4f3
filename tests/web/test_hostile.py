"""Hostile and broken input: everything round-trips exactly or is refused clearly, and nothing stored is touched."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_names import declarable, original_rule

from processcache import CacheContext, InvalidKeyError, InvalidNameError, InvalidValueError, ProcessCacheError, connect

NASTY = ["'", '"', ";", "--", "/*", "*/", "\\", "%", "_", "$", "$name", "?", "%s", "{}", "\x00", "\ud800",
         "\udfff", "😀", "\u202e", "\n", "\r\n", " ", "\t", "DROP TABLE process_cache;", "' OR '1'='1", "`"]
texts = st.lists(st.sampled_from(NASTY) | st.text(max_size=3), max_size=6).map("".join)
values = st.recursive(st.none() | st.booleans() | st.integers() | texts
                      | st.floats(allow_nan=True, allow_infinity=True),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=10)


def stores_text(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=60)
@given(group=texts, job=texts, machine=texts, key=texts, value=values)
def test_names_keys_and_values_round_trip_or_are_refused(backend, group, job, machine, key, value):
    sentinel = CacheContext(backend, "sentinel", "job", "m")
    if not sentinel.has_cache():
        sentinel.create_cache("kept", {"safe": True})
    # An empty machine means this host's name.
    names_ok = all(stores_text(t) and len(t) <= 255 for t in (group, job, machine)) and all(
        declarable(original_rule(t)) for t in (group, job))
    try:
        ctx = CacheContext(backend, group, job, machine)
    except InvalidNameError as exc:
        assert "\n" not in str(exc) and not names_ok
    else:
        assert names_ok
        try:
            entry = ctx.create_cache(key, value)
        except (InvalidKeyError, InvalidValueError) as exc:
            assert "\n" not in str(exc)
            assert isinstance(exc, InvalidValueError) or not key or not stores_text(key)
        else:
            assert entry.value == value and ctx.get_cache(key)[-1].value == value
            assert ctx.get_cache(key)[-1].key == key
    assert [e.value for e in sentinel.get_cache("kept")] == [{"safe": True}], "stored data untouched"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), [1, float("nan")]])
def test_nan_and_infinities_are_refused_with_the_reason(ctx, value):
    with pytest.raises(InvalidValueError, match="NaN and infinity are not"):
        ctx.create_cache("k", value)
    assert not ctx.has_cache()


def test_a_ten_megabyte_string_round_trips(ctx):
    value = "0123456789" * (1024 * 1024)
    ctx.create_cache("big", value)
    assert ctx.get_cache("big")[0].value == value


def test_deep_json_round_trips_and_too_deep_is_refused(ctx):
    deep = current = []
    for _ in range(500):
        current.append([])
        current = current[0]
    ctx.create_cache("deep", deep)
    assert ctx.get_cache("deep")[0].value == deep
    abyss = current = []
    for _ in range(100_000):
        current.append([])
        current = current[0]
    with pytest.raises(InvalidValueError, match="nested too deeply"):
        ctx.create_cache("abyss", abyss)


def test_a_value_over_mysqls_packet_limit_is_refused_clearly_postgresql_takes_it(server_backend_url):
    huge = "é" * (3 * 1024 * 1024)  # 18 MiB once escaped: over MariaDB's default 16 MiB packet
    with connect(server_backend_url) as db:
        ctx = CacheContext(db, "g", "j", "m")
        if db.backend.dialect.name == "mysql":
            with pytest.raises(InvalidValueError, match="raise its max_allowed_packet or store less"):
                ctx.create_cache("huge", huge)
            with pytest.raises(InvalidValueError, match="max_allowed_packet"):
                ctx.create_cache_many([("small", 1), ("huge", huge)])
            assert not ctx.has_cache()
        else:
            ctx.create_cache("huge", huge)
            assert ctx.get_cache("huge")[0].value == huge


def test_errors_are_processcache_errors():
    assert issubclass(InvalidKeyError, ProcessCacheError) and issubclass(InvalidValueError, TypeError)
