"""A primary failover under running jobs: a multi-host URL, a streaming standby promoted, the old primary stopped.

The tests build their own pair of PostgreSQL 15 clusters with the
distribution's tools (initdb, pg_basebackup, pg_ctl), run by the postgres
user on ports of their own in a temporary folder, and never touch the
shared server. Replication is synchronous (``synchronous_standby_names``
on the primary): a commit returns only once the standby has flushed it, so
whatever a job was told is stored is on the standby when it is promoted.

Every process is a real ``processcache run`` or ``exec`` against
``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/failover?target_session_attrs=read-write&retry_for=30s``
(`RETRY_FOR`). The jobs (`JOBS`): ``writer`` writes an entry and a log
every 50 ms (single writes, each tried again after a lost connection);
``batches`` writes five entries per transaction; ``short-lease`` is a
writer whose lock lives 3 s without a heartbeat; ``exec`` runs of
``failover/locked`` hold that job's lock. Each job notes every write the
database confirmed, and when, in a ledger, so a test knows what was
committed before the failover and looks for it on the new primary. Each
test prints what each run did (``pytest -s`` shows it): its confirmed
writes before, during and after the failover, and its longest pause.

Two orders of events:

- the primary crashes (``pg_ctl stop -m immediate``), and `DETECT` seconds
  later, the time a failover manager takes to notice, the standby is
  promoted: the common failover;
- the standby is promoted while the old primary still runs, which is
  stopped only later: every commit made on the old primary meanwhile
  waits for a synchronous standby that is gone, so no one is told it is
  stored. A machine whose URL lists the new primary first meanwhile takes
  ``short-lease``'s lock, whose lease ran out there: the run that held it
  is fenced when it comes back, and ends lost.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: How long the writers write: they start before the failover and end after it.
WRITE_SECONDS = 12.0
#: The runs' retry budget (the default): a failover must be over within it.
RETRY_FOR = 30.0
#: Seconds between the primary's crash and the standby's promotion: a failover manager noticing.
DETECT = 2.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not (PG_BIN / "pg_ctl").exists(), reason=f"PostgreSQL 15's tools are not in {PG_BIN}"),
]

JOBS = textwrap.dedent('''
    """The failover test's jobs: each notes every write the database confirmed, and when, in its ledger."""
    import json
    import os
    import time

    from processcache import job


    def noted(kind, record):
        with open(os.environ["FAILOVER_LEDGER"], "a") as ledger:
            ledger.write(json.dumps({"kind": kind, "id": record.id, "t": time.time()}) + "\\n")


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
''')


# -- the clusters ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(*command) -> list[str]:
    """*command* run as the postgres user when the tests run as root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *map(str, command)] if os.geteuid() == 0 else list(map(str, command))


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


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster

    def url(self, *clusters: Cluster, **options) -> str:
        hosts = ",".join(f"127.0.0.1:{cluster.port}" for cluster in clusters)
        query = "&".join(f"{name}={value}" for name, value in
                         {"target_session_attrs": "read-write", "retry_for": f"{RETRY_FOR:g}s", **options}.items())
        return f"postgresql://postgres@{hosts}/failover?{query}"


def wait_for(condition, seconds: float, what: str):
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds:g}s")


@pytest.fixture
def pair():
    """A primary and a synchronous streaming standby, started; both stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pc-failover-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    root.chmod(0o700)
    primary, standby = Cluster(root, "primary", free_port()), Cluster(root, "standby", free_port())
    try:
        primary.tool("initdb", "-D", primary.data, "-U", "postgres", "--auth=trust", "--no-sync")
        primary.settings(port=primary.port, listen_addresses="127.0.0.1", unix_socket_directories=root,
                         shared_buffers="16MB", synchronous_standby_names="standby1")
        primary.start()
        primary.tool("pg_basebackup", "-h", "127.0.0.1", "-p", primary.port, "-U", "postgres", "-D", standby.data,
                     "-X", "stream", "-c", "fast")
        # Promoted, it has no standby of its own: waiting for one would hold every commit for ever.
        standby.settings(port=standby.port, synchronous_standby_names="",
                         primary_conninfo=f"host=127.0.0.1 port={primary.port} user=postgres application_name=standby1")
        (standby.data / "standby.signal").touch()
        if os.geteuid() == 0:
            shutil.chown(standby.data / "standby.signal", "postgres")
        standby.start()
        wait_for(lambda: primary.sql("SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'"), 30,
                 "the standby's synchronous streaming")
        primary.sql("CREATE DATABASE failover")
        yield Pair(primary, standby)
    finally:
        for cluster in (primary, standby):
            if (cluster.data / "postmaster.pid").exists():
                subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-D", cluster.data, "-m", "immediate", "stop"),
                               capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# -- the runs ------------------------------------------------------------------------------------------------


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
        return self._start(name, ["run", "--job", f"failover/{job}", self.jobs], url, seconds)

    def exec(self, name: str, url: str, *command: str) -> Started:
        return self._start(name, ["exec", "--job", "failover/locked", "--lease", "30s", "--", *command], url, 0)

    def _start(self, name: str, args: list, url: str, seconds: float) -> Started:
        command = [sys.executable, "-m", "processcache", args[0], "--machine", name, "--database", url, *args[1:]]
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


@pytest.fixture
def flight(tmp_path):
    launched = Flight(tmp_path)
    yield launched
    launched.stop_all()


def runs_on(cluster: Cluster) -> dict[str, tuple]:
    """Each machine's newest run on *cluster*: (id, status, error)."""
    rows = cluster.sql("SELECT machine, id, status, error FROM process_job_runs ORDER BY id", "failover")
    return {machine: (run_id, status, error) for machine, run_id, status, error in rows}


def lock_holder(cluster: Cluster, job: str) -> int | None:
    found = cluster.sql(f"SELECT run_id FROM process_job_locks WHERE name = 'failover/{job}'", "failover")
    return found[0][0] if found else None


def in_flight(flight: Flight, url: str, primary: Cluster, job: str, hold_for: int) -> tuple[Started, ...]:
    """Start ``writer``, *job* and an ``exec`` holding failover/locked for *hold_for* seconds; return them once
    each has written or holds its lock, and a second more."""
    writer, other = flight.run("writer", "writer", url), flight.run(job, job, url)
    holder = flight.exec("holder", url, "sleep", str(hold_for))
    wait_for(lambda: writer.ledger and other.ledger and lock_holder(primary, "locked"), 30, "the first writes")
    time.sleep(1)
    return writer, other, holder


def test_a_crashed_primary_and_a_promoted_standby_leave_runs_finished_or_failed_recorded_nothing_lost(pair, flight):
    primary, standby = pair.primary, pair.standby
    url = pair.url(primary, standby)
    writer, batches, holder = in_flight(flight, url, primary, "batches", hold_for=10)

    crashed = time.time()
    primary.stop("immediate")
    time.sleep(DETECT)
    standby.tool("pg_ctl", "-D", standby.data, "-w", "promote")
    promoted = time.time()
    assert holder.process.poll() is None, "the lock holder ended before the failover was over: make it sleep longer"
    second = flight.exec("second", url, "true")
    codes = {run.name: run.wait() for run in (second, writer, batches, holder)}
    following = flight.run("next", "writer", url, seconds=0.5)
    codes["next"] = following.wait()

    runs = runs_on(standby)
    report(flight, runs, codes, crashed, {"crashed": 0, "promoted": promoted - crashed})
    # The runs in flight finished on the new primary within the retry budget ...
    assert (codes["writer"], runs["writer"][1]) == (0, "succeeded"), writer.output
    resumed = min(write["t"] for write in writer.ledger if write["t"] > crashed)
    assert resumed - crashed < RETRY_FOR
    # ... or failed, recorded: the batch the crash cut off, whose commit may or may not have reached the standby.
    assert (codes["batches"], runs["batches"][1]) == (1, "failed"), batches.output
    assert "lost the connection" in runs["batches"][2] and "during a batch" in runs["batches"][2]
    cut_off = unconfirmed(standby, batches)
    print(f"  the batch cut off: {len(cut_off)} of its 5 entries on the new primary")
    assert len(cut_off) in (0, 5)
    # The lock held at the failover was not granted twice.
    assert (codes["holder"], runs["holder"][1]) == (0, "succeeded"), holder.output
    assert codes["second"] == 75 and f"run {runs['holder'][0]} on holder" in runs["second"][2], second.output
    assert_nothing_lost_twice_or_left_running(flight, standby, runs)
    assert codes["next"] == 0 and runs["next"][1] == "succeeded", following.output


def test_a_standby_promoted_while_the_old_primary_runs_on_takes_no_write_from_it_and_fences_its_lock(pair, flight):
    primary, standby = pair.primary, pair.standby
    url = pair.url(primary, standby)
    writer, short, holder = in_flight(flight, url, primary, "short-lease", hold_for=15)

    standby.tool("pg_ctl", "-D", standby.data, "-w", "promote")
    promoted = time.time()
    # The old primary runs on, its commits waiting. short-lease's lease runs out on the new primary 3 s after
    # the last renewal it received; a machine whose URL lists the new primary first then takes the lock.
    time.sleep(3)
    taker = flight.run("taker", "short-lease", pair.url(standby, primary), seconds=1)
    wait_for(lambda: lock_holder(standby, "short-lease") == runs_on(standby).get("taker", (None,))[0]
             or taker.process.poll() is not None, 30, "the takeover")
    stopped = time.time()
    primary.stop("immediate")
    assert holder.process.poll() is None, "the lock holder ended before the failover was over: make it sleep longer"
    second = flight.exec("second", url, "true")
    codes = {run.name: run.wait() for run in (second, holder)}
    third = flight.exec("third", url, "true")
    codes.update({run.name: run.wait() for run in (third, writer, short, taker)})

    runs = runs_on(standby)
    report(flight, runs, codes, promoted, {"promoted": 0, "old primary stopped": stopped - promoted})
    assert (codes["taker"], runs["taker"][1]) == (0, "succeeded"), taker.output
    # Nothing the old primary took after the promotion was confirmed: the writer's commits there waited, then
    # were written again on the new primary.
    assert (codes["writer"], runs["writer"][1]) == (0, "succeeded"), writer.output
    assert min(write["t"] for write in writer.ledger if write["t"] > promoted) > stopped
    # The lock held at the failover was kept by its holder: the run after it was skipped, the one after that ran.
    assert runs["second"][1] == "skipped" and f"run {runs['holder'][0]} on holder" in runs["second"][2]
    assert (codes["holder"], runs["holder"][1], codes["third"], runs["third"][1]) == (0, "succeeded", 0, "succeeded")
    # The lock taken over was not held twice: the run that had it wrote nothing more, fenced, and ended lost.
    assert (codes["short-lease"], runs["short-lease"][1]) == (1, "lost"), short.output
    assert "LeaseLostError" in runs["short-lease"][2]
    assert not [write for write in short.ledger if write["t"] > promoted] and not unconfirmed(standby, short)
    assert_nothing_lost_twice_or_left_running(flight, standby, runs)


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
