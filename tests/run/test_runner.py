"""Running jobs: hooks, async functions, recorded runs and failures."""

import os
import socket

import pytest

import processcache
from processcache import LogType, Registry, RegistryError, cache_session, current_context


def make_job(registry=None, name="job"):
    registry = registry or Registry()
    calls = []

    @registry.job("Runner Tests", name)
    def spec(ctx):
        calls.append(("run", dict(ctx.tree)))
        ctx.create_cache("seen", len(calls))

    @spec.on_cache_empty
    def empty(ctx):
        calls.append(("empty", None))

    @spec.on_cache_exist
    def exist(ctx):
        calls.append(("exist", [e.value for e in ctx.tree["seen"]]))

    return spec, calls


def test_the_empty_hook_runs_first_and_the_exist_hook_afterwards(backend):
    spec, calls = make_job()
    first = spec.run(database=backend, machine="m")
    second = spec.run(database=backend, machine="m")
    assert [c[0] for c in calls] == ["empty", "run", "exist", "run"]
    assert calls[2] == ("exist", [2]), "the first run stored len(calls) == 2"
    assert first.status == second.status == "succeeded"
    assert second.id != first.id


def test_a_run_is_recorded_with_machine_pid_times_and_duration(backend):
    spec, _ = make_job()
    run = spec.run(database=backend, machine="box")
    assert (run.group, run.job, run.machine, run.pid) == ("runner-tests", "job", "box", os.getpid())
    assert run.finished_at >= run.started_at
    assert run.duration == pytest.approx((run.finished_at - run.started_at).total_seconds())
    rows = _runs(backend)
    assert rows == [(run.id, "box", os.getpid(), "succeeded", None)]


def _runs(backend):
    return [tuple(r) for r in backend.backend.select(
        "SELECT id, machine, pid, status, error FROM process_job_runs ORDER BY id", {})]


def test_a_failing_job_is_recorded_with_its_traceback_and_keeps_earlier_writes(backend):
    registry = Registry()

    @registry.job("g", "fails")
    def fails(ctx):
        ctx.create_cache("partial", 1)
        ctx.create_log("before the failure")
        raise RuntimeError("the API said no")

    run = fails.run(database=backend, machine="m")
    assert run.status == "failed"
    assert run.error == "RuntimeError: the API said no"
    assert "Traceback" in run.traceback and 'raise RuntimeError("the API said no")' in run.traceback
    assert _runs(backend)[0][3:] == ("failed", "RuntimeError: the API said no")
    with cache_session("g", "fails", machine="m", database=backend) as ctx:
        assert [e.value for e in ctx.tree["partial"]] == [1]
        logs = ctx.get_logs()
        assert [log.message for log in logs[:1]] == ["before the failure"]
        assert logs[1].type == LogType.ERROR and "the API said no" in logs[1].message


def test_an_async_job_and_async_hooks_are_awaited(backend):
    registry = Registry()
    seen = []

    @registry.job("g", "async")
    async def job(ctx):
        ctx.create_cache("k", "async value")

    @job.on_cache_empty
    async def empty(ctx):
        seen.append("empty")

    assert job.run(database=backend, machine="m").ok
    with cache_session("g", "async", machine="m", database=backend) as ctx:
        assert [e.value for e in ctx.tree["k"]] == ["async value"]
    assert seen == ["empty"]


def test_calling_a_spec_calls_the_plain_function():
    spec, calls = make_job()

    class FakeContext:
        tree = {}

        def create_cache(self, key, value):
            calls.append(("cache", key, value))

    spec(FakeContext())
    assert calls == [("run", {}), ("cache", "seen", 1)]
    assert spec.__name__ == "spec"


def test_a_module_may_define_several_jobs_and_names_are_normalised():
    registry = Registry()
    a, _ = make_job(registry, "First Job")
    b, _ = make_job(registry, "second.job")
    assert set(registry.jobs) == {("runner-tests", "first-job"), ("runner-tests", "second-job")}
    assert (a.name, b.name) == ("first-job", "second-job")


def test_the_same_job_declared_by_two_functions_is_an_error():
    registry = Registry()

    @registry.job("g", "dup")
    def one(ctx):
        pass

    with pytest.raises(RegistryError, match="declared twice"):
        @registry.job("G", "Dup")
        def two(ctx):
            pass


def test_forgetting_the_names_is_a_clear_error():
    with pytest.raises(RegistryError, match='@job\\("group", "name"\\)'):
        @processcache.job
        def oops(ctx):
            pass


def test_cache_session_records_a_run_around_the_block(backend):
    with cache_session("g", "script", machine="m", database=backend) as ctx:
        assert ctx.run.status == "running"
        assert current_context() is ctx
        ctx.create_cache("token", "abc")
    assert ctx.run.status == "succeeded"
    with pytest.raises(processcache.ProcessCacheError, match="no processcache job is running"):
        current_context()


def test_cache_session_records_a_failure_and_reraises(backend):
    with pytest.raises(KeyError):
        with cache_session("g", "script", machine="m", database=backend) as ctx:
            ctx.create_cache("kept", True)
            raise KeyError("boom")
    assert ctx.run.status == "failed"
    with cache_session("g", "script", machine="m", database=backend) as again:
        assert again.has_cache_key("kept")


def test_cache_session_accepts_a_url(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    with cache_session("g", "j", database=url) as ctx:
        ctx.create_cache("k", 1)
    with cache_session("g", "j", database=url) as ctx:
        assert ctx.has_cache_key("k")
        assert ctx.machine == socket.gethostname()
