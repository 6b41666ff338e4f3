"""Name normalisation agrees with the original process-cache, declared names cannot collide, keys are checked."""

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from processcache import InvalidKeyError, InvalidNameError, JobSpec, Registry, cache_session, memoize, normalize_name
from processcache.names import JS_WHITESPACE, check_key, check_machine, normalize
from processcache.options import LOCK_SCOPES, JobOptions
from processcache.run.session import lock_name_of

SEPARATORS = set(JS_WHITESPACE) | set("*,.-")
# Text rich in the characters the rule is about.
names = st.text(alphabet=st.one_of(st.sampled_from(sorted(SEPARATORS) + list("aZ_ä€😀İ/@")),
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


def declarable(stored: str) -> bool:
    """What a declared name may be: storable, with a letter or digit, and neither '/' nor '@'."""
    return 0 < len(stored) <= 255 and not {"/", "@"} & set(stored) and any(char.isalnum() for char in stored)


@given(names)
def test_normalisation_agrees_with_the_original_rule(name):
    expected = original_rule(name)
    assert normalize(name) == expected, "lookups of existing names still use the original's rule alone"
    if declarable(expected):
        assert normalize_name(name) == expected
    else:
        with pytest.raises(InvalidNameError):
            normalize_name(name)


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


# -- names that cannot collide --------------------------------------------------

def _declare_with_job(group, name):
    return Registry().job(group, name)(lambda ctx: None)


def _declare_with_spec(group, name):
    return JobSpec(lambda ctx: None, group, name)


def _declare_with_session(group, name):
    with cache_session(group, name, database="sqlite://:memory:"):
        pass


def _declare_with_memoize(group, name):
    return memoize(group, job=name, database="sqlite://:memory:")(lambda: 1)()


@pytest.mark.parametrize("declare", [_declare_with_job, _declare_with_spec, _declare_with_session,
                                     _declare_with_memoize])
@pytest.mark.parametrize("group, name, fix", [
    ("...", "job", "'...' normalises to '-', which holds no letter or digit: use a name with letters or digits"),
    ("group", "...", "'...' normalises to '-', which holds no letter or digit: use a name with letters or digits"),
    ("a/b", "job", "'a/b' holds '/', which separates the group from the job in GROUP/JOB: write 'a-b' instead"),
    ("group", "a/b", "'a/b' holds '/', which separates the group from the job in GROUP/JOB: write 'a-b' instead"),
    ("a@b", "job", "'a@b' holds '@', which separates the job from the machine in GROUP/JOB@MACHINE: write 'a-b'"),
    ("group", "a@b", "'a@b' holds '@', which separates the job from the machine in GROUP/JOB@MACHINE: write 'a-b'"),
    ("team", "sync@web1", "write 'sync-web1' instead"),
], ids=["punctuation group", "punctuation job", "slash in group", "slash in job", "at in group", "at in job",
        "job named like a per-machine lock"])
def test_names_that_collide_or_that_no_command_can_address_are_refused_when_declared(declare, group, name, fix):
    with pytest.raises(InvalidNameError, match=re.escape(fix)) as refused:
        declare(group, name)
    assert "\n" not in str(refused.value)


def test_the_message_says_whether_the_group_or_the_job_is_wrong():
    with pytest.raises(InvalidNameError, match="^the group name 'a/b' holds"):
        _declare_with_job("a/b", "c")
    with pytest.raises(InvalidNameError, match="^the job name 'b/c' holds"):
        _declare_with_job("a", "b/c")


# Names and machines rich in what lock names are made of: '/', '@', spaces that
# normalise away (or, in machine names, stay, which MariaDB ignores at the end),
# and lengths up to the limit, where one long part pushes the rest past 255.
# Group and job names hold '/' and '@' seldom (most such names are refused);
# `respelled` makes pairs whose lock names were one text before.


def _parts(chars: str):
    short = st.text(st.sampled_from(chars), min_size=1, max_size=6)
    return st.one_of(short, short, st.builds(lambda n, tail: "x" * n + tail, st.integers(230, 250), short))


_plain = _parts("aab0é .-~:")
_name = st.one_of(_plain, _plain, _plain, _parts("a0/@ ."))
_machine = _parts("a0 /@~:")
identities = st.tuples(_name, _name, _machine, st.sampled_from(LOCK_SCOPES))


@st.composite
def respelled(draw):
    """Two identities whose normalised names, joined as ``group/job@machine``, may spell the same text."""
    first = draw(st.tuples(_machine, _machine, _machine, st.sampled_from(LOCK_SCOPES)))
    group, job, machine, scope = first
    text = f"{original_rule(group)}/{original_rule(job)}" + (f"@{machine}" if scope == "machine" else "")
    cut = draw(st.sampled_from([i for i, char in enumerate(text) if char == "/"]))
    at = draw(st.sampled_from([None] + [i for i, char in enumerate(text) if char == "@" and i > cut]))
    if at is None:
        return first, (text[:cut], text[cut + 1:], draw(_machine), "job")
    return first, (text[:cut], text[cut + 1:at], text[at + 1:], "machine")


def declared(identity):
    """The identity as declared (names normalised), or None when its names are refused."""
    group, job, machine, scope = identity
    try:
        return normalize_name(group), normalize_name(job), check_machine(machine), scope
    except InvalidNameError:
        return None


def lock_of(identity) -> str:
    """The lock key a run of the declared *identity* takes."""
    group, job, machine, scope = identity
    return lock_name_of(SimpleNamespace(group=group, job=job, machine=machine, options=JobOptions(lock=scope)))


def same_lock(identity) -> tuple:
    """What makes two runs one lock: the machine only for a per-machine lock."""
    group, job, machine, scope = identity
    return group, job, scope, machine if scope == "machine" else None


# Respelled pairs hold '/' or '@' in a name, or are one identity, wherever the
# old lock names would have collided: most are refused now, as they should be.
@settings(max_examples=200, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.one_of(st.tuples(identities, identities), st.tuples(identities, identities), respelled()))
def test_distinct_group_job_machine_and_scope_never_share_a_lock(pair):
    first, second = map(declared, pair)
    assume(first is not None and second is not None and same_lock(first) != same_lock(second))
    one, other = lock_of(first), lock_of(second)
    # MariaDB compares text without its trailing spaces: the keys must differ there too.
    assert one.rstrip(" ") != other.rstrip(" "), f"{same_lock(first)} and {same_lock(second)} share a lock"


@settings(max_examples=300)
@given(identities)
def test_every_lock_key_fits_the_lock_table(identity):
    identity = declared(identity)
    assume(identity is not None)
    assert len(lock_of(identity)) <= 255


@given(identities)
def test_a_declared_job_is_addressed_by_group_slash_job_on_the_command_line(identity):
    identity = declared(identity)
    assume(identity is not None)
    group, job = identity[:2]
    assert f"{group}/{job}".partition("/") == (group, "/", job), "GROUP/JOB splits at its only '/'"
    assert (normalize_name(group), normalize_name(job)) == (group, job), "and names the same job again"


_KEYS_ELSEWHERE = """
import json, sys
from types import SimpleNamespace
from processcache.options import JobOptions
from processcache.run.session import lock_name_of
print(json.dumps([lock_name_of(SimpleNamespace(group=g, job=j, machine=m, options=JobOptions(lock=s)))
                  for g, j, m, s in json.load(sys.stdin)]))
"""


@settings(max_examples=8)
@given(st.lists(identities, min_size=1, max_size=20), st.integers(1, 2**31))
def test_a_lock_key_is_the_same_in_every_process(drawn, seed):
    declared_ids = [identity for identity in map(declared, drawn) if identity is not None]
    assume(declared_ids)
    here = [lock_of(identity) for identity in declared_ids]
    elsewhere = subprocess.run([sys.executable, "-c", _KEYS_ELSEWHERE], input=json.dumps(declared_ids),
                               capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": str(seed)},
                               timeout=60, check=True)
    assert json.loads(elsewhere.stdout) == here
