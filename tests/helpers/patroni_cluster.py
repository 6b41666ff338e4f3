"""A Patroni cluster of the tests' own: one etcd and two or three PostgreSQL 15 nodes, in a temporary folder.

Debian's ``etcd`` and ``patroni`` run from a folder of their own on free
ports of 127.0.0.1; the shared server is never touched. Replication is
synchronous (Patroni's ``synchronous_mode``: a commit returns once a
standby has it) and ``primary_start_timeout`` is 0, so a primary whose
PostgreSQL crashes is failed over to its synchronous standby at once rather
than restarted in place: what a ledger that must not lose a confirmed write
is run with. ``loop_wait`` is 1 s and ``ttl`` 10 s, shorter than the
defaults (10 s, 30 s), so that a failover test takes seconds, not a
minute; `benchmarks/patroni_failover.py` shows the times at these settings.
PostgreSQL refuses to run as root, so Patroni (and the PostgreSQL it starts)
runs as the postgres user when the tests run as root.

`running` yields a started cluster and stops everything afterwards: each
Patroni with SIGTERM (it stops its PostgreSQL), then whatever is left,
by the process ids it wrote, with SIGKILL. `haproxy_in_front` puts
HAProxy in front of the primary, as Patroni's documentation deploys it.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from failover_flight import PG_BIN, Cluster, wait_for
from pgbouncer_server import as_postgres, free_port

#: Patroni's cluster (its "scope") and the database the tests use in it.
SCOPE = "pc"
DATABASE = "failover"
#: Patroni's loop and leader key, in seconds (see the module docstring).
LOOP_WAIT, TTL, RETRY_TIMEOUT = 1, 10, 3


def available() -> bool:
    """Whether Patroni, etcd, HAProxy and PostgreSQL 15's tools are installed (Debian: patroni, etcd-server,
    haproxy)."""
    return bool(shutil.which("patroni") and shutil.which("etcd") and shutil.which("haproxy")
                and (PG_BIN / "pg_ctl").exists())


@dataclass
class Node:
    """One Patroni member: its PostgreSQL (a `Cluster`: the data folder, port and SQL) and its REST API."""

    postgres: Cluster
    api_port: int
    process: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return self.postgres.name

    @property
    def port(self) -> int:
        return self.postgres.port

    @property
    def config(self) -> Path:
        return self.postgres.root / f"{self.name}.yml"

    def postmaster_pid(self) -> int | None:
        """The process id of this node's running PostgreSQL, or None (a pid file left by a crash names none)."""
        try:
            pid = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
            return pid if b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def kill_postgres(self) -> None:
        """SIGKILL this node's postmaster: its PostgreSQL crashes (Patroni itself runs on)."""
        pid = self.postmaster_pid()
        assert pid is not None, f"{self.name} runs no PostgreSQL"
        os.kill(pid, signal.SIGKILL)


@dataclass
class PatroniCluster:
    root: Path
    nodes: list[Node]
    etcd: subprocess.Popen | None = None
    etcd_port: int = 0

    def url(self, *options: str, sessions: str = "read-write", nodes: list[Node] | None = None) -> str:
        """The multi-host URL of every node (or of *nodes*, in that order), of *sessions* (libpq's
        ``target_session_attrs``), plus *options* (``a=b``)."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in nodes or self.nodes)
        return f"postgresql://postgres@{hosts}/{DATABASE}?" + "&".join((f"target_session_attrs={sessions}", *options))

    def fresh_database(self) -> None:
        """Drop the database `DATABASE` and create it again, empty (between a benchmark's rounds)."""
        leader = self.wait_healthy()
        leader.postgres.sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        leader.postgres.sql(f"CREATE DATABASE {DATABASE}")

    def members(self) -> list[dict]:
        """Patroni's view of the cluster (its REST API's ``/cluster``), from the first node that answers."""
        for node in self.nodes:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"http://127.0.0.1:{node.api_port}/cluster", timeout=2) as answer:
                    return json.load(answer)["members"]
        return []

    def leader(self) -> Node | None:
        """The node Patroni has as leader, once its PostgreSQL runs."""
        names = {member["name"] for member in self.members()
                 if member["role"] == "leader" and member["state"] == "running"}
        return next((node for node in self.nodes if node.name in names), None)

    def replicas(self, synchronous: bool = False) -> list[Node]:
        """The nodes that stream from the leader (the synchronous ones only, with *synchronous*)."""
        roles = ("sync_standby",) if synchronous else ("sync_standby", "replica")
        names = {member["name"] for member in self.members()
                 if member["role"] in roles and member["state"] in ("running", "streaming")}
        return [node for node in self.nodes if node.name in names]

    def wait_healthy(self, seconds: float = 90) -> Node:
        """Wait for a leader and every other node streaming, one of them synchronously; the leader."""
        wait_for(lambda: self.leader() and len(self.replicas()) == len(self.nodes) - 1
                 and self.replicas(synchronous=True), seconds, "a leader with every other node streaming")
        leader = self.leader()
        assert leader is not None
        return leader

    def switchover(self, to: Node) -> None:
        """``patronictl switchover`` to *to*: the leader stops, *to* is promoted, the old leader follows it."""
        leader = self.leader()
        assert leader is not None and leader is not to
        self.patronictl("switchover", "--leader", leader.name, "--candidate", to.name, "--force")

    @contextlib.contextmanager
    def maintenance(self) -> Iterator[None]:
        """Patroni's maintenance mode (``patronictl pause``): it leaves PostgreSQL be, a paused replay too."""
        self.patronictl("pause", "--wait")
        try:
            yield
        finally:
            self.patronictl("resume", "--wait")

    def patronictl(self, *args: str) -> None:
        done = subprocess.run(as_postgres("patronictl", "-c", self.nodes[0].config, *args), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def log(self, node: Node) -> str:
        """The end of a node's Patroni log, for an assertion's message."""
        path = self.root / f"{node.name}.patroni.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"


def node_config(cluster: PatroniCluster, node: Node) -> dict:
    """Patroni's configuration of *node* (YAML, written as the JSON it is a superset of)."""
    trust = ["local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]
    users = {"username": "postgres"}
    return {
        "scope": SCOPE, "name": node.name,
        "restapi": {"listen": f"127.0.0.1:{node.api_port}", "connect_address": f"127.0.0.1:{node.api_port}"},
        "etcd3": {"hosts": [f"127.0.0.1:{cluster.etcd_port}"]},
        "bootstrap": {
            "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "primary_start_timeout": 0, "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                   "parameters": {"wal_log_hints": "on", "shared_buffers": "16MB",
                                                  "max_connections": 100, "fsync": "off"}}},
            "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{node.port}", "connect_address": f"127.0.0.1:{node.port}",
            "data_dir": str(node.postgres.data), "bin_dir": str(PG_BIN),
            "pgpass": str(cluster.root / f"{node.name}.pgpass"),
            "authentication": {"superuser": users, "replication": users, "rewind": users},
            "pg_hba": trust,
            "parameters": {"unix_socket_directories": str(cluster.root)},
        },
    }


def start_etcd(cluster: PatroniCluster) -> None:
    peer = free_port()
    cluster.etcd_port = free_port()
    client = f"http://127.0.0.1:{cluster.etcd_port}"
    with open(cluster.root / "etcd.log", "w") as log:
        cluster.etcd = subprocess.Popen(
            ["etcd", "--name", "etcd", "--data-dir", str(cluster.root / "etcd"), "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"etcd=http://127.0.0.1:{peer}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def answers() -> bool:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{client}/health", timeout=1) as health:
                return json.load(health).get("health") == "true"
        return False

    wait_for(answers, 30, "etcd answering")


def start_node(cluster: PatroniCluster, node: Node) -> None:
    """Start *node*'s Patroni: the first initialises the cluster, the others copy it (pg_basebackup)."""
    node.config.write_text(json.dumps(node_config(cluster, node), indent=1))
    if os.geteuid() == 0:
        shutil.chown(node.config, "postgres")
    with open(cluster.root / f"{node.name}.patroni.log", "w") as log:
        node.process = subprocess.Popen(as_postgres("patroni", str(node.config)), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def running(size: int = 2) -> Iterator[PatroniCluster]:
    """A Patroni cluster of *size* nodes with a database `DATABASE`, healthy; stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pc-patroni-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    root.chmod(0o700)
    nodes = [Node(Cluster(root, f"node{n}", free_port()), free_port()) for n in range(1, size + 1)]
    cluster = PatroniCluster(root, nodes)
    try:
        start_etcd(cluster)
        start_node(cluster, nodes[0])
        wait_for(cluster.leader, 60, f"node1 leading: {cluster.log(nodes[0])}")
        for node in nodes[1:]:
            start_node(cluster, node)
        cluster.wait_healthy()
        nodes[0].postgres.sql(f"CREATE DATABASE {DATABASE}")
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(root, ignore_errors=True)


HAPROXY = """\
defaults
    mode tcp
    timeout connect 3s
    timeout client 30m
    timeout server 30m
    timeout check 2s
listen primary
    bind 127.0.0.1:{port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""


@contextlib.contextmanager
def haproxy_in_front(cluster: PatroniCluster) -> Iterator[int]:
    """HAProxy on a free port in front of the cluster's primary, as Patroni's documentation deploys it: each node's
    REST API (``/primary``: 200 on the leader alone) says where connections go, and those to a node that is no
    longer the primary are cut. Yields the port."""
    port = free_port()
    servers = "\n".join(f"    server {node.name} 127.0.0.1:{node.port} check port {node.api_port}"
                        for node in cluster.nodes)
    config = cluster.root / "haproxy.cfg"
    config.write_text(HAPROXY.format(port=port, servers=servers))
    with open(cluster.root / "haproxy.log", "w") as log:
        process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        leader = cluster.wait_healthy()
        wait_for(lambda: leader.postgres.sql("SELECT 1") and _answers(port), 30, "HAProxy listening")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def stop(cluster: PatroniCluster) -> None:
    """Stop every Patroni (each stops its PostgreSQL), then kill what is left of them, and etcd."""
    patronis = [node.process for node in cluster.nodes if node.process is not None]
    for process in patronis:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in patronis:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for node in cluster.nodes:
        pid = node.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if cluster.etcd is not None:
        cluster.etcd.terminate()
        try:
            cluster.etcd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cluster.etcd.kill()
            cluster.etcd.wait()
