"""The public API: everything a user imports or catches comes from `processcache`."""

import subprocess
import sys

import processcache
from processcache import ProcessCacheError


def _subclasses(cls: type) -> set[type]:
    return {cls} | {sub for direct in cls.__subclasses__() for sub in _subclasses(direct)}


def test_every_error_a_user_can_catch_is_exported():
    errors = {cls.__name__ for cls in _subclasses(ProcessCacheError) if cls.__module__.startswith("processcache")}
    assert errors - set(processcache.__all__) == set()


def test_every_error_a_user_can_catch_lives_in_errors_and_needs_no_other_import():
    """JobLockedError and MemoTimeoutError too: catching one must not need `processcache.cache.memo` imported first."""
    script = ("import sys, processcache, processcache.errors as errors\n"
              "caught = [processcache.JobLockedError, processcache.MemoTimeoutError]\n"
              "assert all(getattr(errors, cls.__name__) is cls for cls in caught), caught\n"
              "assert 'processcache.cache.memo' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {cls.__module__ for cls in _subclasses(ProcessCacheError) if cls.__module__.startswith("processcache")} \
        == {"processcache.errors"}


def test_every_exported_name_resolves():
    assert [name for name in processcache.__all__ if not hasattr(processcache, name)] == []


def test_help_shows_a_readable_default_for_the_scope_of_reads():
    import inspect
    import pydoc

    from processcache import CacheContext

    assert repr(inspect.signature(CacheContext.get_cache).parameters["machine"].default) == "JOB_SCOPE"
    assert "object at 0x" not in pydoc.render_doc(CacheContext, renderer=pydoc.plaintext)


def test_a_context_shows_the_users_api_and_nothing_of_the_run_machinery():
    shown = {name for name in dir(processcache.CacheContext) if not name.startswith("_")}
    assert shown == {"batch", "clear_cache", "create_cache", "create_cache_many", "create_log", "delete_cache",
                     "get_cache", "get_full_cache", "get_logs", "get_or_compute", "has_cache", "has_cache_key",
                     "last_success", "latest", "logger", "memoize", "record", "results", "scope_machine", "set_cache",
                     "slot", "sync_cache", "tree"}
    with processcache.cache_session("api", "shown", database="sqlite://:memory:") as ctx:
        attributes = {name for name in vars(ctx) if not name.startswith("_")}
    assert attributes == {"database", "group", "job", "machine", "options", "run", "result", "job_id", "fence"}
