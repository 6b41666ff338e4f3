"""Logs: three types, per job, per machine and per group, with offset, limit and type."""

import sys

import pytest

import processcache
from processcache import ANY, LogType, cache_session


def messages(records):
    return [record.message for record in records]


def test_create_log_stores_each_type_oldest_first(ctx):
    ctx.create_log("plain")
    ctx.create_log("careful", LogType.WARNING)
    ctx.create_log("broken", "error")
    logs = ctx.get_logs()
    assert messages(logs) == ["plain", "careful", "broken"]
    assert [log.type for log in logs] == [LogType.GENERIC, LogType.WARNING, LogType.ERROR]
    assert all(log.run_id == ctx.run.id and log.job == ctx.job for log in logs)


def test_get_logs_pages_with_offset_and_limit(ctx):
    for n in range(10):
        ctx.create_log(f"m{n}")
    assert messages(ctx.get_logs(limit=3)) == ["m0", "m1", "m2"]
    assert messages(ctx.get_logs(offset=8)) == ["m8", "m9"]
    assert messages(ctx.get_logs(offset=4, limit=2)) == ["m4", "m5"]
    assert ctx.get_logs(offset=20) == []


def test_get_logs_filters_by_type(ctx):
    ctx.create_log("a")
    ctx.create_log("b", LogType.WARNING)
    ctx.create_log("c", LogType.ERROR)
    ctx.create_log("d", LogType.WARNING)
    assert messages(ctx.get_logs(type=LogType.WARNING)) == ["b", "d"]
    assert messages(ctx.get_logs(type="warning", offset=1)) == ["d"]


def test_an_unknown_log_type_is_refused(ctx):
    with pytest.raises(ValueError, match="unknown log type 'LOUD'"):
        ctx.create_log("x", "LOUD")
    assert ctx.get_logs() == []


def test_logs_in_the_jobs_scope_by_default_and_of_any_machine_on_request(backend):
    with cache_session("g", "j", machine="m1", database=backend) as one:
        one.create_log("from m1")
    with cache_session("g", "j", machine="m2", database=backend, scope="machine") as two:
        two.create_log("from m2")
        assert messages(two.get_logs()) == ["from m2"], "scope='machine': this machine's"
        assert messages(two.get_logs(machine=ANY)) == ["from m1", "from m2"]
        assert messages(two.get_logs(machine="m1")) == ["from m1"]
    with cache_session("g", "j", machine="m3", database=backend) as three:
        assert messages(three.get_logs()) == ["from m1", "from m2"], "scope='job' (the default): every machine's"


def test_logs_across_a_whole_group(backend):
    with cache_session("g", "first", machine="m", database=backend) as first:
        first.create_log("one")
    with cache_session("g", "second", machine="m", database=backend) as second:
        second.create_log("two")
        assert messages(second.get_logs()) == ["two"]
        logs = second.get_logs(whole_group=True)
        assert messages(logs) == ["one", "two"]
        assert [log.job for log in logs] == ["first", "second"]
    with cache_session("other", "first", machine="m", database=backend) as other:
        assert other.get_logs(whole_group=True) == []


def test_messages_keep_white_space_and_unicode(ctx):
    for message in ["  padded  ", "", "line\nbreak", "émoji 😀"]:
        ctx.create_log(message)
    assert messages(ctx.get_logs()) == ["  padded  ", "", "line\nbreak", "émoji 😀"]


def test_negative_paging_is_refused(ctx):
    with pytest.raises(ValueError, match="must not be negative"):
        ctx.get_logs(offset=-1)


def test_a_context_outside_a_run_logs_without_a_run(backend):
    ctx = processcache.CacheContext(backend, "g", "j", "m")
    assert ctx.create_log("x").run_id is None


def test_get_logs_returns_the_jobs_own_logs_and_what_it_printed_only_when_asked(backend):
    """A ported job's get_logs() returns what the original's getJobLogs did: its createLog rows, not its print()s."""
    registry = processcache.Registry()

    @registry.job("port", "printer", scope="machine")
    def printer(ctx):
        print("printed")
        print("warned", file=sys.stderr)
        ctx.create_log("own", LogType.WARNING)
        ctx.create_log("own too")

    for _ in range(2):
        assert printer.run(database=backend, machine="m").ok
    with cache_session("port", "printer", machine="m", database=backend, scope="machine") as ctx:
        assert messages(ctx.get_logs()) == ["own", "own too"] * 2
        assert messages(ctx.get_logs(offset=1, limit=2)) == ["own too", "own"], "left out before the page is cut"
        assert messages(ctx.get_logs(type="GENERIC")) == ["own too"] * 2
        everything = ctx.get_logs(output=True)
        assert [(log.message, log.level) for log in everything] == \
            [("own", None), ("own too", None), ("printed", "STDOUT"), ("warned", "STDERR")] * 2
