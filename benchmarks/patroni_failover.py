"""Failovers and switchovers on a Patroni cluster of its own, under real processcache processes: the figures.

    python -m benchmarks.patroni_failover --rounds 3

Needs Debian's ``patroni``, ``etcd-server`` and ``postgresql-15`` (run as
root, the cluster runs as the postgres user). Each round starts a crash
drill (the primary's PostgreSQL SIGKILLed, Patroni failing over by itself)
and a switchover drill (``patronictl switchover``) on the same two-node
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from failover_flight import Flight  # noqa: E402
from patroni_cluster import available, running  # noqa: E402
from patroni_drills import Drill, crash, switchover  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="crash and switchover drills to run (3)")
    parser.add_argument("--nodes", type=int, default=2, help="PostgreSQL nodes under Patroni (2)")
    options = parser.parse_args()
    if not available():
        sys.exit("patroni_failover: install patroni, etcd-server and postgresql-15 (apt-get install ...)")
    drills: list[Drill] = []
    with tempfile.TemporaryDirectory(prefix="pc-patroni-bench-") as folder, running(options.nodes) as cluster:
        for round_number in range(1, options.rounds + 1):
            if round_number > 1:
                cluster.fresh_database()  # the same machine names write the same keys again: a new ledger each round
            (Path(folder) / str(round_number)).mkdir()
            flight = Flight(Path(folder) / str(round_number))  # its processes' ledgers, this round's alone
            try:
                for drill_of in (crash, switchover):
                    drill = drill_of(cluster, flight)
                    drills.append(drill)
                    print(f"round {round_number}: {drill.summary()}", flush=True)
            finally:
                flight.stop_all()
        for kind in ("crash", "switchover"):  # here, while the ledgers are there to read
            print(medians([drill for drill in drills if drill.event.startswith(kind)], kind))


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
