"""``python -m benchmarks.report --databases sqlite,postgresql,mysql``

The farm report (issue 16) over 200 jobs of 1,000 runs each (the ledger of
`benchmarks.scaling`: hourly runs on one to three machines, with logs,
failures, running jobs, locks and cache entries), on each database:

- the page as the library makes it (``gather`` and ``overview_page``), and
  ``processcache report --html`` as a person runs it (less the CLI's own
  start-up), with the file's size;
- against two baselines on the raw driver, each reading the rows the page
  shows (each job and machine's newest 30 runs, with their names) and
  writing one escaped table row per run, no summary, no ``check``, no
  charts: *window*, the one statement a person would write (a window over
  the runs), and *indexed*, the leanest: the job and machine pairs by a
  GROUP BY the servers answer from an index, then the newest 30 runs of
  each pair by a statement that reads only those. The ratio is what the
  whole page costs beyond reading its runs.
"""

import argparse
import html
import os
import statistics
import subprocess
import sys
import tempfile

import processcache
from processcache.web.gather import RECENT_RUNS, gather
from processcache.web.pages import overview_page

from . import baseline
from .__main__ import Scratch, timed
from .scaling import Shape, ledger_database

#: The page's runs by hand: each job and machine's newest runs, named.
WINDOW_QUERY = (
    "SELECT p.name, j.name, w.machine, w.id, w.status, w.started_at, w.duration, w.error FROM (SELECT r.id,"
    " r.job_id, r.machine, r.status, r.started_at, r.duration, r.error, ROW_NUMBER() OVER (PARTITION BY r.job_id,"
    f" r.machine ORDER BY r.id DESC) AS n FROM process_job_runs r) w JOIN process_jobs j ON j.id = w.job_id"
    f" JOIN processes p ON p.id = j.process_id WHERE w.n <= {RECENT_RUNS}"
    " ORDER BY p.name, j.name, w.machine, w.id DESC")


NAMES_QUERY = "SELECT j.id, p.name, j.name FROM process_jobs j JOIN processes p ON p.id = j.process_id"
PAIRS_QUERY = "SELECT job_id, machine FROM process_job_runs GROUP BY job_id, machine"
PAIR_QUERY = ("SELECT machine, id, status, started_at, duration, error FROM process_job_runs WHERE job_id = ?"
              f" AND machine = ? ORDER BY id DESC LIMIT {RECENT_RUNS}")


def window_page(raw: baseline.Raw) -> str:
    cursor = raw.conn.cursor()
    cursor.execute(WINDOW_QUERY)
    return table(cursor.fetchall())


def indexed_page(raw: baseline.Raw) -> str:
    cursor = raw.conn.cursor()
    cursor.execute(NAMES_QUERY)
    names = {job_id: (group, job) for job_id, group, job in cursor.fetchall()}
    cursor.execute(PAIRS_QUERY)
    rows = []
    for job_id, machine in sorted(cursor.fetchall(), key=lambda pair: (names[pair[0]], pair[1])):
        cursor.execute(raw.sql(PAIR_QUERY), (job_id, machine))
        rows += [(*names[job_id], *row) for row in cursor.fetchall()]
    return table(rows)


def table(runs: list) -> str:
    rows = "".join(f"<tr><td>{html.escape(group)}/{html.escape(job)}</td><td>{html.escape(machine)}</td>"
                   f"<td>{run_id}</td><td>{status}</td><td>{started}</td><td>{duration}</td>"
                   f"<td>{html.escape(error or '')}</td></tr>"
                   for group, job, machine, run_id, status, started, duration, error in runs)
    return f"<table>{rows}</table>"


def cli_seconds(url: str, path: str, repeat: int) -> tuple[float, float]:
    """``report --html`` as a person runs it, and ``processcache --version`` (the interpreter and the CLI)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}

    def run(*words: str) -> float:
        return timed(lambda: subprocess.run([sys.executable, "-m", "processcache", *words], env=env, check=True,
                                            capture_output=True))

    run("--version")  # the warm-up writes the bytecode cache
    return (statistics.median(run("report", "--html", path, "-d", url) for _ in range(repeat)),
            statistics.median(run("--version") for _ in range(repeat)))


def measure(kind: str, shape: Shape, repeat: int, folder: str) -> None:
    scratch = Scratch(kind, folder)
    try:
        facts = ledger_database(kind, scratch.url, shape, folder)
        counts = facts["counts"]
        raw = baseline.Raw(scratch.url)
        ours, window, indexed = [], [], []
        with processcache.connect(scratch.url, read_only=True) as db:
            for _ in range(repeat + 1):  # interleaved; the first round warms all up and is not counted
                ours.append(timed(lambda: overview_page(gather(db))))
                window.append(timed(window_page, raw))
                indexed.append(timed(indexed_page, raw))
        raw.close()
        path = os.path.join(folder, f"{kind}.html")
        cli, start_up = cli_seconds(scratch.url, path, repeat)
        page = statistics.median(ours[1:])
        print(f"{kind}: {counts['process_jobs']:,} jobs, {counts['process_job_runs']:,} runs,"
              f" {counts['process_job_logs']:,} logs; medians of {repeat}")
        print(f"  the page (gather + overview_page)   {page:7.3f} s")
        for name, samples in (("window", window), ("indexed", indexed)):
            plain = statistics.median(samples[1:])
            print(f"  baseline: {name:<25} {plain:7.3f} s   ratio {page / plain:.2f}x")
        print(f"  processcache report --html          {cli:7.3f} s   (wall time; --version takes {start_up:.3f} s);"
              f" the file {os.path.getsize(path) / 1e6:.2f} MB", flush=True)
    finally:
        scratch.drop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql,mysql")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200_000, help="in all, spread over the jobs")
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for kind in filter(None, args.databases.split(",")):
            measure(kind, Shape(args.runs, args.logs, args.jobs), args.repeat, folder)


if __name__ == "__main__":
    main()
