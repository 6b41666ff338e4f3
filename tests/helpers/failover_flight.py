"""Real `processcache` processes writing through a failover, and what a test checks afterwards.

A failover test (tests/system/test_failover.py: promotion by hand;
tests/system/test_patroni.py: Patroni's own) starts `Flight`'s processes, each a
real ``processcache run``, ``exec`` or memoising script on a machine of its own
name, against a multi-host URL. Each notes every write the database
confirmed, and when, in a ledger (`JOBS`), so the test knows what was
committed before the failover and looks for it on the new primary:
``writer`` writes an entry and a log every 50 ms (single writes, each tried
again after a lost connection); ``batches`` writes five entries per
transaction; ``short-lease`` is a writer whose lock lives 3 s without a
heartbeat; ``exec`` runs of ``failover/locked`` hold that job's lock; the
memoising script (`Flight.memo`) computes and stores one new value every
50 ms (``processcache.memoize``). `Cluster` is one PostgreSQL data folder
of a test's own on a port of its own.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from pgbouncer_server import as_postgres

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: How long the writers write: they start before the failover and end after it.
WRITE_SECONDS = 12.0

JOBS = textwrap.dedent('''
    """The failover test's jobs: each notes every write the database confirmed, and when, in its ledger."""
    import json
    import os
    import time

    from processcache import job


    def noted(kind, record, key=None):
        with open(os.environ["FAILOVER_LEDGER"], "a") as ledger:
            ledger.write(json.dumps({"kind": kind, "id": key if record is None else record.id,
                                     "t": time.time()}) + "\\n")


    def steps():
        ends = time.monotonic() + float(os.environ["FAILOVER_SECONDS"])
        step = 0
        while time.monotonic() < ends:
            yield step
            step += 1
            time.sleep(0.05)


    def write_steps(ctx):
        for step in steps():
            noted("entry", ctx.create_cache(f"k{step}", step))
            noted("log", ctx.create_log(f"step {step}"))


    @job("failover", "writer")
    def writer(ctx):
        write_steps(ctx)


    @job("failover", "short-lease", lease=3)
    def short_lease(ctx):
        write_steps(ctx)


    @job("failover", "batches")
    def batches(ctx):
        for step in steps():
            with ctx.batch():
                entries = [ctx.create_cache(f"b{step}-{n}", n) for n in range(5)]
            for entry in entries:
                noted("entry", entry)


    def memoising(url, machine):
        """Outside any job: one new value computed and stored every 50 ms, each noted by its step once returned."""
        from processcache import memoize

        square = memoize("failover", database=url, machine=machine, name=f"square-{machine}")(lambda n: n * n)
        for step in steps():
            assert square(step) == step * step
            noted("memo", None, step)


    if __name__ == "__main__":
        import sys

        memoising(*sys.argv[1:])
''')



@dataclass
class Cluster:
    """One PostgreSQL data folder of the test's, on a port of its own."""

    root: Path
    name: str
    port: int

    @property
    def data(self) -> Path:
        return self.root / self.name

    def tool(self, name: str, *args) -> str:
        done = subprocess.run(as_postgres(PG_BIN / name, *args), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{name} {args}: {done.stdout}{done.stderr}"
        return done.stdout

    def settings(self, **values) -> None:
        """Append settings to postgresql.conf (a later line wins over an earlier one, the primary's copied ones too)."""
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in values.items())

    def start(self) -> None:
        self.tool("pg_ctl", "-D", self.data, "-l", self.root / f"{self.name}.log", "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.tool("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        try:
            cursor = connection.cursor()
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()



def wait_for(condition, seconds: float, what: str):
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds:g}s")



@dataclass
class Started:
    """One `processcache` process of the test's, recorded on the machine *name*."""

    name: str
    process: subprocess.Popen
    folder: Path
    ended: float | None = None

    @property
    def ledger(self) -> list[dict]:
        """The writes the database confirmed to the run, in order."""
        path = self.folder / f"{self.name}.ledger"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def wait(self, seconds: float = 120) -> int:
        code = self.process.wait(timeout=seconds)
        self.ended = self.ended or time.time()
        return code

    @property
    def output(self) -> str:
        return (self.folder / f"{self.name}.out").read_text()


class Flight:
    """Starts the test's processes, each on a machine of its own name, and keeps them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs = folder / "failover_jobs.py"
        self.jobs.write_text(JOBS)
        self.started: list[Started] = []

    def run(self, name: str, job: str, url: str, seconds: float = WRITE_SECONDS) -> Started:
        return self._start(name, self._cli(name, url, "run", "--job", f"failover/{job}", self.jobs), seconds)

    def exec(self, name: str, url: str, *command: str) -> Started:
        return self._start(name, self._cli(name, url, "exec", "--job", "failover/locked", "--lease", "30s", "--",
                                           *command), 0)

    def memo(self, name: str, url: str, seconds: float = WRITE_SECONDS) -> Started:
        """The memoising script (`JOBS`): its values are stored in group failover's memoize job, machine *name*."""
        return self._start(name, [sys.executable, self.jobs, url, name], seconds)

    @staticmethod
    def _cli(name: str, url: str, verb: str, *args) -> list:
        return [sys.executable, "-m", "processcache", verb, "--machine", name, "--database", url, *args]

    def _start(self, name: str, command: list, seconds: float) -> Started:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FAILOVER_SECONDS": str(seconds),
               "FAILOVER_LEDGER": str(self.folder / f"{name}.ledger")}
        env.pop("PROCESSCACHE_DATABASE_URL", None)
        with open(self.folder / f"{name}.out", "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        started = Started(name, process, self.folder)
        self.started.append(started)
        return started

    def stop_all(self) -> None:
        for started in self.started:
            if started.process.poll() is None:
                started.process.kill()
                started.process.wait()


def runs_on(cluster: Cluster) -> dict[str, tuple]:
    """Each machine's newest run on *cluster*: (id, status, error)."""
    rows = cluster.sql("SELECT machine, id, status, error FROM process_job_runs ORDER BY id", "failover")
    return {machine: (run_id, status, error) for machine, run_id, status, error in rows}


def lock_holder(cluster: Cluster, job: str) -> int | None:
    found = cluster.sql(f"SELECT run_id FROM process_job_locks WHERE name = 'failover/{job}'", "failover")
    return found[0][0] if found else None



def unconfirmed(cluster: Cluster, run: Started) -> set[int]:
    """The entries of *run*'s machine on *cluster* that the run was never told were stored."""
    stored = {row[0] for row in cluster.sql(f"SELECT id FROM process_cache WHERE machine = '{run.name}'", "failover")}
    return stored - {write["id"] for write in run.ledger if write["kind"] == "entry"}


def assert_nothing_lost_twice_or_left_running(flight: Flight, cluster: Cluster, runs: dict[str, tuple]) -> None:
    """Every write confirmed to any run is on *cluster*, no key of a machine was stored twice, no run is running."""
    for kind, table in (("entry", "process_cache"), ("log", "process_job_logs")):
        stored = {row[0] for row in cluster.sql(f"SELECT id FROM {table}", "failover")}
        confirmed = {write["id"] for run in flight.started for write in run.ledger if write["kind"] == kind}
        assert confirmed and confirmed <= stored, sorted(confirmed - stored)
    assert not cluster.sql("SELECT machine, entry_key FROM process_cache GROUP BY machine, entry_key"
                           " HAVING COUNT(*) > 1", "failover")
    assert "running" not in {status for _, status, _ in runs.values()}, runs


def report(flight: Flight, runs: dict[str, tuple], codes: dict[str, int], start: float,
           events: dict[str, float]) -> None:
    """Print what each run did (pytest -s shows it): its confirmed writes before the first event, between the
    events and after the last, and its longest pause between two of them."""
    print("\n" + ", ".join(f"{name} at {at:+.1f} s" for name, at in events.items()))
    bounds = [-1e9, *events.values(), 1e9]
    for run in flight.started:
        times = [write["t"] - start for write in run.ledger]
        counts = "/".join(str(sum(1 for t in times if low < t <= high)) for low, high in zip(bounds, bounds[1:]))
        pause = max(((later - earlier, later) for earlier, later in zip(times, times[1:])), default=None)
        paused = f"longest pause {pause[0]:.2f} s, to {pause[1]:+.2f} s" if pause else ""
        run_id, status, error = runs.get(run.name, (None, "not recorded", None))
        print(f"  {run.name:12} exit {codes.get(run.name, run.process.returncode):>3}  run {run_id!s:>3} {status:9}"
              f"  writes {counts:10} {paused:34} {(error or '').splitlines()[0][:110] if error else ''}")
