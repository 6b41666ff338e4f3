"""The monitoring trial's mail server (docs/trials/monitoring.rst): a plain SMTP server that keeps every message.

    python smtp_receiver.py PORT FILE

Listens on 127.0.0.1:PORT, speaks the part of SMTP that smtplib uses
without TLS or login (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), and
appends each message to FILE as it came (headers and body), after a line
``=== <UTC time> MAIL FROM:<...> RCPT TO:<...>`` with its envelope. It
delivers nothing further.
"""

import socketserver
import sys
from datetime import datetime, timezone


def handler_writing_to(path: str) -> type[socketserver.StreamRequestHandler]:
    """An SMTP session handler that appends each message to the file at *path*."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            sender: str = ""
            recipients: list[str] = []
            self.say("220 127.0.0.1 trial SMTP")
            while line := self.rfile.readline():
                command = line.decode(errors="replace").strip()
                verb = command.split(" ")[0].upper()
                if verb == "EHLO":
                    self.say("250 127.0.0.1")
                elif verb == "MAIL":
                    sender, recipients = command[len("MAIL FROM:"):], []
                    self.say("250 ok")
                elif verb == "RCPT":
                    recipients.append(command[len("RCPT TO:"):])
                    self.say("250 ok")
                elif verb == "DATA":
                    self.say("354 end with <CRLF>.<CRLF>")
                    self.keep(sender, recipients, self.message())
                    self.say("250 queued")
                elif verb == "QUIT":
                    self.say("221 bye")
                    return
                else:  # HELO, RSET, NOOP
                    self.say("250 ok")

        def message(self) -> bytes:
            """The DATA lines up to the lone dot, with SMTP's dot-stuffing undone."""
            lines = []
            while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                lines.append(line[1:] if line.startswith(b"..") else line)
            return b"".join(lines).replace(b"\r\n", b"\n")

        def keep(self, sender: str, recipients: list[str], message: bytes) -> None:
            when = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with open(path, "ab") as file:
                file.write(f"=== {when} MAIL FROM:{sender} RCPT TO:{','.join(recipients)}\n".encode())
                file.write(message.rstrip(b"\n") + b"\n")

        def say(self, text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

    return Handler


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), handler_writing_to(path))
    print(f"SMTP receiver on 127.0.0.1:{port}, writing to {path}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
