"""The pieces every page is made of: the document around it, times, a run strip, a duration chart.

Everything is inline (CSS, SVG; no font, image or script from elsewhere),
so a report opens from an e-mail attachment or an air-gapped host. Every
text that comes from jobs goes through `text` (html.escape, quotes too).
The page reads whole without JavaScript; one small script, allowed by its
hash in the page's Content-Security-Policy and nothing else, shows times
in the browser's own zone on a switch. That policy also keeps any script
a job's text might smuggle past the escaping from running.
"""

import base64
import functools
import hashlib
from datetime import datetime, timezone
from html import escape

from ..durations import format_duration
from ..records import RunMark, RunRecord

#: A short text label per status: colour is never the only sign (colour-blind readers, printouts).
LABELS = {"running": "R", "succeeded": "ok", "failed": "F", "timed-out": "T", "skipped": "S", "lost": "L",
          "terminated": "X"}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fff}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:0}
a{color:#0645ad}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}
th{border-bottom:1px solid #999}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;overflow:auto}
.summary{display:flex;gap:1em;list-style:none;padding:0}.summary li{border:1px solid #ccc;padding:.3em .8em}
.summary b{font-size:1.4em;margin-right:.3em}
.job{border:1px solid #ccc;border-left:6px solid #2a2;margin:.6em 0;padding:.4em .8em}
.job.failing{border-left-color:#c22}.job.overdue{border-left-color:#d90}.job.running{border-left-color:#18a}
tr.healthy td:first-child{border-left:6px solid #2a2}tr.failing td:first-child{border-left:6px solid #c22}
tr.overdue td:first-child{border-left:6px solid #d90}tr.running td:first-child{border-left:6px solid #18a}
summary h2{display:inline}
.state{font-weight:bold;text-transform:uppercase;font-size:.85em;margin-left:.6em}
.strip{display:inline-flex;gap:1px;list-style:none;padding:0;margin:0;vertical-align:middle}
.strip li{font:11px monospace;min-width:1.3em;text-align:center;color:#fff;padding:1px}.strip a{color:#fff}
.strip li.late{outline:2px dotted #000;outline-offset:-2px}
.s-succeeded{background:#2a2;fill:#2a2}.s-failed,.s-lost,.s-terminated,.s-timed-out{background:#c22;fill:#c22}
.s-skipped{background:#999;fill:#999}.s-running{background:#18a;fill:#18a}
.muted{color:#666}.legend span{margin-right:.8em}
"""
#: Shows every time in the browser's zone, or back in UTC: the page's only script, optional.
_SCRIPT = (
    "(function(){var b=document.getElementById('tz');if(!b)return;b.hidden=false;var local=false;"
    "b.onclick=function(){local=!local;b.textContent=local?'Show UTC':'Show local times';"
    "document.querySelectorAll('time[datetime]').forEach(function(t){"
    "if(!t.dataset.utc)t.dataset.utc=t.textContent;"
    "t.textContent=local?new Date(t.getAttribute('datetime')).toLocaleString():t.dataset.utc;});};"
    "document.querySelectorAll('time[datetime]').forEach(function(t){"
    "t.title='your local time: '+new Date(t.getAttribute('datetime')).toLocaleString();});})();")
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
#: What a page may load: its own inline style and the one script above; nothing from anywhere.
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}';"
                           " img-src data:; form-action 'none'; base-uri 'none'")


def text(value: object) -> str:
    """Any value as HTML text, escaped: job names, log messages, tracebacks and cache keys come from jobs."""
    return escape("" if value is None else str(value), quote=True)


def document(title: str, body: str, refresh: int | None = None) -> str:
    """A whole HTML page around *body* (already HTML); *refresh*: reload every so many seconds."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f"<title>{text(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n"
            f'<p><button id="tz" type="button" hidden>Show local times</button></p>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def when(moment: datetime | None) -> str:
    """A time in UTC, its local time (this machine's zone; the browser's with the script) on hover."""
    if moment is None:
        return '<span class="muted">-</span>'
    utc = moment.astimezone(timezone.utc)
    local = utc.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f'<time datetime="{utc.strftime("%Y-%m-%dT%H:%M:%SZ")}" title="local time: {text(local)}">'
            f'{utc.strftime("%Y-%m-%d %H:%M:%S")} UTC</time>')


def size(count: int) -> str:
    """A number of bytes as people read it: ``512 B``, ``3.1 KiB``, ``2.0 MiB``."""
    amount, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            break
        amount /= 1024
    return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"


def run_title(run: RunMark | RunRecord) -> str:
    """What hovering over a run says: its id, status, start (UTC, to the minute) and duration; short, as a
    report holds thousands. HTML already: the status escaped."""
    started = str(run.started_at.astimezone(timezone.utc))[:16]  # "2026-11-26 09:00", faster than strftime
    late = ", recorded late" if run.late else ""
    return f"run {run.id} {_status(run.status)[0]} {started} UTC {format_duration(run.duration)}{late}"


@functools.lru_cache(maxsize=64)
def _status(status: str) -> tuple[str, str]:
    """A status as HTML text, and its cell's label (a strip escapes each of thousands of runs' once)."""
    return text(status), text(LABELS.get(status, status[:1].upper()))


def strip(runs: list[RunMark] | list[RunRecord], link: str | None = None) -> str:
    """The runs oldest to newest as labelled cells coloured by status; *link* a format with {id}, or None."""
    cells = []
    for run in reversed(runs):
        status, label = _status(run.status)
        inner = f'<a href="{text(link.format(id=run.id))}">{label}</a>' if link else label
        late = " late" if run.late else ""
        cells.append(f'<li class="s-{status}{late}" title="{run_title(run)}">{inner}</li>')
    return f'<ol class="strip" aria-label="last {len(runs)} runs, oldest first">{"".join(cells)}</ol>'


def legend() -> str:
    """What each label of a strip means."""
    items = "".join(f'<span><b class="s-{status}" style="color:#fff;padding:0 3px">{label}</b> {status}</span>'
                    for status, label in LABELS.items())
    late = '<span><b class="late" style="outline:2px dotted #000;padding:0 3px">&nbsp;</b> recorded late</span>'
    return f'<p class="legend muted">{items}{late}</p>'


def chart(runs: list[RunMark], height: int = 36, bar: int = 5) -> str:
    """The durations of the ended runs, oldest to newest, as an inline SVG of bars coloured by status.

    One path per status, not one element per bar: a report of 200 jobs
    draws some 20,000 bars. The strip beside it says each run's duration.
    """
    ended = [run for run in reversed(runs) if run.duration is not None]
    if not ended:
        return '<span class="muted">no run ended</span>'
    longest = max(run.duration or 0.0 for run in ended) or 1.0
    paths: dict[str, list[str]] = {}
    for i, run in enumerate(ended):
        tall = max(1, round((run.duration or 0.0) / longest * height))
        paths.setdefault(run.status, []).append(f"M{i * (bar + 1)} {height}v-{tall}h{bar}v{tall}z")
    drawn = "".join(f'<path class="s-{text(status)}" d="{"".join(parts)}"/>' for status, parts in paths.items())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(ended) * (bar + 1)}" height="{height}" role="img"'
            f' aria-label="durations of the last {len(ended)} runs, longest {format_duration(longest)}">'
            f'{drawn}</svg> <span class="muted">longest {format_duration(longest)}</span>')
