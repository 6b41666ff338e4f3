"""Jobs the CLI tests run in real processes (`python -m processcache run`)."""

import os

from processcache import ANY, LogType, job


@job("cli", "parity", scope="machine")
def parity(ctx):
    """Every method of the original's API, through the CLI, scoped per machine as the original was."""
    runs = len(ctx.get_cache("run")) + 1
    ctx.create_cache("run", runs)
    ctx.create_cache("machine", ctx.machine)
    ctx.create_log(f"run {runs}")
    ctx.create_log(f"warn {runs}", LogType.WARNING)
    print("has_cache", ctx.has_cache(), "has_key", ctx.has_cache_key("run"), "missing", ctx.has_cache_key("x"))
    print("get_cache", [e.value for e in ctx.get_cache("run")])
    print("full", sorted(ctx.get_full_cache()), "all machines", len(ctx.get_full_cache(machine=ANY)["run"]))
    print("tree", {k: [e.value for e in v] for k, v in ctx.sync_cache().items()}, "results", len(ctx.results))
    print("logs", [log.message for log in ctx.get_logs(offset=1, limit=2)],
          "warnings", [log.message for log in ctx.get_logs(type=LogType.WARNING, machine=ANY)])


@job("cli", "fails")
def fails(ctx):
    ctx.create_cache("before", "kept")
    raise ValueError("the upstream API answered 500")


@job("cli", "bad-value")
def bad_value(ctx):
    ctx.create_cache("k", {1, 2})


@job("cli", "env")
def env(ctx):
    print("pid", os.getpid())
