"""The original process-cache hello-world, a short port (examples/original_readme.py is the line-by-line one).

Run it twice and watch the second run find what the first one stored:

    python -m processcache run examples/hello.py:hello
"""

from processcache import LogType, job


@job("example", "hello-world")
def hello(ctx):
    ctx.create_log("Operation running")
    ctx.create_log("This is an example warning log", LogType.WARNING)
    ctx.create_log("This is an example error log", LogType.ERROR)
    if ctx.has_cache():
        ctx.create_cache("foo", "bar")
    else:
        ctx.create_cache("foo", "nope")


@hello.on_cache_empty
def fresh(ctx):
    print("Cache is empty and fresh")
    ctx.create_log("Cache is empty and fresh")


@hello.on_cache_exist
def existing(ctx):
    print("Cache exists; the values under foo, oldest first:")
    for entry in ctx.tree["foo"]:
        print(" ", entry.value)
    print("Entries by id:")
    for entry_id, entry in ctx.results.items():
        print(" ", entry_id, entry.key, entry.value)
