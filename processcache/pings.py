"""Per-run pings to healthchecks.io or Cronitor, for farms that keep those dashboards (a job's ``ping=`` URL).

A run that does its work pings when it starts and when it ends: success,
or failure with the exit code ``run``/``exec`` gives it, and the end of its
output as the body (healthchecks.io shows it in the check's log). A run
skipped by its lock or its slot pings nothing: it did no work, and the
run that does pings for it.

Protocols, by URL:

- healthchecks.io (``https://hc-ping.com/<uuid>``, or any URL with the
  prefix ``hc+``, for a self-hosted one): ``/start``, then the URL itself
  or ``/<exit code>``, each with ``?rid=`` (one id per run, so the service
  pairs start and end and measures the run);
- Cronitor (a host ending in ``cronitor.link`` or ``cronitor.io``, or the
  prefix ``cronitor+``): ``?state=run``, then ``state=complete`` or
  ``state=fail`` with ``status_code``, ``series`` and the output's end as
  ``message``.

Pings are sent from a background thread; a service that is slow or down
never holds a run up for more than `channels.DEFAULT_TIMEOUT` (5 s) at its
end, and never fails it: a ping that did not go is a warning on stderr.
"""

import threading
import uuid
from urllib.parse import quote, urlsplit

from .channels import DEFAULT_TIMEOUT, post
from .records import RunRecord

#: The most of a run's output a ping carries (healthchecks.io keeps 100 KB of a ping's body).
BODY_BYTES = 100_000
#: Cronitor's message parameter is short.
CRONITOR_MESSAGE = 2000


class Pinger:
    """The pings of one run: `start` when its work begins, `finish` when it has ended."""

    def __init__(self, url: str) -> None:
        self.cronitor = url.startswith("cronitor+") or (urlsplit(url.removeprefix("hc+")).hostname or "").endswith(
            ("cronitor.link", "cronitor.io"))
        self.url = url.removeprefix("cronitor+").removeprefix("hc+").rstrip("/")
        self.series = str(uuid.uuid4())
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.cronitor:
            self._send(f"{self.url}?state=run&series={self.series}", None)
        else:
            self._send(f"{self.url}/start?rid={self.series}", b"")

    def finish(self, run: RunRecord, exit_code: int, output: str) -> None:
        """Ping how *run* ended, and wait for the pings at most the timeout: the process may exit next."""
        if self.cronitor:
            state = "complete" if run.ok else "fail"
            message = quote(output[-CRONITOR_MESSAGE:] or (run.error or ""))
            self._send(f"{self.url}?state={state}&series={self.series}&status_code={exit_code}"
                       f"&message={message}", None)
        else:
            where = self.url if run.ok else f"{self.url}/{exit_code}"
            self._send(f"{where}?rid={self.series}", output.encode()[-BODY_BYTES:])
        if self._thread is not None:
            self._thread.join(DEFAULT_TIMEOUT)

    def _send(self, url: str, body: bytes | None) -> None:
        """Send after the previous ping (in order: a start never arrives after its end), from a thread."""
        previous = self._thread

        def ping() -> None:
            if previous is not None:
                previous.join(DEFAULT_TIMEOUT)
            try:
                post(url, body, "text/plain; charset=utf-8", DEFAULT_TIMEOUT)
            except ConnectionError as exc:
                import logging

                logging.getLogger("processcache.ping").warning("processcache: a ping was not sent: %s", exc)

        self._thread = threading.Thread(target=ping, name="processcache-ping", daemon=True)
        self._thread.start()
