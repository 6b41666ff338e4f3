"""Real local servers for the alert tests: an HTTP server that records what is POSTed, and a small SMTP server.

Both run in daemon threads on 127.0.0.1 (ephemeral ports) and keep what
they received in memory. The HTTP server can be told to answer 500 or to
stall (answer nothing for a while), as a channel that is down or slow.
"""

import json
import socketserver
import threading
import time
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """POSTs (and GETs) received, as (path, JSON or text body); `mode` is ``ok``, ``fail`` or ``stall``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, object]] = []
        self.mode = "ok"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                owner._answer(self, data)

            def do_GET(self) -> None:
                owner._answer(self, b"")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _answer(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        if self.mode == "stall":
            time.sleep(30)
            return
        if self.mode == "ok":
            try:
                body: object = json.loads(data) if data else None
            except ValueError:
                body = data.decode(errors="replace")
            self.received.append((handler.path, body))
        handler.send_response(200 if self.mode == "ok" else 500)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Mailbox:
    """A minimal SMTP server (HELO/EHLO, MAIL, RCPT, DATA, QUIT, RSET, NOOP): the messages it took."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self._say("220 localhost test SMTP")
                while line := self.rfile.readline():
                    verb = line.decode(errors="replace").strip().split(" ")[0].upper()
                    if verb == "DATA":
                        self._say("354 end with .")
                        owner.messages.append(message_from_bytes(self._data(), policy=policy.default))
                        self._say("250 queued")
                    elif verb == "QUIT":
                        self._say("221 bye")
                        return
                    elif verb == "EHLO":
                        self._say("250 localhost")
                    else:
                        self._say("250 ok")

            def _data(self) -> bytes:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                return b"".join(lines)

            def _say(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"smtp://127.0.0.1:{self._server.server_address[1]}?to=ops@example.org&from=cron@example.org"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
