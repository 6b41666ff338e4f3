"""Workers for the spool tests, run as their own processes: ``python spool_workers.py NAME URL ARGS...``."""

import sys

from processcache import cache_session


def spool_runs(url: str, count: str, logs: str) -> None:
    """*count* runs of spool/bulk while *url* is down, each with *logs* logs and a cache write; print done."""
    for number in range(int(count)):
        with cache_session("spool", "bulk", "bulk-box", url, if_database_down="run", down_wait=0,
                           output_tail=0) as ctx:
            for line in range(int(logs)):
                ctx.create_log(f"run {number} line {line}")
            ctx.create_cache("n", number)
    print("done", flush=True)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
