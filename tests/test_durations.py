"""Durations parse as people write them, or fail with a message that says how to write them."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processcache import ConfigError
from processcache.durations import format_duration, parse_duration, parse_since

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


@pytest.mark.parametrize("seconds, shown", [(0.9, "900ms"), (1, "1.0s"), (1.5, "1.5s"), (9.5, "9.5s"), (10, "10s"),
                                            (10.5, "10s"), (11, "11s"), (59, "59s"), (60, "1m00s"), (60.5, "1m00s"),
                                            (3599, "59m59s"), (3600, "1h00m"), (86399, "23h59m"), (86400, "1d0h")])
def test_each_form_of_a_duration_begins_exactly_at_its_unit(seconds, shown):
    assert format_duration(seconds) == shown


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=4))
def test_since_a_duration_is_that_long_ago_for_the_database_to_count_back(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_since(text) == timedelta(seconds=parse_duration(text))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.one_of(st.none(), st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))))
def test_since_a_time_is_that_time_in_utc_unless_it_has_an_offset(moment, zone):
    given_moment = moment.replace(tzinfo=zone)
    assert parse_since(given_moment.isoformat()) == moment.replace(tzinfo=zone or UTC)


@pytest.mark.parametrize("bad", ["yesterday", "", "-1h", "2026-13-01", "1x"])
def test_since_neither_a_duration_nor_a_time_is_refused_in_one_line_naming_both_forms(bad):
    with pytest.raises(ConfigError) as refused:
        parse_since(bad)
    assert str(refused.value) == (f"{bad!r} is neither a duration ago (30s, 15m, 2h, 1d, 1h30m or seconds) nor a"
                                  " time (2026-11-24T03:00, UTC unless it has an offset)")
