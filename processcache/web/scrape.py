"""What ``metrics --serve`` answers: ``/metrics`` read from the database at each scrape, ``/`` where they are.

A `Scrapes` site on the `http` server: the connection is kept between
scrapes (opening one costs more than reading the metrics); a database that
is down when the server starts, or goes away, makes scrapes fail (HTTP
500, one line, its password masked) until it is back, not the server.
The format and the families are `processcache.monitor.metrics`'s.
"""

from .http import Answer, NotFound, ReadingSite, Request


class Scrapes(ReadingSite):
    """GET /metrics: every job's metrics now (`processcache.monitor.metrics.exposition`, judged with *grace*)."""

    def __init__(self, url: str | None, grace: float) -> None:
        super().__init__(url)
        self.grace = grace

    def answer(self, request: Request) -> Answer:
        from ..monitor.metrics import CONTENT_TYPE, exposition

        if request.path == "/metrics":
            return Answer(200, self.reading(lambda db: exposition(db, self.grace)), CONTENT_TYPE)
        if request.path == "/":
            return Answer(200, "processcache metrics: Prometheus scrapes /metrics\n")
        raise NotFound(f"no {request.path} here: the metrics are at /metrics")

    def failed(self, request: Request) -> str:
        return "a scrape failed"
