"""What a user's type checker reads of the public API (``py.typed`` ships it): the decorated function's own
types through ``@job`` and ``@memoize``, the memo helpers, and the `RunRecord` that ``spec.run()`` returns."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from paths import ROOT

import processcache

USER_CODE = '''
from processcache import CacheContext, cache_session, job, memoize


@memoize("rates", ttl="6h")
def rate(currency: str) -> float:
    return 1.08


@job("example", "typed")
def nightly(ctx: CacheContext) -> int:
    return 1


@nightly.on_cache_empty
def seed(ctx: CacheContext) -> None:
    pass


reveal_type(rate("EUR"))
reveal_type(rate.forget("EUR"))
reveal_type(rate.memo_key("EUR"))
reveal_type(rate.cache_clear())
reveal_type(nightly.run(machine="m").finished_at)
reveal_type(seed)
with cache_session("example", "typed") as ctx:
    reveal_type(nightly(ctx))

    @ctx.memoize(ttl="1h")
    async def square(n: int) -> int:
        return n * n

    reveal_type(square)
'''


def _strict_mypy(tmp_path: Path, code: str) -> list[str]:
    """What ``mypy --strict`` says of *code*, a user's file: processcache is found through MYPYPATH, as source,
    so only what it says of user.py is the user's view."""
    (tmp_path / "user.py").write_text(code)
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                           "user.py"], cwd=tmp_path, env={"MYPYPATH": str(ROOT), "PATH": ""},
                          capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.startswith("user.py:")]


def test_a_strict_type_checker_reads_jobs_and_memoised_functions_as_the_functions_they_decorate(tmp_path):
    said = _strict_mypy(tmp_path, USER_CODE)
    assert [line for line in said if ": error:" in line] == [], said
    assert re.findall(r'Revealed type is "(.*)"', "\n".join(said)) == [
        "float", "int", "str", "int", "datetime.datetime | None", "def (ctx: processcache.cache.context.CacheContext)",
        "int", "processcache.cache.memo.Memoised[[n: int], typing.Coroutine[Any, Any, int]]"]



SESSION_CODE = '''
from processcache import RUN_STATUSES, RunStatus, cache_session, job


@job("example", "typed")
def nightly(ctx: object) -> None:
    pass


with cache_session("example", "typed") as ctx:
    pass
reveal_type(ctx.record)
reveal_type(ctx.record.status)
reveal_type(ctx.record.finished_at)
ended: RunStatus = ctx.record.status
print(ctx.record.status == "failed", nightly.run().status == "skipped", ended in RUN_STATUSES)
print(ctx.record.status == "succeded")
print(nightly.run().status == "sucess")
'''


def test_a_session_s_record_is_not_optional_after_the_block_and_its_status_is_one_of_seven(tmp_path):
    """``ctx.run`` is Optional (three strict errors on ``ctx.run.status`` after the block); ``ctx.record`` is not,
    and a status is a Literal of the seven (a plain str at run time): a misspelt status is an error."""
    said = _strict_mypy(tmp_path, SESSION_CODE)
    record, status, finished = re.findall(r'Revealed type is "(.*)"', "\n".join(said))
    assert record.endswith("fallback=processcache.records.RunRecord]") and finished == "datetime.datetime | None"
    assert status == " | ".join(f"Literal['{name}']" for name in processcache.RUN_STATUSES)
    errors = [line for line in said if ": error: " in line]
    assert len(errors) == 2 and all("Non-overlapping equality check" in line for line in errors), said
    assert "Literal['succeded']" in errors[0] and "Literal['sucess']" in errors[1]


def test_a_status_is_the_plain_string_it_always_was():
    with processcache.cache_session("example", "typed", database="sqlite://:memory:") as ctx:
        with pytest.raises(processcache.ProcessCacheError, match="has not ended: ctx.record is its final record"):
            ctx.record  # noqa: B018
    assert ctx.record is ctx.run and type(ctx.record.status) is str and ctx.record.status == "succeeded"
    assert json.dumps(ctx.record._asdict()["status"]) == '"succeeded"'
    assert processcache.RUN_STATUSES == ("running", "succeeded", "failed", "timed-out", "skipped", "lost",
                                         "terminated")
