"""Alert state and deliveries: the SQL that makes an alert go out once per change, and retries it until it does.

Each job has one row in ``process_job_alerts``: ``ok`` or ``failing``. A
checker that sees a job's state differ from its row changes the row with a
compare-and-set (``UPDATE ... WHERE state = <what it read>``), and only the
checker whose update matched a row queues the messages, in the same
transaction: however many machines run ``check`` every minute, one of them
sends each change, and a crash between the two loses neither.

A message to a channel is a row of ``process_alert_deliveries``: ``pending``
until a checker takes it (``sending``, for a short lease, again by
compare-and-set, so two checkers never both send it), then ``sent``, or
back to ``pending`` with a later ``next_at`` after a failure, and
``failed`` after the last attempt. Every time that decides (mutes, retries)
is the database server's.
"""

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from ..records import FAILED
from .backend import Backend, ConstraintViolation, id_list
from .queries import PAIRS_PER_READ, SUCCEEDED, last_runs, plain_plans, runs_after
from .texts import storable
from .timeutil import db_time, py_time

if TYPE_CHECKING:
    from .database import Database

_FAILED = ", ".join(f"'{status}'" for status in FAILED)
#: How long a checker may take to send one message before another may take it over (seconds).
SENDING_LEASE = 60.0
#: Waits before the 2nd, 3rd... attempt of a failed delivery (seconds); after the last one it is ``failed``.
RETRY_DELAYS = (60.0, 300.0, 900.0, 3600.0, 3600.0, 3600.0)


class AlertState(NamedTuple):
    """A job's alert row: its state, what is wrong, and how many failed runs in a row it has seen."""

    job_id: int
    state: str
    kind: str | None
    detail: str | None
    failures: int
    run_id: int | None
    muted_for: float | None  # seconds left, by the server's clock; None when not muted


class DeliveryRecord(NamedTuple):
    """One message to one channel, as ``processcache alerts`` lists it (its channel as stored: show it with
    `channels.shown_channel`)."""

    id: int
    job: str
    channel: str
    event: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    next_in: float | None  # seconds until a pending one is tried again
    last_error: str | None
    body: str


class AlertStore:
    """The alert rows and the delivery queue of one database."""

    def __init__(self, database: "Database") -> None:
        self.database = database
        self.backend: Backend = database.backend
        self.now = self.backend.dialect.now

    # -- state --------------------------------------------------------------------------

    def states(self) -> dict[int, AlertState]:
        """Every job's alert row, by job id."""
        rows = self.backend.select(f"SELECT job_id, state, kind, detail, failures, run_id, muted_until - {self.now}"
                                   " FROM process_job_alerts")
        return {row[0]: AlertState(row[0], row[1], row[2], row[3], row[4], row[5], _left(row[6])) for row in rows}

    def failures_in_a_row(self) -> dict[int, tuple[int, int]]:
        """Per job id: (failed runs since its last success, the newest of them), for jobs with any.

        Each machine's run to show and newest success first (`queries.last_runs`);
        then only the machines whose run to show is newer than their job's last
        success are read, from that success on: a failing streak's runs, not
        every run (a correlated subquery per failed run took seconds at
        2,000,000 runs).
        """
        with self.backend.transaction():
            plain_plans(self.backend)
            pairs = self.backend.select(last_runs(self.backend, SUCCEEDED))
            succeeded: dict[int, int] = {}
            for job_id, _, _, ok in pairs:
                succeeded[job_id] = max(ok or 0, succeeded.get(job_id, 0))
            after = [(job_id, machine, succeeded[job_id]) for job_id, machine, shown, _ in pairs
                     if shown > succeeded[job_id]]
            failures: dict[int, tuple[int, int]] = {}
            for start in range(0, len(after), PAIRS_PER_READ):
                for job_id, run_id in self.backend.select(*runs_after(
                        "r.job_id, r.id", after[start:start + PAIRS_PER_READ], f" AND r.status IN ({_FAILED})")):
                    before = failures.get(job_id, (0, 0))
                    failures[job_id] = (before[0] + 1, max(before[1], int(run_id)))
        return failures

    def change(self, before: AlertState | None, after: AlertState, messages: list[tuple[str, str, str]]) -> bool:
        """Move a job's row from *before* (None: no row yet) to *after* and queue *messages*; False if another did.

        *messages* are (stored channel, event, JSON body). The row's change and
        the messages are one transaction, and the change is a compare-and-set
        on the state this checker read.
        """
        values = {"job_id": after.job_id, "state": after.state, "kind": after.kind, "detail": storable(after.detail),
                  "failures": after.failures, "run_id": after.run_id, "changed_at": None}
        try:
            with self.backend.transaction():
                if before is None:
                    self.backend.insert("process_job_alerts", values)
                elif self.backend.execute(
                        f"UPDATE process_job_alerts SET state = $state, kind = $kind, detail = $detail,"
                        f" failures = $failures, run_id = $run_id, changed_at = {self.now}"
                        " WHERE job_id = $job_id AND state = $before", {**values, "before": before.state}) != 1:
                    return False
                for channel, event, body in messages:
                    self._queue(after.job_id, channel, event, body)
        except ConstraintViolation:
            return False  # another checker made the row first
        return True

    def note_failures(self, job_id: int, failures: int) -> None:
        """Raise the count a failing job's row holds, so its recovery says how many runs failed."""
        self.backend.execute("UPDATE process_job_alerts SET failures = $failures WHERE job_id = $job_id"
                             " AND failures < $failures", {"job_id": job_id, "failures": failures})

    def muted(self) -> list[tuple[str, float]]:
        """(``group/job``, seconds left) of every job muted now, by the server's clock."""
        rows = self.backend.select(f"SELECT p.name, j.name, a.muted_until - {self.now} FROM process_job_alerts a"
                                   " JOIN process_jobs j ON j.id = a.job_id JOIN processes p ON p.id = j.process_id"
                                   f" WHERE a.muted_until > {self.now} ORDER BY p.name, j.name")
        return [(f"{group}/{job}", float(left)) for group, job, left in rows]

    def mute(self, job_id: int, seconds: float | None) -> None:
        """Send no alert for the job for *seconds* (None: unmute); its state still follows the job."""
        until = None if seconds is None else f"{self.now} + $seconds"
        params = {"job_id": job_id, "seconds": seconds}
        with self.backend.transaction():
            if not self.backend.execute(f"UPDATE process_job_alerts SET muted_until = {until or 'NULL'}"
                                        " WHERE job_id = $job_id", params):
                self.backend.insert("process_job_alerts", {"job_id": job_id, "state": "ok", "failures": 0})
                self.backend.execute(f"UPDATE process_job_alerts SET muted_until = {until or 'NULL'}"
                                     " WHERE job_id = $job_id", params)

    # -- deliveries ---------------------------------------------------------------------

    def _queue(self, job_id: int, channel: str, event: str, body: str) -> None:
        self.backend.execute(
            "INSERT INTO process_alert_deliveries (job_id, channel, event, body, status, attempts, next_at,"
            f" created_at) VALUES ($job_id, $channel, $event, $body, 'pending', 0, {self.now}, $created_at)",
            {"job_id": job_id, "channel": channel, "event": event, "body": body,
             "created_at": db_time(self.database.clock.now())})

    def due(self) -> list[tuple[int, str, str, float]]:
        """(id, channel, body, seconds it has been due) of the messages due now: pending and due, or sending
        past their lease."""
        return [(row[0], row[1], row[2], float(row[3])) for row in self.backend.select(
            f"SELECT id, channel, body, {self.now} - next_at FROM process_alert_deliveries WHERE (status ="
            f" 'pending' AND next_at <= {self.now}) OR (status = 'sending' AND next_at < {self.now}) ORDER BY id")]

    def give_up(self, delivery_id: int, error: str) -> None:
        """Fail a message no checker could send (none was given its channel), unless one took it meanwhile."""
        self.backend.execute("UPDATE process_alert_deliveries SET status = 'failed', next_at = NULL,"
                             f" last_error = $error WHERE id = $id AND status = 'pending' AND next_at <= {self.now}",
                             {"id": delivery_id, "error": storable(error)})

    def plain_channels(self, stored_prefix: str) -> list[tuple[int, str]]:
        """(id, channel) of the messages whose channel is a URL, as releases before its stored form kept it."""
        return [(row[0], row[1]) for row in self.backend.select(
            "SELECT id, channel FROM process_alert_deliveries WHERE channel NOT LIKE $prefix",
            {"prefix": stored_prefix + "%"})]

    def rename_channel(self, delivery_id: int, before: str, after: str) -> None:
        """Replace a message's channel *before* with *after* (unless another checker did)."""
        self.backend.execute("UPDATE process_alert_deliveries SET channel = $after WHERE id = $id"
                             " AND channel = $before", {"id": delivery_id, "before": before, "after": after})

    def take(self, delivery_id: int) -> bool:
        """Take a due message to send it now (compare-and-set); False when another checker took it first."""
        return self.backend.execute(
            f"UPDATE process_alert_deliveries SET status = 'sending', next_at = {self.now} + $lease,"
            " attempts = attempts + 1 WHERE id = $id AND ((status = 'pending' AND next_at <= "
            f"{self.now}) OR (status = 'sending' AND next_at < {self.now}))",
            {"id": delivery_id, "lease": SENDING_LEASE}) == 1

    def sent(self, delivery_id: int) -> None:
        self.backend.execute("UPDATE process_alert_deliveries SET status = 'sent', next_at = NULL,"
                             " sent_at = $sent_at, last_error = NULL WHERE id = $id",
                             {"id": delivery_id, "sent_at": db_time(self.database.clock.now())})

    def not_sent(self, delivery_id: int, error: str) -> None:
        """Record a failed attempt: tried again after the next of `RETRY_DELAYS`, ``failed`` after the last."""
        attempts = self.backend.value("SELECT attempts FROM process_alert_deliveries WHERE id = $id",
                                      {"id": delivery_id}) or 1
        delay = RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None
        status, next_at = ("pending", f"{self.now} + $delay") if delay is not None else ("failed", "NULL")
        self.backend.execute(f"UPDATE process_alert_deliveries SET status = $status, next_at = {next_at},"
                             " last_error = $error WHERE id = $id",
                             {"id": delivery_id, "status": status, "delay": delay, "error": storable(error)})

    def deliveries(self, limit: int = 50, status: str | None = None) -> list[DeliveryRecord]:
        """The newest messages first, with the job they are about."""
        where = "WHERE d.status = $status" if status else ""
        rows = self.backend.select(
            "SELECT d.id, p.name, j.name, d.channel, d.event, d.status, d.attempts, d.created_at, d.sent_at,"
            f" d.next_at - {self.now}, d.last_error, d.body FROM process_alert_deliveries d"
            " JOIN process_jobs j ON j.id = d.job_id JOIN processes p ON p.id = j.process_id"
            f" {where} ORDER BY d.id DESC LIMIT {int(limit)}", {"status": status})
        return [DeliveryRecord(r[0], f"{r[1]}/{r[2]}", r[3], r[4], r[5], r[6], py_time(r[7]), py_time(r[8]),
                               _left(r[9]) if r[5] == "pending" else None, r[10], r[11]) for r in rows]

    def forget_jobs(self, job_ids: list[int]) -> None:
        """Delete the alert rows and messages of deleted jobs."""
        if job_ids:
            for table in ("process_job_alerts", "process_alert_deliveries"):
                self.backend.execute(f"DELETE FROM {table} WHERE job_id IN ({id_list(job_ids)})")


def _left(seconds: object) -> float | None:
    """Seconds left, or None when none are (a mute or a wait that ended)."""
    return float(seconds) if seconds is not None and float(seconds) > 0 else None  # type: ignore[arg-type]
