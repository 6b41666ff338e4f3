"""The pages: the overview (the static report, and the dashboard's front page), a job's page and a run's page.

Each function takes what `gather` (or the database) read and returns a
whole HTML document; `links` says whether job and run pages exist to link
to (the dashboard) or not (a report file stands alone).
"""

from urllib.parse import quote

from ..durations import format_duration
from ..records import KeyStats, LockRecord, RunDetail, RunRecord
from ..storage import behind
from .gather import JobView, Overview
from .parts import chart, document, legend, size, strip, text, when


def job_path(name: str) -> str:
    """The dashboard's address of the job ``group/job`` (each part quoted: names may hold any character)."""
    group, _, job = name.partition("/")
    return f"/job/{quote(group, safe='')}/{quote(job, safe='')}"


def overview_page(overview: Overview, links: bool = False, refresh: int | None = None) -> str:
    """The whole farm: the summary counts, the locks held, then every job, failing ones first: as cards, and
    one line each for those `gather` did not draw (a page of more than `CARDS` jobs)."""
    scope = f" (group {text(overview.group)})" if overview.group else ""
    body = [f"<h1>processcache: the farm at {when(overview.now)}{scope}</h1>",
            f'<p class="muted">database {text(overview.database)}{_standby(overview.lag)}</p>',
            _summary(overview.counts), legend(),
            _locks(overview.locks)]
    body += [job_section(job, links) for job in overview.jobs if job.card]
    body.append(_lines([job for job in overview.jobs if not job.card], overview.cards, links))
    if not overview.jobs:
        body.append("<p>No job in this database yet.</p>")
    return document(f"processcache: {overview.counts['failing']} failing, {overview.counts['overdue']} overdue",
                    "\n".join(body), refresh)


def _standby(lag: float | None) -> str:
    """What the page says of a standby it was read from: its data is as of its replay, this far behind."""
    if lag is None:
        return ""
    return f", a standby {text(behind(lag))} behind its primary"


def _lines(jobs: list[JobView], cards: int, links: bool) -> str:
    """The jobs not drawn as cards, one line each: state, problems, last run, next due time, cache."""
    if not jobs:
        return ""
    where = ("each job's page draws its runs" if links else
             "<code>processcache report --group GROUP</code> draws a group's, <code>processcache serve</code>"
             " each job's on its page")
    rows = "".join(f'<tr class="{job.state}" data-job="{text(job.name)}"><td>{_name(job, links)}</td>'
                   f'<td class="state">{job.state}</td><td>{text(", ".join(p.kind for p in job.problems))}</td>'
                   f"<td>{_last_run(job.summary.last_run)}</td><td>{text(len(job.summary.machines))}</td>"
                   f"<td>{_due(job)}</td><td>{job.cache_entries} entries, {size(job.cache_bytes)}</td></tr>"
                   for job in jobs)
    return (f'<h2 id="lines">{len(jobs)} more jobs, one line each</h2><p class="muted">A page of more than'
            f" {cards} jobs draws the runs of {cards // 2} at most, those failing, then overdue: {where}.</p>"
            "<table><tr><th>JOB</th><th>STATE</th><th>PROBLEMS</th><th>LAST RUN</th><th>MACHINES</th>"
            f"<th>NEXT DUE</th><th>CACHE</th></tr>{rows}</table>")


def _name(job: JobView, links: bool) -> str:
    return f'<a href="{text(job_path(job.name))}">{text(job.name)}</a>' if links else text(job.name)


def _last_run(run: RunRecord | None) -> str:
    if run is None:
        return '<span class="muted">never ran</span>'
    return f"{strip([run])} {when(run.started_at)} {format_duration(run.duration)}"


def _summary(counts: dict[str, int]) -> str:
    items = "".join(f'<li class="{name}" id="count-{name}"><b>{counts[name]}</b>{name}</li>'
                    for name in ("healthy", "failing", "overdue", "running"))
    return f'<ul class="summary" aria-label="jobs by state">{items}<li><b>{counts["jobs"]}</b>jobs</li></ul>'


#: Locks listed open above the jobs; more are folded (a click opens them), so the jobs in trouble come first.
OPEN_LOCKS = 10


def _locks(locks: list[LockRecord]) -> str:
    if not locks:
        return '<p class="muted">No lock is held now.</p>'
    rows = "".join(f"<tr><td>{text(lock.name)}</td><td>{text(lock.machine)}</td><td>{text(lock.pid)}</td>"
                   f"<td>{text(lock.run_id)}</td><td>{format_duration(lock.held_for)}</td>"
                   f"<td>{format_duration(lock.expires_in)}</td></tr>" for lock in locks)
    opened = " open" if len(locks) <= OPEN_LOCKS else ""
    held = "1 lock" if len(locks) == 1 else f"{len(locks)} locks"
    return (f'<details class="locks"{opened}><summary><h2>{held} held now</h2></summary>'
            "<table><tr><th>LOCK</th><th>MACHINE</th><th>PID</th><th>RUN</th><th>HELD FOR</th><th>LEASE LEFT</th>"
            f"</tr>{rows}</table></details>")


def job_section(job: JobView, links: bool = False) -> str:
    """One job's card: state, problems, next due time, cache, locks, each machine's strip and chart,
    and the last failure's error with its traceback folded."""
    parts = [f'<section class="job {job.state}" data-job="{text(job.name)}">',
             f'<h2>{_name(job, links)}<span class="state">{job.state}</span></h2>']
    parts += [f'<p class="problem"><b>{text(problem.kind)}</b>: {text(problem.detail)}</p>'
              for problem in job.problems]
    parts.append(f"<p>{_due(job)} · cache: {job.cache_entries} entries, {size(job.cache_bytes)}"
                 f"{_held(job.locks)}</p>")
    run_link = "/run/{id}" if links else None
    rows = "".join(f"<tr><td>{text(machine.machine)}</td><td>{strip(machine.runs, run_link)}</td>"
                   f"<td>{chart(machine.runs)}</td></tr>" for machine in job.machines)
    parts.append(f"<table>{rows}</table>" if rows else '<p class="muted">Never ran.</p>')
    if job.last_failure is not None:
        parts.append(_failure(job.last_failure, links))
    parts.append("</section>")
    return "\n".join(parts)


def _due(job: JobView) -> str:
    summary = job.summary
    rule = (f"schedule {text(summary.schedule)} ({text(summary.timezone or 'UTC')})" if summary.schedule
            else f"expected every {format_duration(summary.expect_every)}" if summary.expect_every else None)
    if rule is None:
        return '<span class="muted">no schedule or expect_every</span>'
    late = " <b>overdue</b>" if job.overdue else ""
    return f"{rule}, next due {when(job.next_due)}{late}"


def _held(locks: list[LockRecord]) -> str:
    return "".join(f" · lock held by {text(lock.machine)} (run {text(lock.run_id)})" for lock in locks)


def _failure(run: RunRecord, links: bool) -> str:
    number = f'<a href="/run/{run.id}">run {run.id}</a>' if links else f"run {run.id}"
    first = (run.error or run.status).splitlines()[0] if (run.error or run.status) else run.status
    trace = f"<pre>{text(run.traceback)}</pre>" if run.traceback else ""
    return (f'<details class="failure"><summary>Last failure: {number} on {text(run.machine)} at'
            f" {when(run.started_at)}: {text(first)}</summary><pre>{text(run.error)}</pre>{trace}</details>")


def job_page(job: JobView, runs: list[RunRecord], keys: list[KeyStats], values: dict[str, list] | None,
             refresh: int | None = None) -> str:
    """A job's page on the dashboard: its card, its runs, and its cache keys (values only when *values*)."""
    rows = "".join(f'<tr><td><a href="/run/{run.id}">{run.id}</a></td><td class="s-{text(run.status)}"'
                   f' style="color:#fff">{text(run.status)}</td><td>{text(run.machine)}</td>'
                   f"<td>{when(run.started_at)}</td><td>{format_duration(run.duration)}</td>"
                   f"<td>{text((run.error or '').splitlines()[0] if run.error else '')}</td></tr>" for run in runs)
    body = ['<p><a href="/">all jobs</a></p>', job_section(job, links=True),
            f"<h2>Last {len(runs)} runs</h2><table><tr><th>RUN</th><th>STATUS</th><th>MACHINE</th>"
            f"<th>STARTED</th><th>DURATION</th><th>ERROR</th></tr>{rows}</table>", _keys(keys, values)]
    return document(f"processcache: {job.name}", "\n".join(body), refresh)


def _keys(keys: list[KeyStats], values: dict[str, list] | None) -> str:
    if not keys:
        return "<h2>Cache</h2><p class=\"muted\">No live cache entry.</p>"
    rows = "".join(f"<tr><td>{text(key.key)}</td><td>{key.entries}</td><td>{size(key.size)}</td>"
                   f"<td>{when(key.newest)}</td>{_values(values, key.key)}</tr>" for key in keys)
    shown = "<th>VALUES</th>" if values is not None else ""
    return (f"<h2>Cache keys</h2><table><tr><th>KEY</th><th>ENTRIES</th><th>SIZE</th><th>NEWEST</th>{shown}</tr>"
            f"{rows}</table>")


def _values(values: dict[str, list] | None, key: str) -> str:
    if values is None:
        return ""
    return f"<td><pre>{text(chr(10).join(repr(value) for value in values.get(key, [])))}</pre></td>"


def run_page(detail: RunDetail, refresh: int | None = None) -> str:
    """One run whole: its record, error and traceback, attempts and logs."""
    run = detail.run
    fields = [("job", f'<a href="{text(job_path(run.name))}">{text(run.name)}</a>'),
              ("status", f'<span class="s-{text(run.status)}" style="color:#fff;padding:0 3px">'
                         f"{text(run.status)}</span>"),
              ("machine", text(run.machine)), ("pid", text(run.pid)), ("started", when(run.started_at)),
              ("finished", when(run.finished_at)), ("duration", format_duration(run.duration)),
              *([("waited for its lock", "now" if run.waiting else format_duration(run.waited))]
                if run.waited is not None else []),
              ("exit code", text(detail.exit_code)), ("attempts", text(run.attempts)),
              *([("recorded", "late: it ran while the database was down, kept in its machine's spool; its times"
                              " are that machine's clock")] if run.late else [])]
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in fields)
    body = [f'<p><a href="/">all jobs</a></p><h1>Run {run.id}</h1><table>{table}</table>']
    if run.error:
        body.append(f"<h2>Error</h2><pre>{text(run.error)}</pre>")
    if run.traceback:
        body.append(f'<details open class="failure"><summary>Traceback</summary><pre>{text(run.traceback)}</pre>'
                    "</details>")
    if detail.attempts:
        body.append("<h2>Attempts</h2><table>" + "".join(
            f"<tr><td>{attempt.number}</td><td>{text(attempt.status)}</td><td>{when(attempt.started_at)}</td>"
            f"<td>{format_duration(attempt.duration)}</td><td>{text(attempt.error)}</td></tr>"
            for attempt in detail.attempts) + "</table>")
    logs = "".join(f"<tr><td>{when(log.created_at)}</td><td>{text(log.type.value)}</td>"
                   f'<td><pre style="margin:0">{text(log.message)}</pre></td></tr>' for log in detail.logs)
    body.append(f"<h2>Logs</h2><table class=\"logs\">{logs}</table>" if logs else "<h2>Logs</h2><p>None.</p>")
    return document(f"processcache: run {run.id} of {run.name}", "\n".join(body), refresh)
