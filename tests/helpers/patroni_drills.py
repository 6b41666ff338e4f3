"""Failovers Patroni drives while real processcache processes write: a crash and a switchover, with their figures.

Each drill starts `failover_flight.Flight`'s processes against a Patroni
cluster (`patroni_cluster`) through its multi-host URL: ``writer`` (an
entry and a log every 50 ms), a memoising script, an ``exec`` holding the
job lock ``failover/locked``, and ``short-lease`` (a lock whose lease is 3
s). Then:

- `crash`: the primary's PostgreSQL is SIGKILLed; Patroni fails over to the
  synchronous standby by itself, and brings the old primary back as a
  replica (pg_rewind). ``short-lease`` is paused (SIGSTOP, a stalled
  machine) across the failover, so its lease runs out; another machine
  takes the lock on the new primary, and once resumed the holder is
  fenced: it writes nothing more and ends ``lost``. An ``exec`` of the held
  job started after the failover is skipped, naming the holder.
- `switchover`: ``patronictl switchover`` to the replica; the old primary
  follows the new one.

A crash drill may connect through HAProxy instead (`haproxy_url`).

Afterwards a job run as the next crontab line would (``next``) must
succeed with nothing done by hand. A `Drill` keeps what a test asserts and
a person reads: each process's exit code and run, and the time from the
event to the first write any process was told was stored.
"""

import os
import signal
import time
from dataclasses import dataclass, field

from failover_flight import Flight, Started, lock_holder, runs_on, wait_for
from patroni_cluster import DATABASE, Node, PatroniCluster

from processcache.cache.memo import memo_key

#: The URL's options: the default retry budget, and a short connect timeout for a host list.
OPTIONS = ("retry_for=30s", "connect_timeout=3")
#: How long the writers write: they start before the event and end well after it.
WRITE_SECONDS = 14.0


@dataclass
class Drill:
    """What one drill did: its event, when, the processes, their exit codes, and each machine's run on the end."""

    event: str
    at: float
    suffix: str  # of its processes' machine names: each drill's are its own
    old_leader: Node
    new_leader: Node
    started: list[Started]
    codes: dict[str, int] = field(default_factory=dict)
    runs: dict[str, tuple] = field(default_factory=dict)
    leader_seen: float = 0.0  # seconds from the event until Patroni showed a new leader running
    found: dict[str, int] = field(default_factory=dict)  # `tally`, once every process has ended

    def first_write_after(self) -> float:
        """Seconds from the event to the first write any process was told was stored after it."""
        return min(write["t"] for run in self.started for write in run.ledger if write["t"] > self.at) - self.at

    def longest_pause(self) -> float:
        """The longest time after the event during which no process was told a write was stored (seconds)."""
        times = sorted(write["t"] for run in self.started for write in run.ledger)
        last_before = max((t for t in times if t <= self.at), default=self.at)
        after = [last_before, *(t for t in times if t > self.at)]
        return max(later - earlier for earlier, later in zip(after, after[1:]))

    def tally(self) -> dict[str, int]:
        """Writes confirmed to the processes, those of them found on the new primary, and keys stored twice."""
        sql = self.new_leader.postgres.sql
        stored = {"entry": {row[0] for row in sql("SELECT id FROM process_cache", "failover")},
                  "log": {row[0] for row in sql("SELECT id FROM process_job_logs", "failover")},
                  "memo": set(sql("SELECT machine, entry_key FROM process_cache", "failover"))}
        confirmed = [(run.name, write) for run in self.started for write in run.ledger]
        found = sum(1 for name, write in confirmed if identity(name, write) in stored[write["kind"]])
        doubled = sql("SELECT COUNT(*) FROM (SELECT machine, entry_key FROM process_cache GROUP BY machine, entry_key"
                      " HAVING COUNT(*) > 1) AS twice", "failover")[0][0]
        return {"confirmed": len(confirmed), "found": found, "stored twice": doubled}

    def statuses(self) -> dict[str, int]:
        """How many runs ended in each status."""
        counted: dict[str, int] = {}
        for _, status, _ in self.runs.values():
            counted[status] = counted.get(status, 0) + 1
        return counted

    def summary(self) -> str:
        tally = self.found
        return (f"{self.event}: {self.old_leader.name} -> {self.new_leader.name}; new leader seen after"
                f" {self.leader_seen:.1f} s; first confirmed write {self.first_write_after():.2f} s after, longest"
                f" pause in confirmed writes {self.longest_pause():.2f} s; writes confirmed {tally['confirmed']},"
                f" found {tally['found']}, keys stored twice {tally['stored twice']}; runs by status"
                f" {self.statuses()}; exit codes {self.codes}")


def haproxy_url(port: int) -> str:
    """The URL of the cluster's database through HAProxy on *port* (`patroni_cluster.haproxy_in_front`)."""
    return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}?" + "&".join(OPTIONS)


def identity(machine: str, write: dict):
    """What finds a confirmed write on the database: a row's id, or a memoised step's (machine, key)."""
    if write["kind"] != "memo":
        return write["id"]
    return machine, memo_key(f"square-{machine}", (write["id"],), {})


def in_flight(flight: Flight, url: str, leader: Node, suffix: str, hold_for: int) -> dict[str, Started]:
    """Start the drill's writers and lock holders; return them once each has written or holds its lock."""
    started = {
        "writer": flight.run(f"writer{suffix}", "writer", url, WRITE_SECONDS),
        "memo": flight.memo(f"memo{suffix}", url, WRITE_SECONDS),
        "holder": flight.exec(f"holder{suffix}", url, "sleep", str(hold_for)),
    }
    wait_for(lambda: started["writer"].ledger and started["memo"].ledger and lock_holder(leader.postgres, "locked"),
             60, "the first writes")
    return started


def crash(cluster: PatroniCluster, flight: Flight, url: str | None = None, suffix: str = "") -> Drill:
    """SIGKILL the primary's PostgreSQL under load, the processes connected through *url* (the multi-host URL by
    default); Patroni fails over; see the module docstring."""
    url = url or cluster.url(*OPTIONS)
    old = cluster.wait_healthy()
    started = in_flight(flight, url, old, suffix, hold_for=12)
    short = flight.run(f"short{suffix}", "short-lease", url, WRITE_SECONDS)
    wait_for(lambda: short.ledger and lock_holder(old.postgres, "short-lease"), 60, "short-lease's lock")
    time.sleep(1)
    os.kill(short.process.pid, signal.SIGSTOP)
    paused = time.time()
    killed = time.time()
    old.kill_postgres()
    new = wait_for(lambda: (leader := cluster.leader()) is not None and leader is not old and leader, 60,
                   "Patroni promoting the standby")
    through = "" if "target_session_attrs" in url else " through HAProxy"
    drill = Drill(f"crash (SIGKILL of the primary's postgres){through}", killed, suffix, old, new, [],
                  leader_seen=time.time() - killed)
    second = flight.exec(f"second{suffix}", url, "true")  # while the holder still holds failover/locked
    # short-lease's lease (3 s) has run out on the new primary since its last renewal: another machine takes it.
    time.sleep(max(0.0, paused + 4 - time.time()))
    taker = flight.run(f"taker{suffix}", "short-lease", url, seconds=1)
    drill.codes[taker.name] = taker.wait()
    os.kill(short.process.pid, signal.SIGCONT)
    return finish(cluster, flight, url, drill, [*started.values(), short, taker, second])


def switchover(cluster: PatroniCluster, flight: Flight, suffix: str = "-2") -> Drill:
    """``patronictl switchover`` under load to the (synchronous) replica; see the module docstring."""
    url = cluster.url(*OPTIONS)
    old = cluster.wait_healthy()
    target = cluster.replicas(synchronous=True)[0]
    started = in_flight(flight, url, old, suffix, hold_for=8)
    time.sleep(1)
    at = time.time()
    cluster.switchover(target)
    new = wait_for(lambda: cluster.leader() is target and target, 60, "the switchover")
    drill = Drill("switchover (patronictl)", at, suffix, old, new, [], leader_seen=time.time() - at)
    return finish(cluster, flight, url, drill, list(started.values()))


def finish(cluster: PatroniCluster, flight: Flight, url: str, drill: Drill, started: list[Started]) -> Drill:
    """Wait for every process, run the next crontab line, wait for the old leader back as a replica."""
    for run in started:
        drill.codes[run.name] = run.wait()
    after = flight.run(f"next{drill.suffix}", "writer", url, seconds=0.5)
    drill.codes[after.name] = after.wait()
    drill.started = [*started, after]
    cluster.wait_healthy()
    names = {run.name for run in drill.started}
    drill.runs = {name: run for name, run in runs_on(drill.new_leader.postgres).items() if name in names}
    drill.found = drill.tally()
    return drill
