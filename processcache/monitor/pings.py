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

``check --ping`` (`pinged`) speaks the same protocols for the checker
itself: a ping each time it has read and judged every job, whatever it
found, and a failure (healthchecks.io's ``/fail``) when it could not, so
that an outside service notices a checker or a database that is down.
"""

import contextlib
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from ..errors import one_line
from ..records import RunRecord
from .channels import DEFAULT_TIMEOUT, post

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
        self.end(run.ok, exit_code, output or (run.error or ""))

    def end(self, ok: bool, exit_code: int | None, output: str) -> None:
        """Ping success or failure (with *exit_code*; healthchecks.io's ``/fail`` without one), *output*'s end
        as the body, and wait for the pings at most the timeout: the process may exit next."""
        if self.cronitor:
            state = "complete" if ok else "fail"
            code = "" if exit_code is None else f"&status_code={exit_code}"
            self._send(f"{self.url}?state={state}&series={self.series}{code}"
                       f"&message={quote(output[-CRONITOR_MESSAGE:])}", None)
        else:
            where = self.url if ok else f"{self.url}/{'fail' if exit_code is None else exit_code}"
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


@contextlib.contextmanager
def pinged(url: str | None) -> Iterator[None]:
    """Ping *url* when the block completes, and its failure, with the error's line, when it raises (and let
    the error go on): ``check --ping``, a dead man's switch on the checker. None pings nothing."""
    if url is None:
        yield
        return
    try:
        yield
    except Exception as exc:
        Pinger(url).end(False, None, one_line(exc))
        raise
    Pinger(url).end(True, None, "")
