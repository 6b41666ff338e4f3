"""Jobs the signal tests stop with SIGTERM and SIGINT."""

import time

from processcache import job


@job("signals", "sleeper")
def sleeper(ctx):
    ctx.create_cache("before", "kept")
    print("started", flush=True)
    time.sleep(60)


@job("signals", "stubborn")
def stubborn(ctx):
    try:
        print("started", flush=True)
        time.sleep(60)
    except BaseException:
        print("ignoring the first signal", flush=True)
        time.sleep(60)
