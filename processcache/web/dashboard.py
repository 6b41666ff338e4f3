"""``processcache serve``: the report's views live and read-only, a `Site` on the `processcache.web.http` server.

Pages: ``/`` the overview (reloaded by the browser every ``refresh``
seconds), ``/job/GROUP/JOB`` a job's card, runs and cache keys (their
values only with ``show_values``), ``/run/ID`` a run whole with its logs.
The database is opened read-only and kept between requests, opened anew
after any failure. The server (`processcache.web.http`) answers many
browsers at once, each request within a deadline, checks the Host header
on a loopback bind and, with a token, that every request carries it
(``?token=``, then a cookie carries it to the links, or ``Authorization:
Bearer``) before a page is read. Every error is one line, on a page, with
the database password masked.
"""

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from ..errors import ProcessCacheError
from ..options import DEFAULT_GRACE
from .gather import gather
from .http import Answer, NotFound, ReadingSite, Request
from .pages import job_page, overview_page, run_page
from .parts import CONTENT_SECURITY_POLICY, document, text

if TYPE_CHECKING:
    from ..storage import Database

#: Runs listed on a job's page.
JOB_RUNS = 100
#: The cookie that carries the token to the links of a page opened with ?token=.
COOKIE = "processcache_token"
_HTML = "text/html; charset=utf-8"
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


class Settings(NamedTuple):
    """What ``serve`` was told: the database, the scope, the refresh, values shown or not, grace, skipped copies
    shown or not (a person reads the runs that did work first)."""

    url: str | None
    group: str | None = None
    refresh: int = 30
    show_values: bool = False
    grace: float = DEFAULT_GRACE
    skipped: bool = False


class Dashboard(ReadingSite):
    """The pages, read from one kept read-only connection (opened at the first request, again after a failure)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.url)
        self.settings = settings

    def answer(self, request: Request) -> Answer:
        return Answer(200, self.page(request.path), _HTML, _HEADERS)

    def page(self, path: str) -> str:
        """The HTML of *path*; NotFound for a path, job or run that is not there."""
        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        return self.reading(lambda db: self._route(db, parts))

    def refusal(self, status: int, line: str) -> Answer:
        return Answer(status, _error_page(line), _HTML, _HEADERS)

    def failed(self, request: Request) -> str:
        return request.path

    def _route(self, db: "Database", parts: list[str]) -> str:
        refresh = self.settings.refresh or None
        if not parts:
            return overview_page(gather(db, self.settings.group, self.settings.grace, skipped=self.settings.skipped),
                                 links=True, refresh=refresh)
        if parts[0] == "job" and len(parts) == 3:
            return self._job(db, f"{parts[1]}/{parts[2]}", refresh)
        if parts[0] == "run" and len(parts) == 2 and parts[1].isdigit():
            return self._run(db, int(parts[1]), refresh)
        raise NotFound(f"no page /{'/'.join(parts)} here: the jobs are at /")

    def _job(self, db: "Database", name: str, refresh: int | None) -> str:
        try:
            job_id = db.history.job_id(name)
        except ProcessCacheError as exc:
            raise NotFound(str(exc)) from None
        found = gather(db, name.partition("/")[0], self.settings.grace, job=name, skipped=self.settings.skipped).jobs
        view = found[0] if found else None
        if view is None:
            raise NotFound(f"{name} is retired: `processcache jobs --all` lists it")
        values: dict[str, list] | None = None
        if self.settings.show_values:
            values = {}
            for entry in db.cache.entries(job_id, None):
                values.setdefault(entry.key, []).append(entry.value)
        runs = db.list_runs(name, limit=JOB_RUNS, skipped=self.settings.skipped)
        return job_page(view, runs, db.cache.key_stats(job_id, None), values, refresh)

    def _run(self, db: "Database", run_id: int, refresh: int | None) -> str:
        try:
            detail = db.run(run_id)
        except ProcessCacheError as exc:
            raise NotFound(str(exc)) from None
        if self.settings.group is not None and detail.run.group != self.settings.group:
            raise NotFound(f"no run {run_id} in group {self.settings.group}")
        mask = db.config.mask
        run = detail.run._replace(error=detail.run.error and mask(detail.run.error),
                                  traceback=detail.run.traceback and mask(detail.run.traceback))
        logs = [log._replace(message=mask(log.message)) for log in detail.logs]
        return run_page(detail.__class__(run, detail.exit_code, logs, detail.attempts),
                        refresh if run.status == "running" else None)


def _error_page(line: str) -> str:
    return document("processcache: error", f'<p><a href="/">all jobs</a></p><p>{text(line)}</p>')
