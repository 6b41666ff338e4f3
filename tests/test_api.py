"""The public API: everything a user imports or catches comes from `processcache`."""

import processcache
import processcache.memo  # noqa: F401  (defines MemoTimeoutError; imported lazily by processcache)
from processcache import ProcessCacheError


def _subclasses(cls: type) -> set[type]:
    return {cls} | {sub for direct in cls.__subclasses__() for sub in _subclasses(direct)}


def test_every_error_a_user_can_catch_is_exported():
    errors = {cls.__name__ for cls in _subclasses(ProcessCacheError) if cls.__module__.startswith("processcache")}
    assert errors - set(processcache.__all__) == set()


def test_every_exported_name_resolves():
    assert [name for name in processcache.__all__ if not hasattr(processcache, name)] == []
