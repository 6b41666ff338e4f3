"""processcache across failovers that Patroni drives by itself: a crashed primary, then a switchover.

A Patroni cluster of two PostgreSQL 15 nodes and etcd, synchronous
replication on (tests/helpers/patroni_cluster.py), and real ``run``,
``exec`` and memoising processes writing through
``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/failover?target_session_attrs=read-write``
while the primary's PostgreSQL is SIGKILLed, again while
``patronictl switchover`` moves the primary back, and once more through
HAProxy in front, as Patroni's documentation deploys it
(tests/helpers/patroni_drills.py says what each process does). ``pytest -s`` prints each drill's figures;
``python -m benchmarks.patroni_failover`` prints them for a person.
"""

import json
import time

import pytest
from cli_helpers import cli
from failover_flight import Flight, assert_nothing_lost_twice_or_left_running, wait_for
from patroni_cluster import PatroniCluster, available, haproxy_in_front, running
from patroni_drills import Drill, crash, haproxy_url, switchover

from processcache.cli.format import LAG_SHOWN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not available(), reason="Patroni, etcd, HAProxy or PostgreSQL 15 is not installed (Debian:"
                                               " apt-get install patroni etcd-server haproxy postgresql-15)"),
]


def test_runs_end_true_nothing_is_lost_or_doubled_and_a_lapsed_lock_is_fenced_across_patroni_failovers(tmp_path):
    flight = Flight(tmp_path)
    try:
        with running(size=2) as cluster:
            crashed = crash(cluster, flight)
            print("\n" + crashed.summary())
            assert_the_drill_left_every_run_true(crashed)
            assert_the_lapsed_holder_was_fenced_and_the_held_lock_kept(crashed)

            switched = switchover(cluster, flight)
            print(switched.summary())
            assert switched.new_leader is crashed.old_leader  # the crashed primary came back, as a replica
            assert_the_drill_left_every_run_true(switched)

            with haproxy_in_front(cluster) as port:
                proxied = crash(cluster, flight, url=haproxy_url(port), suffix="-3")
            print(proxied.summary())
            assert_the_drill_left_every_run_true(proxied)
            assert_the_lapsed_holder_was_fenced_and_the_held_lock_kept(proxied)

            assert_nothing_lost_twice_or_left_running(flight, proxied.new_leader.postgres,
                                                      {**crashed.runs, **switched.runs, **proxied.runs})
            assert_the_read_commands_read_the_standby_and_say_its_lag(cluster, flight)
    finally:
        flight.stop_all()


def assert_the_drill_left_every_run_true(drill: Drill) -> None:
    """Every process ended as it should have, recorded on the new primary; every write confirmed to any of them
    (entries, logs, memoised values) is there, none stored twice; writes resumed within the retry budget."""
    writer, memo, holder, following = (name + drill.suffix for name in ("writer", "memo", "holder", "next"))
    outputs = {run.name: run.output for run in drill.started}
    for name in (writer, holder, following):
        assert (drill.codes[name], drill.runs[name][1]) == (0, "succeeded"), outputs[name]
    assert drill.codes[memo] == 0, outputs[memo]
    tally = drill.found
    assert tally["found"] == tally["confirmed"] > 0 and tally["stored twice"] == 0, tally
    assert "running" not in {status for _, status, _ in drill.runs.values()}, drill.runs
    assert drill.first_write_after() < 30


def assert_the_lapsed_holder_was_fenced_and_the_held_lock_kept(drill: Drill) -> None:
    """The holder paused across the crash lost its lock to another machine: fenced, it wrote nothing more and
    ended lost. The job lock held across it was not granted twice: an exec of that job was skipped."""
    short, taker, second, holder = (name + drill.suffix for name in ("short", "taker", "second", "holder"))
    paused = next(run for run in drill.started if run.name == short)
    assert (drill.codes[short], drill.runs[short][1]) == (1, "lost"), paused.output
    assert "LeaseLostError" in drill.runs[short][2]
    assert drill.codes[taker] == 0 and drill.runs[taker][1] == "succeeded"
    assert not [write for write in paused.ledger if write["t"] > drill.at]
    assert drill.codes[second] == 75 and drill.runs[second][1] == "skipped"
    assert f"run {drill.runs[holder][0]} on {holder}" in drill.runs[second][2]


def assert_the_read_commands_read_the_standby_and_say_its_lag(cluster: PatroniCluster, flight: Flight) -> None:
    """``--read-url`` with ``target_session_attrs=prefer-standby`` reads the replica, listed after the primary:
    caught up, it shows all and says nothing; its replay paused, it shows the runs as of then, and its lag (on
    stderr, in the metrics, on the report's page)."""
    primary, replica = cluster.wait_healthy(), cluster.replicas()[0]
    # The primary listed first: the first host that answers would be it.
    reading = ["--read-url", cluster.url(sessions="prefer-standby", nodes=[primary, replica]), "--database",
               cluster.url()]

    def machines() -> tuple[set[str], str]:
        read = cli("runs", "--json", "--limit", "1000", *reading)
        assert read.returncode == 0, read.stderr
        return {run["machine"] for run in json.loads(read.stdout)}, read.stderr

    seen, said = machines()
    assert {"writer-2", "next-2"} <= seen and said == ""
    with cluster.maintenance():  # else Patroni resumes a paused replay
        replica.postgres.sql("SELECT pg_wal_replay_pause()")
        try:
            assert flight.run("late", "writer", cluster.url(), seconds=0.2).wait() == 0
            time.sleep(LAG_SHOWN + 0.5)
            seen, said = machines()
            assert "late" not in seen and "behind its primary" in said and said.count("\n") == 1, said
            scraped = cli("metrics", *reading).stdout
            lag = float(next(line for line in scraped.splitlines()
                             if line.startswith("processcache_replay_lag_seconds ")).split()[1])
            assert lag >= LAG_SHOWN, scraped
            page = flight.folder / "standby.html"
            assert cli("report", "--html", page, *reading).returncode == 0
            assert "behind its primary" in page.read_text()
        finally:
            replica.postgres.sql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: machines() == ({*seen, "late"}, ""), 30, "the standby catching up")
