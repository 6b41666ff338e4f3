"""A small TCP proxy in front of a real database server, to fake the faults a farm meets.

``forward`` passes bytes both ways. ``stall`` keeps every socket open (and
accepts new ones) but passes nothing, like a hung server or a network that
drops packets without resetting: the client waits in the driver.
``cut(seconds)`` closes every connection and refuses new ones (the port is
closed) for *seconds*, then forwards again, like a server restart.

Everything runs in daemon threads whose loops wake at least every 0.1 s;
`close()` ends them, and so does the proxy's *lifetime* running out, so a
test that forgets it cannot leave a proxy behind.
"""

import select
import socket
import threading
import time
from urllib.parse import urlsplit

_TICK = 0.1


class Proxy:
    """A proxy on 127.0.0.1 (an ephemeral port) in front of *host*:*port*; a context manager."""

    def __init__(self, host: str, port: int, lifetime: float = 300.0) -> None:
        self.target = (host, port)
        self.mode = "forward"
        self._reopen_at = 0.0
        self._ends = time.monotonic() + lifetime
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    @classmethod
    def before(cls, url: str, **kwargs) -> "Proxy":
        """A proxy in front of the server a database URL names."""
        parts = urlsplit(url)
        default = 5432 if parts.scheme.startswith("postgres") else 3306
        return cls(parts.hostname, parts.port or default, **kwargs)

    def url(self, url: str) -> str:
        """*url* with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        return parts._replace(netloc=(userinfo + "@" if userinfo else "") + f"127.0.0.1:{self.port}").geturl()

    def forward(self) -> None:
        self.mode = "forward"

    def stall(self) -> None:
        self.mode = "stall"

    def cut(self, seconds: float) -> None:
        """Close every connection now and refuse new ones for *seconds*; then forward again."""
        self._reopen_at = time.monotonic() + seconds
        self.mode = "cut"
        self._close_pairs()

    def reopen(self) -> None:
        """End a cut now: the port listens again within a tick, and forwards."""
        self._reopen_at = 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _alive(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._ends

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _serve(self) -> None:
        try:
            while self._alive():
                if self.mode == "cut":
                    self._while_cut()
                    continue
                if select.select([self._listener], [], [], _TICK)[0]:
                    self._accept()
        finally:
            self._stop.set()
            if self._listener is not None:
                self._listener.close()
            self._close_pairs()

    def _while_cut(self) -> None:
        """Keep the port closed (connections are refused) until the cut ends, then listen again."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if time.monotonic() < self._reopen_at:
            time.sleep(min(_TICK, max(0.0, self._reopen_at - time.monotonic())))
            return
        self._listener = self._listen(self.port)
        self.mode = "forward"

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self.mode == "cut":
            client.close()
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        pair = (client, server)
        with self._lock:
            self._pairs.append(pair)
        for source, sink in (pair, pair[::-1]):
            threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(self, pair, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes from *source* to *sink* while forwarding; hold them while stalled."""
        sink.settimeout(5)
        try:
            while self._alive() and self._open(pair):
                if self.mode != "forward":
                    time.sleep(_TICK / 2)
                    continue
                if not select.select([source], [], [], _TICK)[0] or self.mode != "forward":
                    continue  # nothing came, or the proxy stalled while waiting for it
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):  # closed by cut() or by the other side
            pass
        finally:
            self._close_pair(pair)

    def _open(self, pair) -> bool:
        with self._lock:
            return pair in self._pairs

    def _close_pair(self, pair) -> None:
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.remove(pair)
        for sock in pair:
            _shut(sock)

    def _close_pairs(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
