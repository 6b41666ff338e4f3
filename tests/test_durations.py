"""Durations parse as people write them, or fail with a message that says how to write them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processcache import ConfigError
from processcache.durations import format_duration, parse_duration

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400),
                                           ("1h30m", 5400), (" 2H ", 7200), ("0.5s", 0.5), ("45", 45), (3, 3)])
def test_durations_people_write(text, seconds):
    assert parse_duration(text) == seconds


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=4))
def test_any_sum_of_units_parses_to_its_seconds(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == sum(n * UNITS[unit] for n, unit in parts)


@given(st.text(max_size=12))
def test_any_text_parses_or_says_how_to_write_a_duration(text):
    try:
        seconds = parse_duration(text, "lease")
    except ConfigError as exc:
        assert "lease" in str(exc)
        assert "30s, 15m, 2h, 1d" in str(exc) or "non-negative" in str(exc)
    else:
        assert seconds >= 0 and seconds != float("inf")


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "1x", "h", "", None, True, [1]])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_duration(bad)


def test_durations_format_for_people():
    assert [format_duration(s) for s in (None, 0.0042, 4.25, 185, 7900, 90000)] == [
        "-", "4ms", "4.2s", "3m05s", "2h11m", "1d1h"]
