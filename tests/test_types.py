"""What a user's type checker reads of the public API (``py.typed`` ships it): the decorated function's own
types through ``@job`` and ``@memoize``, the memo helpers, and the `RunRecord` that ``spec.run()`` returns."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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


def test_a_strict_type_checker_reads_jobs_and_memoised_functions_as_the_functions_they_decorate(tmp_path):
    (tmp_path / "user.py").write_text(USER_CODE)
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                           "user.py"], cwd=tmp_path, env={"MYPYPATH": str(ROOT), "PATH": ""},
                          capture_output=True, text=True)
    # processcache is found through MYPYPATH, as source: only what mypy says of user.py is the user's view.
    said = [line for line in done.stdout.splitlines() if line.startswith("user.py:")]
    assert [line for line in said if ": error:" in line] == [], done.stdout
    assert re.findall(r'Revealed type is "(.*)"', "\n".join(said)) == [
        "float", "int", "str", "int", "datetime.datetime | None", "def (ctx: processcache.context.CacheContext)",
        "int", "processcache.memo.Memoised[[n: int], typing.Coroutine[Any, Any, int]]"]
