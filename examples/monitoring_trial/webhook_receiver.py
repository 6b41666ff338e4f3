"""The monitoring trial's webhook (docs/trials/monitoring.rst): a plain HTTP server that keeps every POST.

    python webhook_receiver.py PORT FILE

Listens on 127.0.0.1:PORT and appends one JSON line per POST to FILE:
when it came (UTC), the path it was sent to (a real webhook's token is
there), and the JSON body. It answers 200 to every POST, as a working
chat or incident service does, and logs nothing else, so FILE is all it
received.
"""

import json
import sys
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_writing_to(path: str) -> type[BaseHTTPRequestHandler]:
    """A request handler that appends each POST to the file at *path*."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(data)
            except ValueError:  # kept as text, so a malformed body shows as it came
                body = data.decode(errors="replace")
            record = {"received_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "path": self.path, "content_type": self.headers.get("Content-Type"), "body": body}
            with open(path, "a", encoding="utf-8") as file:
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # FILE is the record; the access log would only repeat it

    return Handler


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_writing_to(path))
    print(f"webhook receiver on http://127.0.0.1:{port}, writing to {path}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
