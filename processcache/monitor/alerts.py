"""Alerts that fire on changes, not on every poll: what ``processcache check --notify`` does after it judged the jobs.

A job is *failing* when ``check`` finds it missed, overdue, lost or too long
(at once), or when its last run failed, timed out or was terminated and at
least ``alert_after`` runs in a row did (a flaky job with
``alert_after=3`` alerts at its third failure, not its first). ``late``
is reported by ``check`` but alerts no one. When a job goes from ok to
failing, one message goes to each channel; when it comes back, one more
("recovered after 3 failed runs"). Nothing is sent while it stays as it was,
however often ``check`` runs and on however many machines (`storage.alerts`
makes the change once), nor while it is muted (``processcache jobs mute``):
its state still follows the job, so a job that failed while muted and still
fails when the mute ends sends nothing more; one that recovers then does.

An incident is one, whatever it turns into: a job failing whose problem
changes kind (failed, then timed out; overdue, then failed; failing, then
flaky) sends nothing more, and its recovery comes when nothing is wrong
any more. A job that is ``flaky`` (its last run succeeded, but K of its
last N failed: its ``flaky`` option, 3 of 12 by default) alerts once when
it becomes so and recovers once when it is not; and a failing job stays
failing while a failed run counts up to its ``alert_after`` again, so no
"recovered" goes out while its runs still fail.

A channel that is down or slow never holds ``check`` up for more than its
timeout per message (5 s by default); the message stays queued and the
next ``check --notify`` tries again (`storage.alerts.RETRY_DELAYS`), which
``processcache alerts`` shows.

The database never holds a channel's URL, which may carry a token: a
message names its channel by a fingerprint and the masked URL
(`channels.stored_channel`), and goes out from a checker given that URL.
Machines that run ``check --notify`` upgrade together: a release before
this one cannot send such a message, and retries it until a newer checker
sends it or its retries run out.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from ..durations import format_duration
from ..errors import one_line
from ..masking import mask_channel
from ..records import JobSummary, Problem
from ..storage import RETRY_DELAYS, AlertState, AlertStore, Database
from . import channels
from .check import Verdict

#: Problems that come from a run's ending: these wait for ``alert_after`` failed runs in a row.
RUN_ENDINGS = ("failed", "timed-out", "terminated")
#: Problems ``check`` reports that alert no one.
NOT_ALERTED = ("late", "no-jobs")
#: Log lines of the run a message carries (its last ones).
LOG_TAIL = 20
#: Seconds a message may wait for a checker given its channel before it fails: as long as its retries take.
ORPHANED_AFTER = sum(RETRY_DELAYS)


@dataclass(frozen=True)
class Change:
    """A job whose alert state this checker changed: what it was, what it is, and the messages it queued."""

    job: str
    event: str  # "failing" or "recovered"
    kind: str | None
    detail: str | None
    muted: bool
    queued: int


@dataclass(frozen=True)
class Delivered:
    """One attempt to deliver a queued message: to which channel (masked), and the error if it failed."""

    delivery_id: int
    channel: str
    error: str | None


def notify(db: Database, verdicts: list[Verdict], urls: list[str]) -> tuple[list[Change], list[Delivered]]:
    """Change the alert states *verdicts* (``db.history.judge``, what ``check`` read) call for, queue their
    messages to *urls*, and deliver what is due.

    Returns the changes this checker made and the deliveries it tried
    (the new ones, and older ones due again): ``check`` says what it did,
    and what went wrong (a delivery's error) apart.
    """
    return update_states(db, verdicts, urls), deliver(db, urls)


def update_states(db: Database, verdicts: list[Verdict], urls: list[str]) -> list[Change]:
    """Compare each job's state with its alert row and change those that differ (each change made once).

    A job still failing writes only when more runs failed than its row
    says, so a check of a farm where hundreds of jobs keep failing writes
    for those that failed again since, not for every one.
    """
    store = db.alerts
    states, failures = store.states(), store.failures_in_a_row()
    changes = []
    for summary, problems, job_id in verdicts:
        count, _ = failures.get(job_id, (0, None))
        before = states.get(job_id)
        now = _state_of(job_id, summary, [p for p in problems if p.kind not in NOT_ALERTED], count, before)
        if before is not None and before.state == now.state:
            if now.state == "failing" and count > before.failures:
                store.note_failures(job_id, count)
            continue
        if before is None and now.state == "ok":
            store.change(None, now, [])  # the row a later change compares with
            continue
        event = "failing" if now.state == "failing" else "recovered"
        muted = before is not None and before.muted_for is not None
        body = message(db, summary, event, now, before)
        queued = [] if muted else [(channels.stored_channel(url), event, json.dumps(body, ensure_ascii=False))
                                   for url in urls]
        if store.change(before, now, queued):
            changes.append(Change(summary.name, event, now.kind or (before and before.kind), now.detail, muted,
                                  len(queued)))
    return changes


def _state_of(job_id: int, summary: JobSummary, problems: list[Problem], failures: int,
              before: AlertState | None) -> AlertState:
    """The alert state *problems* put the job in: the first alerting problem, or ok.

    A job failing already stays so while a failed run has not reached its
    ``alert_after`` (flaky, then failed once): its runs still fail.
    """
    needed = summary.alert_after or 1
    failing = before is not None and before.state == "failing"
    alerting = [p for p in problems if p.kind not in RUN_ENDINGS or failures >= needed or failing]
    if not alerting:
        return AlertState(job_id, "ok", None, None, 0, None, None)
    first = alerting[0]
    return AlertState(job_id, "failing", first.kind, first.detail, failures, first.run_id, None)


def message(db: Database, summary: JobSummary, event: str, now: AlertState, before: AlertState | None) -> dict:
    """The JSON body of an alert: what a webhook receives, and what an e-mail says.

    Keys: ``event`` (failing or recovered), ``text`` (one line for a
    person), ``job``, ``group``, ``name``, ``kind`` (what is wrong:
    failed, timed-out, missed...; None when it recovered), ``was`` (what was
    wrong, when it recovered), ``detail``, ``failures`` (failed runs in
    a row), ``run_id``, ``machine``, ``status``, ``started_at``,
    ``finished_at`` (ISO 8601, UTC), ``error`` (its first line), ``log_tail``
    (the run's last log lines, oldest first) and ``checked_at``. No link:
    the reader's dashboard is theirs.
    """
    run_id = now.run_id if event == "failing" else None
    detail = db.run(run_id) if run_id is not None else None
    run = detail.run if detail is not None else (summary.last_run if event == "recovered" else None)
    if event == "failing":
        text = f"{summary.name} is failing: {now.kind}: {_first_line(now.detail)}"
    else:
        text = f"{summary.name} recovered" + _after(before)
    return {
        "event": event, "text": text, "job": summary.name, "group": summary.group, "name": summary.job,
        "kind": now.kind if event == "failing" else None,
        "was": before.kind if event == "recovered" and before else None,
        "detail": now.detail, "failures": before.failures if event == "recovered" and before else now.failures,
        "run_id": run and run.id, "machine": run and run.machine, "status": run and run.status,
        "started_at": run and _iso(run.started_at), "finished_at": run and run.finished_at and _iso(run.finished_at),
        "error": run and _first_line(run.error), "checked_at": _iso(db.clock.now()),
        "log_tail": [line for log in (detail.logs[-LOG_TAIL:] if detail else [])
                     for line in log.message.splitlines()][-LOG_TAIL:],
    }


def _after(before: AlertState | None) -> str:
    if before is None or before.kind is None:
        return ""
    if before.kind in RUN_ENDINGS + ("lost",) and before.failures:
        return f" after {before.failures} failed run" + ("s" if before.failures != 1 else "")
    return f" (it was {before.kind})"


def deliver(db: Database, urls: list[str]) -> list[Delivered]:
    """Send every message due now to a channel among *urls* that no other checker is sending; each waits at most
    its channel's timeout.

    A message goes to the channel it was queued for, which the database
    names by a fingerprint (`channels.stored_channel`): a checker not given
    that channel leaves it to one that was, and fails it once it has waited
    as long as its retries would take (`ORPHANED_AFTER`: no checker has it).
    """
    store = db.alerts
    known = {channels.fingerprint(url): url for url in urls}
    done = []
    for delivery_id, channel, body, waited in store.due():
        url = channels.channel_of(channel, known)
        if url is None:
            if waited > ORPHANED_AFTER:
                store.give_up(delivery_id, f"no check --notify was given {channels.shown_channel(channel)} for"
                                           f" {format_duration(waited)}")
            continue
        if not store.take(delivery_id):
            continue  # another checker took it
        content = json.loads(body)
        try:
            channels.send(url, f"[processcache] {content['text']}", content)
        except Exception as exc:  # noqa: BLE001  (any failure of a channel is recorded, and tried again later)
            error = one_line(exc)
            store.not_sent(delivery_id, error)
            done.append(Delivered(delivery_id, mask_channel(url), error))
        else:
            store.sent(delivery_id)
            done.append(Delivered(delivery_id, mask_channel(url), None))
    _store_channels_hidden(store)
    return done


def _store_channels_hidden(store: AlertStore) -> None:
    """Replace the channel URLs an older release stored in messages (tokens and all) with their stored form,
    once those due were tried (by a checker given that URL)."""
    for delivery_id, url in store.plain_channels(channels.STORED_PREFIX):
        store.rename_channel(delivery_id, url, channels.stored_channel(url))


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def _iso(moment: datetime) -> str:
    return moment.isoformat()
