"""Failovers and switchovers on a Patroni cluster of its own, under real processcache processes: the figures.

    python -m benchmarks.patroni_failover --rounds 3

Needs Debian's ``patroni``, ``etcd-server``, ``haproxy`` and
``postgresql-15`` (run as root, the cluster runs as the postgres user).
Each round starts a crash drill (the primary's PostgreSQL SIGKILLed,
Patroni failing over by itself), a switchover drill (``patronictl
switchover``) and a crash drill through HAProxy on the same two-node
cluster, synchronous replication on, with the drills and checks of
tests/system/test_patroni.py (tests/helpers/patroni_drills.py). It prints,
for each drill: when Patroni showed the new leader, the time from the event
to the first write a process was told was stored, the longest pause in
confirmed writes, the writes confirmed and found, the keys stored twice,
and the runs ending in each status; then the medians.
"""

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from failover_flight import Flight  # noqa: E402
from patroni_cluster import PatroniCluster, available, haproxy_in_front, running  # noqa: E402
from patroni_drills import Drill, crash, haproxy_url, switchover  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of three drills: a crash, a switchover, a crash through HAProxy (3)")
    parser.add_argument("--nodes", type=int, default=2, help="PostgreSQL nodes under Patroni (2)")
    options = parser.parse_args()
    if not available():
        sys.exit("patroni_failover: install patroni, etcd-server, haproxy and postgresql-15 (apt-get install ...)")
    drills: list[Drill] = []
    with tempfile.TemporaryDirectory(prefix="pc-patroni-bench-") as folder, running(options.nodes) as cluster:
        for round_number in range(1, options.rounds + 1):
            if round_number > 1:
                cluster.fresh_database()  # the same machine names write the same keys again: a new ledger each round
            (Path(folder) / str(round_number)).mkdir()
            flight = Flight(Path(folder) / str(round_number))  # its processes' ledgers, this round's alone
            try:
                for drill in drills_of_a_round(cluster, flight):
                    drills.append(drill)
                    print(f"round {round_number}: {drill.summary()}", flush=True)
            finally:
                flight.stop_all()
        for kind in ("crash", "switchover", "crash through HAProxy"):  # here, while the ledgers are there to read
            print(medians([drill for drill in drills if kind_of(drill) == kind], kind))


def kind_of(drill: Drill) -> str:
    return "crash through HAProxy" if drill.event.endswith("HAProxy") else drill.event.split(" (")[0]


def drills_of_a_round(cluster: PatroniCluster, flight: Flight) -> Iterator[Drill]:
    """A crash through the multi-host URL, a switchover back, and a crash through HAProxy."""
    yield crash(cluster, flight)
    yield switchover(cluster, flight)
    with haproxy_in_front(cluster) as port:
        yield crash(cluster, flight, url=haproxy_url(port), suffix="-3")


def medians(drills: list[Drill], kind: str) -> str:
    """One line of the drills of one *kind*: medians of the times, sums of the writes."""
    first = [drill.first_write_after() for drill in drills]
    total = {name: sum(drill.found[name] for drill in drills) for name in ("confirmed", "found", "stored twice")}
    return (f"{kind}: {len(drills)} drills; median new leader seen after"
            f" {statistics.median(drill.leader_seen for drill in drills):.1f} s, first confirmed write after"
            f" {statistics.median(first):.2f} s ({min(first):.2f} to {max(first):.2f} s), longest pause in confirmed"
            f" writes {statistics.median(drill.longest_pause() for drill in drills):.2f} s; writes confirmed"
            f" {total['confirmed']}, found {total['found']}, keys stored twice {total['stored twice']}")


if __name__ == "__main__":
    main()
