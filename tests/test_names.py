"""Name normalisation agrees with the original process-cache, and keys are checked."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processcache import InvalidKeyError, InvalidNameError, normalize_name
from processcache.names import JS_WHITESPACE, check_key, check_machine

SEPARATORS = set(JS_WHITESPACE) | set("*,.-")
# Text rich in the characters the rule is about.
names = st.text(alphabet=st.one_of(st.sampled_from(sorted(SEPARATORS) + list("aZ_ä€😀İ")),
                                   st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
                max_size=60)


def original_rule(name: str) -> str:
    """The original's rule, written again as a loop: trim, lower-case, collapse separators."""
    out, in_run = [], False
    for char in name.strip(JS_WHITESPACE).lower():
        if char in SEPARATORS:
            if not in_run:
                out.append("-")
            in_run = True
        else:
            out.append(char)
            in_run = False
    return "".join(out)


@pytest.mark.parametrize("raw, stored", [
    ("example", "example"),
    ("  Hello World  ", "hello-world"),
    ("a.b,c*d-e", "a-b-c-d-e"),
    ("a . , * -b", "a-b"),
    ("Été\tNoël", "été-noël"),
    ("x--y", "x-y"),
    ("-lead", "-lead"),
    ("trail.", "trail-"),
    ("snake_case", "snake_case"),
])
def test_names_are_normalised_like_the_original(raw, stored):
    assert normalize_name(raw) == stored


@given(names)
def test_normalisation_agrees_with_the_original_rule(name):
    expected = original_rule(name)
    if not expected or len(expected) > 255:
        with pytest.raises(InvalidNameError):
            normalize_name(name)
    else:
        assert normalize_name(name) == expected


@given(names)
def test_normalisation_is_idempotent_and_leaves_no_separator_runs(name):
    try:
        once = normalize_name(name)
    except InvalidNameError:
        return
    assert normalize_name(once) == once
    assert "--" not in once
    assert not re.search(r"[*,.]", once)
    assert not any(char in JS_WHITESPACE for char in once)


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", "\ufeff"])
def test_a_name_that_normalises_to_nothing_is_refused(raw):
    with pytest.raises(InvalidNameError, match="empty once normalised"):
        normalize_name(raw)


@pytest.mark.parametrize("bad", ["a\x00b", "x" * 256, "lone\ud800"])
def test_names_that_no_database_can_hold_are_refused(bad):
    with pytest.raises(InvalidNameError):
        normalize_name(bad)
    with pytest.raises(InvalidNameError):
        check_machine(bad)


def test_a_non_string_name_is_refused_with_its_type():
    with pytest.raises(InvalidNameError, match="int"):
        normalize_name(3)


@pytest.mark.parametrize("key, message", [
    ("", "must not be empty"),
    ("k" * 256, "256 characters long; the limit is 255"),
    ("a\x00", "NUL"),
    (12, "must be a str, not int"),
])
def test_bad_keys_are_refused_with_the_reason(key, message):
    with pytest.raises(InvalidKeyError, match=message):
        check_key(key)


def test_keys_are_kept_exactly():
    for key in [" spaced ", "Case", "k" * 255, "😀", "a'b\";--"]:
        assert check_key(key) == key
