"""Any sequence of cache writes agrees with a plain in-memory model, and with a fresh load.

Values come back equal, or are refused before anything is written.
"""

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from processcache import CacheContext, InvalidValueError
from processcache.cache.codec import decode_value, encode_value

KEYS = st.sampled_from(["a", "b", "B", "b ", "ключ", "😀"])
VALUES = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=6), st.lists(st.booleans(), max_size=2))
_jobs = itertools.count()

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4)
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=8)
#: The keys JSON's encoder would turn into str ones (the first four) or cannot encode (a tuple).
NON_STR_KEYS = (st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
                | st.tuples(st.integers(), st.text(max_size=2)))


@st.composite
def holding_a_non_str_key(draw):
    """(key, value): a JSON value with one dict, at any depth, holding *key* among str keys."""
    key = draw(NON_STR_KEYS)
    value = {**draw(st.dictionaries(st.text(max_size=3), JSON, max_size=2)), key: draw(JSON)}
    for _ in range(draw(st.integers(0, 4))):
        siblings = draw(st.lists(JSON, max_size=2))
        kind = draw(st.sampled_from(["list", "tuple", "dict"]))
        if kind == "dict":
            value = {**dict(zip(draw(st.lists(st.text(max_size=3), min_size=2, max_size=2)), siblings)),
                     draw(st.text(max_size=3)): value}
        else:
            position = draw(st.integers(0, len(siblings)))
            value = (list if kind == "list" else tuple)(siblings[:position] + [value] + siblings[position:])
    return key, value


def shape(tree):
    return {key: [entry.value for entry in entries] for key, entries in tree.items() if entries}


class CacheModel(RuleBasedStateMachine):
    """The model: {key: [values, oldest first]}, for one job on one machine."""

    database = None

    @initialize()
    def fresh_job(self):
        self.ctx = CacheContext(self.database, "model", f"job-{next(_jobs)}", "m")
        self.model: dict[str, list] = {}

    @rule(key=KEYS, value=VALUES)
    def create(self, key, value):
        self.ctx.create_cache(key, value)
        self.model.setdefault(key, []).append(value)

    @rule(items=st.lists(st.tuples(KEYS, VALUES), max_size=5))
    def create_many(self, items):
        self.ctx.create_cache_many(items)
        for key, value in items:
            self.model.setdefault(key, []).append(value)

    @rule(key=KEYS, value=VALUES)
    def replace(self, key, value):
        self.ctx.set_cache(key, value)
        self.model[key] = [value]

    @rule(key=KEYS)
    def delete(self, key):
        assert self.ctx.delete_cache(key) == len(self.model.pop(key, []))

    @rule()
    def clear(self):
        assert self.ctx.clear_cache() == sum(map(len, self.model.values()))
        self.model = {}

    @rule(key=KEYS, refused=holding_a_non_str_key())
    def write_a_value_that_would_not_come_back_equal(self, key, refused):
        for write in [lambda: self.ctx.create_cache(key, refused[1]), lambda: self.ctx.set_cache(key, refused[1]),
                      lambda: self.ctx.create_cache_many([(key, "fine"), (key, refused[1])])]:
            with pytest.raises(InvalidValueError, match="whose dict keys are str"):
                write()  # the invariants check that nothing was written

    @rule(key=KEYS)
    def read(self, key):
        assert [e.value for e in self.ctx.get_cache(key)] == self.model.get(key, [])
        assert self.ctx.has_cache_key(key) == bool(self.model.get(key))
        expected_latest = self.model[key][-1] if self.model.get(key) else "none"
        assert self.ctx.latest(key, "none") == expected_latest

    @invariant()
    def tree_and_results_match_the_model(self):
        if not hasattr(self, "ctx"):
            return
        assert shape(self.ctx.tree) == self.model
        assert sorted(self.ctx.results) == sorted(e.id for entries in self.ctx.tree.values() for e in entries)

    def teardown(self):
        if hasattr(self, "ctx"):
            assert shape(self.ctx.get_full_cache()) == self.model
            assert shape(self.ctx.sync_cache()) == self.model, "a fresh load agrees"


def test_cache_writes_agree_with_the_model(backend):
    CacheModel.database = backend
    run_state_machine_as_test(CacheModel, settings=settings(max_examples=15, stateful_step_count=15, deadline=None))


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_a_json_value_with_str_keys_comes_back_equal(value):
    assert decode_value(encode_value(value)) == value


@settings(max_examples=200, deadline=None)
@given(holding_a_non_str_key())
def test_a_dict_key_that_is_not_a_str_is_refused_at_any_depth_in_one_line_naming_it(refused):
    key, value = refused
    with pytest.raises(InvalidValueError) as error:
        encode_value(value)
    message = str(error.value)
    assert f"the key {repr(key)[:80]} is of type {type(key).__name__};" in message and "\n" not in message


@pytest.mark.parametrize("value, key", [({1: "a"}, "1"), ({None: 1}, "None"), ({(1, 2): 3}, "(1, 2)"),
                                        ([{"a": {1.5: 0}}], "1.5"), ({"a": 1, True: 2}, "True")])
def test_the_issues_examples_are_refused_with_what_to_do(value, key):
    with pytest.raises(InvalidValueError, match=rf"the key {re.escape(key)} is of type \w+; convert it with str\(\)"):
        encode_value(value)
