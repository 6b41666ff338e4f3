"""The original process-cache README's example (its index.ts), ported line by line.

It prints what the original prints, stores the same cache entries and logs,
per machine as the original kept them, and loads the cache before the job
runs as ``job.load()`` did. Run it twice and the second run finds the first
one's value:

    python examples/original_readme.py [DATABASE_URL]

(without a URL: ``PROCESSCACHE_DATABASE_URL``, else processcache's SQLite
file). Its job is example/readme-hello-world, apart from examples/hello.py's
shorter port. The README's sync.ts has no line to port: processcache creates
its tables on first use (``processcache db sync`` does it ahead).
"""

import sys

import processcache
from processcache import CacheContext, LogRecord, LogType, cache_session


def console(log: LogRecord) -> None:
    """The README's ``createLog`` override: every log goes to the console too, as console.log, .warn or .error."""
    print(log.message, file=sys.stdout if log.type is LogType.GENERIC else sys.stderr)


# class HelloWorldJob extends Job: its hooks and its run(), each taking the job's context.


def on_cache_empty(ctx: CacheContext) -> None:
    """This is only called when there are no cache values present."""
    ctx.create_log("Cache is empty and fresh")


def on_cache_exist(ctx: CacheContext) -> None:
    """This is only called when some kind of cache value is present."""
    ctx.create_log("Cache does exist")

    # ctx.tree is the most direct way: ctx.tree[key] is a list of entries
    for entry in ctx.tree["foo"]:
        print(entry.value)

    # there is also ctx.results: {entry id: entry}
    for cache in ctx.results.values():
        print(cache.value)

    # ctx.sync_cache() rebuilds the tree and the results


def run(ctx: CacheContext) -> None:
    ctx.create_log("Operation running")

    ctx.create_log("This is an example warning log", LogType.WARNING)
    ctx.create_log("This is what an error looks like", LogType.ERROR)

    has_cache = ctx.has_cache()
    if has_cache:
        ctx.create_cache("foo", "bar")
        ctx.create_log('Created value "bar" at key "foo" in cache')
    else:
        ctx.create_cache("foo", "nope")
        ctx.create_log('Created value "nope" at key "foo" in cache')


def main(url: str | None = None) -> None:
    """Run our job and then simply dispose of our connection."""
    print("Database details")

    # creates a database connection to our process cache
    database = processcache.connect(url)

    print("Constructing hello world")
    hello_world_job = cache_session("example", "readme-hello-world", machine="desktop-main", database=database,
                                    scope="machine", load_cache="eager", echo=console)

    print("Loading hello world job")
    with hello_world_job as ctx:  # job.load(): the group and job made if new, the cache read, then its hook
        if ctx.has_cache():
            on_cache_exist(ctx)
        else:
            on_cache_empty(ctx)

        print("Running job")
        run(ctx)

    # close out the database connection before we exit
    print("Closing database connection")
    database.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
