"""Every verdict ``check`` gives: overdue, missed, late, failed, lost, terminated, timed out, too long, flaky.

The ledger's rows come from `History.states` (storage returns rows, never
judgements); the CLI, the alerts, the metrics and the web pages ask here
for what is wrong. `check` returns the problems; `judge` each job with its
problems, for what shows every job (``check --notify``, the report).
"""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from ..durations import format_duration
from ..errors import RegistryError
from ..options import DEFAULT_GRACE, flaky_threshold
from ..records import FAILED, JobState, JobSummary, Problem, RunRecord
from ..schedules import check_schedule, current_slot, early_allowance, local_time, next_due, previous_due

if TYPE_CHECKING:
    from ..storage import Database, History

#: How long a machine that ran a job locked per machine stays expected to run it again: a machine silent
#: longer is taken for one the job left (or that left the farm), unless the job's period is longer (see
#: `_machine_window`). `jobs retire GROUP/JOB --machine NAME` says so at once.
MACHINE_WINDOW = 7 * 86400.0
#: A machine stays expected for at least this many of the job's periods (expect_every, or its schedule's).
MACHINE_PERIODS = 3


class Verdict(NamedTuple):
    """A job as `History.judge` found it: its summary (its entries not counted), what `check` reports, its id."""

    summary: JobSummary
    problems: list[Problem]
    job_id: int


def check(db: "Database", grace: float = DEFAULT_GRACE, now: datetime | None = None) -> list[Problem]:
    """Jobs overdue, missed or late, whose last run failed, timed out, was terminated or lost, or ran too long.

    Retired jobs are not judged. A job's own ``grace`` replaces *grace*.
    A skipped run is not an attempt: a job skipped for hours is overdue.
    It is a start, though: cron fired on time, and the lock, a
    ``once_per`` slot or a recent success said the work was in hand, so
    its due time is not missed (see `_schedule_problems`). Runs are
    judged, not attempts: a run that succeeded on a retry is well, one
    whose every attempt failed is one problem.
    """
    return problems(db, judge(db, grace, now))

def judge(db: "Database", grace: float = DEFAULT_GRACE, now: datetime | None = None) -> list[Verdict]:
    """Every job that is not retired with what `check` finds wrong with it, from one read of the jobs.

    For what shows every job and its problems (``check --notify``, the
    report): `jobs` then `check` read every job's newest runs twice. The
    summaries' live cache entries are not counted (0).
    """
    now = now or db.clock.now()  # the server's, as the runs' stamps are: not this machine's
    history = db.history
    return _root_causes([Verdict(state.summary, _problems_of(history, state, grace, now), state.job_id)
                         for state in history.states(count_entries=False, judging=True)
                         if not state.summary.retired])


def _root_causes(verdicts: list[Verdict]) -> list[Verdict]:
    """One report for a failing upstream and the jobs it blocks (``after``): its problems name them, and their
    own (missed, overdue, waiting) are not reported apart, so one alert goes for the root cause."""
    failing = {verdict.summary.name: verdict for verdict in verdicts if verdict.problems}
    blocked: dict[str, list[str]] = {}
    for verdict in failing.values():
        root = _root(verdict.summary.name, failing)
        if root != verdict.summary.name:
            blocked.setdefault(root, []).append(verdict.summary.name)
    if not blocked:
        return verdicts
    hidden = {name for names in blocked.values() for name in names}
    return [verdict._replace(problems=[] if verdict.summary.name in hidden else [
        replace(problem, detail=f"{problem.detail}; blocks {', '.join(sorted(blocked[verdict.summary.name]))}")
        for problem in verdict.problems] if verdict.summary.name in blocked else verdict.problems)
        for verdict in verdicts]


def _root(name: str, failing: dict[str, Verdict]) -> str:
    """The failing upstream at the top of *name*'s chain of failing upstreams (*name* itself when none)."""
    seen = {name}
    while True:
        upstream = next((up for up in failing[name].summary.after if up in failing and up not in seen), None)
        if upstream is None:
            return name
        seen.add(upstream)
        name = upstream


def problems(db: "Database", verdicts: list[Verdict]) -> list[Problem]:
    """What `check` reports of *verdicts*: their problems, or ``no-jobs`` when there is no job at all."""
    if not verdicts and not db.history.has_jobs():  # a probe pointed at the wrong database must not pass
        return [Problem("-", "no-jobs", f"{db.url} holds no job: is --database right?"
                                        " A job's first run records it")]
    return [problem for verdict in verdicts for problem in verdict.problems]

def _problems_of(history: "History", judged: JobState, grace: float, now: datetime) -> list[Problem]:
    """What is wrong with one job (see `check`), in the order an alert names the first of."""
    if judged.summary.pause is not None:
        return []  # someone paused it (`processcache pause`): nothing of it is news until the pause ends
    summary, run = judged.summary, judged.attempt
    grace = summary.grace if summary.grace is not None else grace
    expected = _expected_machines(judged, now)
    problems = _schedule_problems(history, judged, grace, now, expected) if summary.schedule else []
    if summary.expect_every is not None:
        for machine, last in (expected.items() if expected else [(None, run)]):
            problems += _overdue(summary, grace, last, now, machine)
    for machine, last in (expected.items() if expected else [(None, run)]):
        if last is not None and last.status in FAILED:
            problems.append(Problem(summary.name, last.status, _on(machine, _what_went_wrong(last)), last.id,
                                    last, machine))
    problems += _too_long(summary, run, judged.ended, now)
    problems += _flaky(summary, run, judged.recent)
    return problems

def _expected_machines(judged: JobState, now: datetime) -> dict[str, RunRecord | None]:
    """Of a job locked per machine, each machine expected to go on running it, with its last attempt: those
    that started a run of it (not skipped) within `_machine_window`, and were not retired from it since.
    {} for a job locked across machines, or with no machine expected (it is then judged as a whole)."""
    window = _machine_window(judged.summary, now)
    return {machine: state.attempt for machine, state in sorted(judged.machines.items())
            if state.attempt is not None and (now - state.attempt.started_at).total_seconds() <= window}

def _machine_window(summary: JobSummary, now: datetime) -> float:
    """Seconds a machine that ran a job locked per machine stays expected: `MACHINE_WINDOW`, or
    `MACHINE_PERIODS` of the job's period (expect_every, or the time between its schedule's due times)
    when longer, so a monthly job's machines are still expected on the next 1st."""
    periods = [summary.expect_every or 0.0]
    if summary.schedule and _unreadable(summary.name, summary.schedule, summary.timezone or "UTC") is None:
        zone = summary.timezone or "UTC"
        slot, due = current_slot(summary.schedule, zone, now), next_due(summary.schedule, zone, now)
        if slot is not None and due is not None:
            periods.append((due - slot).total_seconds())
    return max(MACHINE_WINDOW, MACHINE_PERIODS * max(periods))

def _schedule_problems(history: "History", judged: JobState, grace: float, now: datetime,
                       expected: dict[str, RunRecord | None]) -> list[Problem]:
    """``missed`` when no run started for a due time whose *grace* is over; ``late`` when its run started after.

    A run answers the due time it starts within *grace* after, or up to
    `schedules.early_allowance` before (a machine whose clock is ahead
    fires cron early). The newest start (skipped runs too: cron fired)
    answers one due time; the next one is missed once its grace is over.
    The detail names that first missed due time, which stays the same
    until a run starts. Otherwise, the first run after the due time the
    newest start answers is late if it started after its grace; not the
    job's very first run, though: the job was not declared when it was
    due. A job whose first due time has not come is not judged; one whose
    schedule this machine cannot read is ``bad-schedule``. Of a job
    locked per machine, each *expected* machine's newest start is judged
    for ``missed`` (a machine whose cron stopped), and ``late`` as a whole.
    """
    summary, start = judged.summary, judged.last_start
    schedule, zone = summary.schedule, summary.timezone or "UTC"
    if schedule is None or start is None:
        return []
    unreadable = _unreadable(summary.name, schedule, zone)
    if unreadable is not None:
        return [unreadable]
    starts: list[tuple[str | None, datetime | None, RunRecord | None]] = [
        (machine, judged.machines[machine].last_start, last) for machine, last in expected.items()]
    missed = [problem for machine, begun, last in starts or [(None, start, judged.attempt)]
              for problem in _missed_problem(summary, grace, now, begun, last, machine)]
    if missed:
        return missed
    slot = current_slot(schedule, zone, start)
    if slot is None or start <= slot + timedelta(seconds=grace):
        return []
    late = _late_run(history, judged.job_id, schedule, zone, slot)
    if late is None or late.started_at <= slot + timedelta(seconds=grace):
        return []
    return [Problem(summary.name, "late", _late(slot, late, grace, zone), late.id, late)]

def _late_run(history: "History", job_id: int, schedule: str, zone: str, due: datetime) -> RunRecord | None:
    """The first run that started after *due*'s early allowance; None if it was the job's first run ever."""
    return history.first_run_from(job_id, due - timedelta(seconds=early_allowance(due, previous_due(schedule, zone,
                                                                                                       due))))


def _on(machine: str | None, detail: str) -> str:
    """*detail*, said of *machine* when the problem is one machine's."""
    return detail if machine is None else f"on {machine}: {detail}"


def _overdue(summary: JobSummary, grace: float, run: RunRecord | None, now: datetime,
             machine: str | None) -> list[Problem]:
    """``overdue`` when *run* (the job's last attempt, or *machine*'s) did not start within expect_every + grace."""
    every = summary.expect_every
    assert every is not None, "judged for a job with expect_every only"
    if run is not None and run.started_at + timedelta(seconds=every + grace) >= now:
        return []
    since = "never ran" if run is None else f"last started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    return [Problem(summary.name, "overdue", _on(machine, f"expected every {every:g}s; {since}"), run and run.id,
                    run, machine)]


def _missed_problem(summary: JobSummary, grace: float, now: datetime, start: datetime | None,
                    attempt: RunRecord | None, machine: str | None) -> list[Problem]:
    """``missed`` when the due time after *start* (the job's newest start, or *machine*'s) is past its grace."""
    schedule, zone = summary.schedule, summary.timezone or "UTC"
    assert schedule is not None, "judged for a job with a schedule only"
    if start is None:
        return []
    missed = next_due(schedule, zone, current_slot(schedule, zone, start) or start)
    if missed is None or now <= missed + timedelta(seconds=grace):
        return []
    detail = f"{_missed(missed, grace, zone)}; last started {start:%Y-%m-%d %H:%M:%S} UTC"
    return [Problem(summary.name, "missed", _on(machine, detail), attempt and attempt.id, attempt, machine)]


def _too_long(summary: JobSummary, run: RunRecord | None, ended: RunRecord | None, now: datetime) -> list[Problem]:
    """``too-long`` when the job's newest run that ended took longer than max_duration, or its last attempt has
    been at work longer (its lock wait aside), so a run still within the limit clears nothing: only a run that
    ended within it does. A dead run is only lost; one still waiting for its lock is not at work."""
    limit = summary.max_duration
    if limit is None:
        return []
    if run is not None and run.status == "running" and not run.waiting:
        took = (now - run.started_at).total_seconds() - max(run.waited or 0.0, 0.0)
        if took > limit:
            return [Problem(summary.name, "too-long", f"run {run.id} has been running for {took:.0f}s;"
                                                      f" the limit is {limit:g}s", run.id, run)]
    if run is not None and run.status == "lost":
        return []
    if ended is not None and ended.status != "lost" and ended.duration is not None and ended.duration > limit:
        return [Problem(summary.name, "too-long", f"run {ended.id} took {ended.duration:.0f}s;"
                                                  f" the limit is {limit:g}s", ended.id, ended)]
    return []


def _flaky(summary: JobSummary, run: RunRecord | None, recent: list[str]) -> list[Problem]:
    """``flaky`` when the last run succeeded but K of the job's last N runs failed (its ``flaky`` option, "K/N"),
    in two streaks or more: one streak that ended is an outage that recovered, not a flaky job."""
    threshold = flaky_threshold(summary.flaky)
    if threshold is None or run is None or run.status != "succeeded":
        return []
    failed = [status in FAILED for status in recent]
    streaks = sum(1 for k, bad in enumerate(failed) if bad and (k == 0 or not failed[k - 1]))
    if sum(failed) < threshold[0] or streaks < 2:
        return []
    return [Problem(summary.name, "flaky", f"failed {sum(failed)} of its last {len(recent)} runs"
                                           f" (flaky={threshold[0]}/{threshold[1]}); the last, run {run.id},"
                                           " succeeded", run.id, run)]


def _what_went_wrong(run: RunRecord) -> str:
    """A failed run's error ("timed out after 2h", "exit code 3"), and how many attempts it made when it retried.

    A run with retries is one run, however many attempts failed in it: `check` reports it once.
    """
    error = run.error or f"run {run.id} {run.status}"
    return f"{error} ({run.attempts} attempts)" if run.attempts and run.attempts > 1 else error


def _unreadable(job: str, schedule: str, zone: str) -> Problem | None:
    """``bad-schedule`` for a stored schedule this machine cannot read: reported, not a crash of every check.

    Its time zone may be one this machine's time zone database lacks (a
    slim container has none; the ``tzdata`` package brings one), or a newer
    processcache may have stored an expression this one does not know.
    """
    try:
        check_schedule(schedule, zone)
    except RegistryError as exc:
        return Problem(job, "bad-schedule", f"cannot tell when it is due on this machine: {exc}")
    return None


def _missed(due: datetime, grace: float, zone: str) -> str:
    """``due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); no run started by 03:15``."""
    return f"due {_due(due, zone)}; no run started by {_wall(due + timedelta(seconds=grace), due, zone)}"


def _late(due: datetime, run: RunRecord, grace: float, zone: str) -> str:
    """``due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); run 17 started 20m00s late, at 03:20 (grace 15m00s)``."""
    late = format_duration((run.started_at - due).total_seconds())
    return (f"due {_due(due, zone)}; run {run.id} started {late} late, at {_wall(run.started_at, due, zone)}"
            f" (grace {format_duration(grace)})")


def _due(moment: datetime, zone: str) -> str:
    """A due time as `check` shows it: ``2026-11-26 03:00 Europe/Berlin (02:00 UTC)``, or once in UTC."""
    if zone == "UTC":
        return f"{local_time(moment, zone)} UTC"
    return f"{local_time(moment, zone)} {zone} ({local_time(moment, 'UTC', date=False)} UTC)"


def _wall(moment: datetime, due: datetime, zone: str) -> str:
    """*moment*, a little after *due*, on the job's wall clock: the time alone when it is on the same day."""
    return local_time(moment, zone, date=local_time(moment, zone)[:10] != local_time(due, zone)[:10])
