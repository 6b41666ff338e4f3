"""Any sequence of cache writes agrees with a plain in-memory model, and with a fresh load."""

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from processcache import CacheContext

KEYS = st.sampled_from(["a", "b", "B", "b ", "ключ", "😀"])
VALUES = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=6), st.lists(st.booleans(), max_size=2))
_jobs = itertools.count()


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
