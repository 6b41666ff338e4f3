"""A primary failover under running jobs: a multi-host URL, a streaming standby promoted, the old primary stopped.

The tests build their own pair of PostgreSQL 15 clusters with the
distribution's tools (initdb, pg_basebackup, pg_ctl), run by the postgres
user on ports of their own in a temporary folder, and never touch the
shared server. Replication is synchronous (``synchronous_standby_names``
on the primary): a commit returns only once the standby has flushed it, so
whatever a job was told is stored is on the standby when it is promoted.

Every process is a real ``processcache run`` or ``exec`` against
``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/failover?target_session_attrs=read-write&retry_for=30s``
(`RETRY_FOR`), started by tests/helpers/failover_flight.py, whose jobs note
every write the database confirmed, and when, in a ledger. Each test
prints what each run did (``pytest -s`` shows it): its confirmed writes
before, during and after the failover, and its longest pause.

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

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from failover_flight import (
    PG_BIN,
    Cluster,
    Flight,
    Started,
    assert_nothing_lost_twice_or_left_running,
    lock_holder,
    report,
    runs_on,
    unconfirmed,
    wait_for,
)
from pgbouncer_server import as_postgres, free_port

#: The runs' retry budget (the default): a failover must be over within it.
RETRY_FOR = 30.0
#: Seconds between the primary's crash and the standby's promotion: a failover manager noticing.
DETECT = 2.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not (PG_BIN / "pg_ctl").exists(), reason=f"PostgreSQL 15's tools are not in {PG_BIN}"),
]


# -- the clusters ----------------------------------------------------------------------------------------


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster

    def url(self, *clusters: Cluster, **options) -> str:
        hosts = ",".join(f"127.0.0.1:{cluster.port}" for cluster in clusters)
        query = "&".join(f"{name}={value}" for name, value in
                         {"target_session_attrs": "read-write", "retry_for": f"{RETRY_FOR:g}s", **options}.items())
        return f"postgresql://postgres@{hosts}/failover?{query}"


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


@pytest.fixture
def flight(tmp_path):
    launched = Flight(tmp_path)
    yield launched
    launched.stop_all()


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
