"""``python -m benchmarks.slow_clients [--clients 50] [--requests 20] [--tree PATH]``

The dashboard's latency while slow clients hold connections (issue 26):
a real ``processcache serve`` on SQLite over 20 jobs, *clients* sockets
each sending a request one header line a second and never finishing it,
and meanwhile *requests* ``GET /`` one after another. Prints the p50 and
the largest time to the whole answer, and how many got none within
``--timeout`` seconds. ``--tree`` runs the server from another checkout
(``git worktree add /tmp/old HEAD`` for the code before a change).
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import processcache

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: ``python -m processcache`` from the checkout in argv[1], whatever an editable install's finder says.
LAUNCH = ("import runpy, sys\n"
          "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable')]\n"
          "sys.path.insert(0, sys.argv.pop(1))\n"
          "runpy.run_module('processcache', run_name='__main__', alter_sys=True)\n")


def seed(url: str, jobs: int) -> None:
    registry = processcache.Registry()
    for n in range(jobs):
        registry.job("bench", f"job-{n}")(lambda ctx: ctx.create_log("done")).run(database=url, machine="web1")


def trickle(address: tuple[str, int], stop: threading.Event) -> None:
    """A client that sends a header line a second and never ends its request, reconnecting when cut off."""
    while not stop.is_set():
        try:
            with socket.create_connection(address, timeout=5) as client:
                client.sendall(f"GET / HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n".encode())
                n = 0
                while not stop.wait(1.0):
                    client.sendall(f"X-Slow-{n}: still here\r\n".encode())
                    n += 1
        except OSError:
            stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--tree", default=HERE, help="the checkout whose processcache serves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/farm.db"
        seed(url, 20)
        environ = {name: value for name, value in os.environ.items() if name != "PROCESSCACHE_DATABASE_URL"}
        with subprocess.Popen([sys.executable, "-c", LAUNCH, os.path.abspath(args.tree), "serve", "--bind",
                               "127.0.0.1:0", "-d", url],
                              stderr=subprocess.PIPE, text=True, env=environ, cwd=folder) as server:
            found = re.search(r"serving http://([\d.]+):(\d+)/", server.stderr.readline())
            assert found, "the server said no address"
            address = (found[1], int(found[2]))
            stop = threading.Event()
            slow = [threading.Thread(target=trickle, args=(address, stop), daemon=True) for _ in range(args.clients)]
            for thread in slow:
                thread.start()
            time.sleep(2.0)  # every slow client connected and sending
            times, missed = [], 0
            for _ in range(args.requests):
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/", timeout=args.timeout) as page:
                        page.read()
                    times.append(time.perf_counter() - started)
                except (OSError, urllib.error.URLError):
                    missed += 1
            stop.set()
            server.terminate()
            server.wait(timeout=60)
    shown = (f"p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms" if times
             else "no answer")
    print(f"GET / with {args.clients} slow clients: {shown}; {missed} of {args.requests} got no answer"
          f" within {args.timeout:.0f} s")


if __name__ == "__main__":
    main()
