"""Machine names are exact on every database: "m" and "m " are two machines, as "Token" and "token" are two keys.

MySQL and MariaDB compare texts that differ only by trailing spaces as equal; these tests fail there without
the exact comparisons of `processcache.storage.texts.same_text`.
"""

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from processcache import ANY, cache_session
from processcache.storage.metrics import read_ledger

#: A host name and the same name with trailing spaces: up to three machines that only the spaces tell apart.
base_names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
paddings = st.lists(st.integers(0, 3), min_size=2, max_size=3, unique=True)


def messages(records):
    return [record.message for record in records]


@settings(max_examples=5)
@given(base=base_names, pads=paddings)
def test_machines_that_differ_by_trailing_spaces_keep_their_own_cache_logs_and_runs(backend, base, pads):
    job, machines = uuid.uuid4().hex, [base + " " * n for n in pads]
    for machine in machines:
        with cache_session("g", job, machine=machine, database=backend, scope="machine") as ctx:
            ctx.create_cache("k", machine)
            ctx.set_cache("only", machine)
            ctx.create_log(f"from {machine!r}")
    for machine in machines:
        with cache_session("g", job, machine=machine, database=backend, scope="machine",
                           load_cache="eager") as ctx:
            assert [e.value for e in ctx.tree["k"]] == [machine]
            assert [e.value for e in ctx.get_cache("k")] == [machine]
            assert [e.value for e in ctx.get_cache("only")] == [machine], "set_cache replaced only its own"
            assert ctx.latest("k") == machine
            assert messages(ctx.get_logs(limit=1)) == [f"from {machine!r}"]
            assert ctx.last_success().machine == machine
            assert [e.machine for e in ctx.get_cache("k", machine=ANY)] == machines
    assert sorted(run.machine for run in backend.list_runs(f"g/{job}", machine=machines[0])) == \
        [machines[0]] * 2


def test_logs_of_a_machine_are_filtered_before_the_page_is_cut(backend):
    for machine, count in (("m", 3), ("m ", 5)):
        with cache_session("g", "j", machine=machine, database=backend) as ctx:
            for n in range(count):
                ctx.create_log(f"{machine!r} {n}")
    with cache_session("g", "j", machine="other", database=backend) as ctx:
        assert messages(ctx.get_logs(machine="m", limit=2)) == ["'m' 0", "'m' 1"]
        assert messages(ctx.get_logs(machine="m", offset=2, limit=2)) == ["'m' 2"]
        assert messages(ctx.get_logs(machine="m ", offset=4)) == ["'m ' 4"]
    assert messages(backend.logs(machine="m", limit=2)) == ["'m' 1", "'m' 2"]
    assert backend.count_logs(machine="m") == 3 and backend.count_logs(machine="m ") == 5


def test_a_lock_per_machine_is_held_apart_for_machines_that_differ_by_trailing_spaces(backend):
    with cache_session("g", "j", machine="m", database=backend, lock="machine", overlap="skip") as one:
        with cache_session("g", "j", machine="m ", database=backend, lock="machine", overlap="skip") as two:
            assert one.run.machine == "m" and two.run.machine == "m "


def test_the_metrics_count_the_entries_of_each_machine_apart(backend):
    for machine, count in (("m", 1), ("m ", 2), ("m  ", 3)):
        with cache_session("g", "j", machine=machine, database=backend) as ctx:
            for n in range(count):
                ctx.create_cache("k", n)
    entries = {state.machine: state.entries for state in read_ledger(backend).machines}
    assert entries == {"m": 1, "m ": 2, "m  ": 3}
