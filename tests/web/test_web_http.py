"""`processcache.web.http`: the one server of `serve` and `metrics --serve`, hardened once.

Real servers (the commands run as processes, or the library's server in
this one) on real sockets: many slow clients at once, a request cut off at
its deadline, the Host check that defeats DNS rebinding, the token rule of
both commands, and the token checked before the database is.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cli_helpers import cli
from tcpproxy import Proxy

import processcache
from processcache.web.http import Answer, Request, Server, Site

TOKEN = "t0ken-of-the-test"


def seed(url: str) -> None:
    processcache.Registry().job("ops", "nightly")(lambda ctx: None).run(database=url, machine="web1")


@contextlib.contextmanager
def served(*args: str, env: dict | None = None) -> Iterator[str]:
    """`processcache ARGS` serving on a free port: its base URL (http://127.0.0.1:PORT), then SIGTERM, exit 0."""
    environ = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    with subprocess.Popen([sys.executable, "-m", "processcache", *args], stderr=subprocess.PIPE, text=True,
                          env={**environ, **(env or {})}) as process:
        try:
            line = process.stderr.readline()
            found = re.search(r"serving (http://[\d.]+:\d+)/", line)
            assert found, line + process.stderr.read()
            yield found[1]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0


def dashboard(url: str, env: dict | None = None) -> contextlib.AbstractContextManager[str]:
    return served("serve", "--bind", "127.0.0.1:0", "-d", url, env=env)


def exporter(url: str, env: dict | None = None) -> contextlib.AbstractContextManager[str]:
    return served("metrics", "--serve", "127.0.0.1:0", "-d", url, env=env)


def get(url: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, str]:
    """Status and body of a GET, an error's too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def timed_get(url: str, headers: dict | None = None) -> tuple[float, int]:
    started = time.monotonic()
    status, _ = get(url, headers)
    return time.monotonic() - started, status


def address_of(base: str) -> tuple[str, int]:
    host, _, port = base.removeprefix("http://").rpartition(":")
    return host, int(port)


class Trickler(threading.Thread):
    """A client that sends a request one header line every *every* seconds and never ends it.

    *cut* is how long the server let it send before it answered or closed, *said* what it answered.
    """

    def __init__(self, base: str, every: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.every, self.stop = address_of(base), every, stop
        self.cut: float | None = None
        self.said = b""

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(self.address, timeout=30) as client:
            client.sendall(f"GET / HTTP/1.1\r\nHost: {self.address[0]}:{self.address[1]}\r\n".encode())
            client.settimeout(self.every)
            for n in range(1000):
                try:
                    said = client.recv(4096)
                except TimeoutError:  # nothing from the server yet: one more line
                    if self.stop.is_set():
                        return
                    try:
                        client.sendall(f"X-Slow-{n}: still here\r\n".encode())
                    except OSError:  # the server closed the connection
                        break
                    continue
                except OSError:
                    break
                if not said:
                    break
                self.said += said
            self.cut = time.monotonic() - started


class Plain(Site):
    """A site of one page that needs no database."""

    def answer(self, request: Request) -> Answer:
        return Answer(200, "hello\n")


@contextlib.contextmanager
def in_process(**options) -> Iterator[str]:
    """The library's server of `Plain` in a thread of this process: its base URL."""
    server = Server(socket.AF_INET, ("127.0.0.1", 0), Plain(), **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.close()


@pytest.mark.slow
def test_fifty_clients_trickling_their_headers_neither_delay_the_dashboard_nor_a_scrape_and_are_cut_at_10s(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    stop = threading.Event()
    with dashboard(url) as page, exporter(url) as metrics:
        slow = [Trickler(base, 1.0, stop) for base in (page, metrics) for _ in range(25)]
        started = time.monotonic()
        for client in slow:
            client.start()
        time.sleep(1.5)  # every slow client connected and trickling
        times = []
        while time.monotonic() - started < 8:
            times += [timed_get(page + "/"), timed_get(metrics + "/metrics")]
            time.sleep(0.5)
        for client in slow:
            client.join(timeout=15)
        stop.set()
    assert [status for _, status in times] == [200] * len(times)
    assert max(seconds for seconds, _ in times) < 2.0, times
    cuts = sorted(client.cut or 0.0 for client in slow)
    assert 9.5 < cuts[0] and cuts[-1] < 13.0, cuts  # the whole request's deadline, 10 s, not 10 s per line
    assert all(client.said.startswith(b"HTTP/1.0 408 ") for client in slow)


def test_a_client_trickling_its_headers_is_cut_off_at_the_deadline_with_408_in_one_line():
    stop = threading.Event()
    with in_process(deadline=2.0) as base:
        trickler, silent = Trickler(base, 0.5, stop), Trickler(base, 30.0, stop)
        for client in (trickler, silent):
            client.start()
        for client in (trickler, silent):
            client.join(timeout=10)
        assert get(base + "/") == (200, "hello\n")
    stop.set()
    for client in (trickler, silent):
        assert client.cut is not None and 1.9 < client.cut < 3.5, client.cut
        head, _, body = client.said.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 408 ")
        assert body == b"the request took more than 2 s to arrive: send it whole\n"


def test_headers_over_64_kib_are_refused_with_431_and_a_method_not_served_with_501():
    with in_process() as base, socket.create_connection(address_of(base), timeout=10) as client:
        sent = b"GET / HTTP/1.0\r\n" + (b"X-Big: " + b"x" * 1000 + b"\r\n") * 70
        client.sendall(sent[:64 * 1024])  # all of it read: no reset for unread bytes before the answer is read
        said = b"".join(iter(lambda: client.recv(4096), b""))
        assert said.startswith(b"HTTP/1.0 431 ") and said.endswith(b"over 64 KiB\n"), said
    with in_process() as base:
        request = urllib.request.Request(base + "/", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 501 and refused.value.read() == b"Unsupported method ('POST')\n"


def test_a_client_beyond_the_bound_is_answered_503_at_once():
    with in_process(clients=2) as base:
        held = [socket.create_connection(address_of(base), timeout=10) for _ in range(2)]
        time.sleep(0.2)
        started = time.monotonic()
        status, body = get(base + "/")
        assert status == 503 and time.monotonic() - started < 1.0 and len(body.splitlines()) == 1, body
        for client in held:
            client.close()
        time.sleep(0.2)
        assert get(base + "/") == (200, "hello\n")


def test_a_loopback_server_answers_only_its_own_host_names(tmp_path):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 says Host: evil.example."""
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    with dashboard(url) as page, exporter(url) as metrics:
        for base, path in ((page, "/"), (metrics, "/metrics")):
            port = address_of(base)[1]
            for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}", f"127.0.0.2:{port}",
                         f"localhost.evil.example:{port}"):
                status, body = get(base + path, {"Host": host})
                assert status == 421 and "answers only as http://127.0.0.1:" in body, (host, status, body)
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
                assert get(base + path, {"Host": host})[0] == 200, host
        assert "<html" in get(page + "/", {"Host": "evil.example"})[1].lower()  # the dashboard's error is a page
        with urllib.request.urlopen(page + "/?token=x%0d%0aX-Injected:%201", timeout=30) as answer:
            assert "Set-Cookie" not in answer.headers and "X-Injected" not in answer.headers  # no token: no cookie


def test_metrics_serve_beyond_this_machine_needs_a_token_as_serve_does_and_checks_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    seed(url)
    for command in (["metrics", "--serve"], ["serve", "--bind"]):
        refused = cli(*command, "0.0.0.0:0", "-d", url)
        assert refused.returncode == 2 and "lets other machines in: give --token" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert cli("metrics", "-d", url, "--token", TOKEN).returncode == 2  # a token with nothing served: refused
    with served("metrics", "--serve", "0.0.0.0:0", "-d", url, env={"PROCESSCACHE_METRICS_TOKEN": TOKEN}) as base:
        base = base.replace("0.0.0.0", "127.0.0.1")
        assert get(base + "/metrics")[0] == 401
        assert get(base + "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        status, text = get(base + "/metrics", {"Authorization": f"Bearer {TOKEN}"})  # as Prometheus sends it
        assert status == 200 and "processcache_jobs 1" in text
        assert get(base + f"/metrics?token={TOKEN}")[0] == 200


def test_the_token_and_the_host_are_checked_before_the_database_is_touched(server_backend_url):
    """A request without the token is refused at once while the database hangs, and while another waits on it."""
    seed(server_backend_url)
    with Proxy.before(server_backend_url) as proxy:
        url = proxy.url(server_backend_url) + "?read_timeout=3s&retry_for=4s&connect_timeout=2"
        env = {"PROCESSCACHE_SERVE_TOKEN": TOKEN, "PROCESSCACHE_METRICS_TOKEN": TOKEN}
        with dashboard(url, env) as page, served("metrics", "--serve", "127.0.0.1:0", "-d", url,
                                                  "--token", TOKEN) as metrics:
            proxy.stall()
            waiting = [threading.Thread(target=get, args=(base + path, {"Authorization": f"Bearer {TOKEN}"}),
                                        daemon=True) for base, path in ((page, "/"), (metrics, "/metrics"))]
            for thread in waiting:  # each holds its server's database, which does not answer
                thread.start()
            time.sleep(0.5)
            for base, path in ((page, "/"), (metrics, "/metrics")):
                seconds, status = timed_get(base + path)
                assert status == 401 and seconds < 2.0, (base, status, seconds)
                seconds, status = timed_get(base + path, {"Host": "evil.example"})
                assert status == 421 and seconds < 2.0, (base, status, seconds)
            proxy.forward()
            for thread in waiting:
                thread.join(timeout=30)
