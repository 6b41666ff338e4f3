"""Cron schedules with time zones: when a job was due, and `check`'s missed and late.

The due times are checked against a reference written here from the
documented semantics (`processcache.schedules`), over random moments of a
year and around daylight-saving changes. `check` is given the database
server's "now" explicitly, and runs whose start the tests set, on all three
databases.
"""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cli_helpers import cli
from hypothesis import example, given
from hypothesis import strategies as st

import processcache.storage.clock
import processcache.storage.timeutil
from processcache import Registry, RegistryError, connect
from processcache.monitor.check import check
from processcache.schedules import check_schedule, current_slot, last_due, next_due, recent_due, spread
from processcache.storage.timeutil import db_time

BERLIN, LORD_HOWE = "Europe/Berlin", "Australia/Lord_Howe"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- the due times, against a reference ------------------------------------------------------------------------

#: Wall-clock schedules (minute and hour given) and real-time ones (either starting with *); weekly on Sunday,
#: the day Europe and Lord Howe change their clocks.
SCHEDULES = ["30 2 * * *", "0 3 * * *", "15 1,2 * * *", "0,30 2 * * 0", "0 9 * * 1-5", "0 */6 * * *",
             "*/20 * * * *", "45 * * * *", "30 2 * * 0"]
ZONES = ["UTC", BERLIN, LORD_HOWE, "America/St_Johns"]
#: The 2026 changes: Berlin forward and back, Lord Howe back (30 min) and forward, St. John's forward and back.
CHANGES = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30),
           utc(2026, 3, 8, 5, 30), utc(2026, 11, 1, 4, 30)]


def _field(text: str, low: int, high: int) -> set[int]:
    """The values of one cron field of the forms SCHEDULES uses: *, */n, a-b, a,b, n."""
    values: set[int] = set()
    for part in text.split(","):
        if part.startswith("*"):
            values.update(range(low, high + 1, int(part[2:]) if "/" in part else 1))
        elif "-" in part:
            first, last = map(int, part.split("-"))
            values.update(range(first, last + 1))
        else:
            values.add(int(part))
    return values


def _matches(schedule: str, wall: datetime) -> bool:
    minute, hour, day, month, weekday = schedule.split()
    return (wall.minute in _field(minute, 0, 59) and wall.hour in _field(hour, 0, 23)
            and wall.day in _field(day, 1, 31) and wall.month in _field(month, 1, 12)
            and wall.isoweekday() % 7 in _field(weekday, 0, 6))


def is_due(schedule: str, zone: str, moment: datetime) -> bool:
    """The module's documented semantics, written again: a wall-clock time skipped is due at the jump, a repeated
    one on its first pass; a real-time schedule whenever the wall clock matches."""
    wall = moment.astimezone(ZoneInfo(zone))
    minute, hour = schedule.split()[:2]
    if minute.startswith("*") or hour.startswith("*"):
        return _matches(schedule, wall)
    if _matches(schedule, wall) and wall.fold == 0:
        return True
    jump = wall.utcoffset() - (moment - timedelta(minutes=1)).astimezone(ZoneInfo(zone)).utcoffset()
    skipped = (wall.replace(tzinfo=None) - timedelta(minutes=m) for m in range(1, int(jump.total_seconds()) // 60 + 1))
    return any(_matches(schedule, time_) for time_ in skipped)


moments = st.one_of(
    st.integers(0, 365 * 86400 - 1).map(lambda seconds: utc(2026, 1, 1) + timedelta(seconds=seconds)),
    st.tuples(st.sampled_from(CHANGES), st.integers(-26 * 3600, 26 * 3600)).map(
        lambda change: change[0] + timedelta(seconds=change[1])),
)


@given(st.sampled_from(SCHEDULES), st.sampled_from(ZONES), moments, st.integers(0, 999_999))
@example("0 */6 * * *", LORD_HOWE, utc(2026, 4, 4, 15), 0)  # cronsim's walk on steps over 06:00 +10:30
@example("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 15), 0)  # 02:15 CET: 02:30 CEST was due before it
def test_the_last_due_time_and_the_next_frame_the_moment_with_none_between(schedule, zone, moment, micros):
    moment += timedelta(microseconds=micros)
    last, following = last_due(schedule, zone, moment), next_due(schedule, zone, moment)
    assert last <= moment < following
    assert last.tzinfo == following.tzinfo == UTC
    assert is_due(schedule, zone, last) and is_due(schedule, zone, following)
    between = last + timedelta(minutes=1)
    while between < following:
        assert not is_due(schedule, zone, between), f"{between} is due between {last} and {following}"
        between += timedelta(minutes=1)
    recent = recent_due(schedule, zone, moment)
    assert recent[0] == last and len(recent) == 5 and recent == sorted(recent, reverse=True)
    assert all(next_due(schedule, zone, older) == newer for older, newer in zip(recent[1:], recent))


def test_a_due_time_is_at_or_before_itself_and_next_after_it():
    due = utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first pass of the repeated hour
    assert last_due("30 2 * * *", BERLIN, due) == due
    assert last_due("30 2 * * *", BERLIN, due - timedelta(microseconds=1)) == utc(2026, 10, 24, 0, 30)
    assert next_due("30 2 * * *", BERLIN, due) == utc(2026, 10, 26, 1, 30), "02:30 CET is not due again"
    assert next_due("30 * * * *", BERLIN, due) == utc(2026, 10, 25, 1, 30), "an hourly job runs in both passes"
    second_pass = utc(2026, 10, 25, 1, 15)  # 02:15 CET: the wall clock is behind 02:30 CEST, which was due
    assert last_due("30 2 * * *", BERLIN, second_pass) == due


def test_a_wall_clock_time_the_clocks_skip_is_due_when_they_jump():
    assert next_due("30 2 * * *", BERLIN, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1), "03:00 CEST"
    assert next_due("0,30 2 * * *", BERLIN, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1), "once, not twice"
    assert next_due("15 2 * * *", LORD_HOWE, utc(2026, 10, 3)) == utc(2026, 10, 3, 15, 30), "02:30 +11"
    assert next_due("30 2 * * *", BERLIN, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)


def test_a_real_time_schedule_in_a_zone_whose_clocks_change_by_30_minutes_misses_no_due_time():
    """cronsim 2.8 walking on from 00:00 +11 on Lord Howe's fall-back day gives 12:00 +10:30: 06:00 is stepped over."""
    assert next_due("0 */6 * * *", LORD_HOWE, utc(2026, 4, 4, 13)) == utc(2026, 4, 4, 19, 30)  # 06:00 +10:30
    assert next_due("0 */6 * * *", LORD_HOWE, utc(2026, 10, 3, 13, 30)) == utc(2026, 10, 3, 19)  # 06:00 +11
    assert last_due("0 */6 * * *", LORD_HOWE, utc(2026, 4, 5, 1)) == utc(2026, 4, 4, 19, 30)


def test_a_run_up_to_30s_before_a_due_time_is_in_its_slot():
    assert current_slot("0 3 * * *", BERLIN, utc(2026, 11, 26, 1, 59, 45)) == utc(2026, 11, 26, 2)
    assert current_slot("0 3 * * *", BERLIN, utc(2026, 11, 26, 1, 59, 15)) == utc(2026, 11, 25, 2)
    assert current_slot("* * * * *", "UTC", utc(2026, 11, 26, 2, 0, 50)) == utc(2026, 11, 26, 2), \
        "at most a tenth of the step: 6s for a job every minute"
    assert current_slot("* * * * *", "UTC", utc(2026, 11, 26, 2, 0, 55)) == utc(2026, 11, 26, 2, 1)


@pytest.mark.parametrize(("options", "message"), [
    ({"schedule": "0 25 * * *"}, "'0 25 * * *': hour 25 is out of range 0-23"),
    ({"schedule": "61 3 * * *"}, "'61 3 * * *': minute 61 is out of range 0-59"),
    ({"schedule": "0 3 * *"}, "'0 3 * *': a schedule has five fields (minute hour day-of-month month day-of-week),"
                              " not 4; e.g. '0 3 * * *' for 03:00 every day"),
    ({"schedule": "0 3 * * *", "timezone": "Europe/Berlín"},
     "unknown time zone 'Europe/Berlín': use an IANA name such as 'Europe/Berlin' or 'UTC'"),
    ({"timezone": "CEST"}, "unknown time zone 'CEST': use an IANA name such as 'Europe/Berlin' or 'UTC'"),
])
def test_a_bad_schedule_or_time_zone_is_one_line_when_the_job_is_declared(options, message):
    with pytest.raises(RegistryError) as raised:
        Registry().job("shop", "nightly", **options)
    assert str(raised.value) == message


# -- check: missed and late --------------------------------------------------------------------------------------


def declare(schedule: str, timezone: str = "UTC", name: str = "nightly", **options):
    registry = Registry()

    @registry.job("shop", name, schedule=schedule, timezone=timezone, **options)
    def nightly(ctx):
        ctx.create_log("done")

    return nightly


def run_at(db, spec, started: datetime, machine: str = "web1"):
    """Run *spec* for real, then say it started at *started* (a server time, stored in UTC)."""
    run = spec.run(database=db, machine=machine)
    db.backend.execute("UPDATE process_job_runs SET started_at = $at WHERE id = $id",
                       {"at": db_time(started), "id": run.id})
    return run


def judged(db, now: datetime, grace: float = 60.0) -> list[tuple[str, str]]:
    return [(problem.kind, problem.detail) for problem in check(db, grace, now=now)]


def test_a_nightly_job_is_missed_after_its_grace_and_late_when_its_run_comes_after(backend_url):
    nightly = declare("0 3 * * *", BERLIN, grace="15m")
    with connect(backend_url) as db:
        run_at(db, nightly, utc(2026, 11, 25, 2, 0, 5))
        assert judged(db, utc(2026, 11, 26, 2, 14)) == [], "within the grace"
        assert judged(db, utc(2026, 11, 26, 2, 16), grace=86400) == [("missed", (
            "due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); no run started by 03:15;"
            " last started 2026-11-25 02:00:05 UTC"))], "the job's own grace, not check's"
        late = run_at(db, nightly, utc(2026, 11, 26, 2, 20), machine="web2")
        problems = check(db, now=utc(2026, 11, 26, 2, 30))
        assert [(p.kind, p.detail, p.run_id) for p in problems] == [("late", (
            f"due 2026-11-26 03:00 Europe/Berlin (02:00 UTC); run {late.id} started 20m00s late, at 03:20"
            " (grace 15m00s)"), late.id)]
        assert problems[0].run.machine == "web2"
        run_at(db, nightly, utc(2026, 11, 27, 1, 59, 45))  # 15 s early: a clock ahead
        assert judged(db, utc(2026, 11, 27, 12)) == []
        run_at(db, nightly, utc(2026, 11, 28, 1, 59, 20))  # 40 s early is too early: it answers no due time
        assert judged(db, utc(2026, 11, 28, 2, 14)) == []
        assert [kind for kind, _ in judged(db, utc(2026, 11, 28, 2, 16))] == ["missed"]


def test_an_extra_run_after_an_on_time_one_is_not_late(backend_url):
    nightly = declare("0 3 * * *", BERLIN, grace="15m")
    with connect(backend_url) as db:
        run_at(db, nightly, utc(2026, 11, 25, 2, 1))
        run_at(db, nightly, utc(2026, 11, 26, 2, 3))
        run_at(db, nightly, utc(2026, 11, 26, 9, 30), machine="laptop")  # someone ran it by hand
        assert judged(db, utc(2026, 11, 26, 10)) == []


def test_spring_forward_in_berlin_a_0230_job_is_due_at_0300_cest(backend_url):
    early = declare("30 2 * * *", BERLIN, grace="10m")
    with connect(backend_url) as db:
        run_at(db, early, utc(2026, 3, 28, 1, 30))  # 02:30 CET
        assert judged(db, utc(2026, 3, 29, 1, 9)) == []
        assert judged(db, utc(2026, 3, 29, 1, 11)) == [("missed", (
            "due 2026-03-29 03:00 Europe/Berlin (01:00 UTC); no run started by 03:10;"
            " last started 2026-03-28 01:30:00 UTC"))]
        # 01:30 UTC is 02:30 by yesterday's offset: what a checker blind to the change would expect
        late = run_at(db, early, utc(2026, 3, 29, 1, 30))
        assert judged(db, utc(2026, 3, 29, 2)) == [("late", (
            f"due 2026-03-29 03:00 Europe/Berlin (01:00 UTC); run {late.id} started 30m00s late, at 03:30"
            " (grace 10m00s)"))]
        run_at(db, early, utc(2026, 3, 30, 0, 30))  # 02:30 CEST
        assert judged(db, utc(2026, 3, 30, 0, 45)) == []


def test_fall_back_in_berlin_a_0230_job_is_due_once_an_hourly_job_twice(backend_url):
    nightly, hourly = declare("30 2 * * *", BERLIN, grace="10m"), declare("30 * * * *", BERLIN, "hourly", grace="10m")
    with connect(backend_url) as db:
        run_at(db, nightly, utc(2026, 10, 24, 0, 30))
        assert judged(db, utc(2026, 10, 25, 0, 41)) == [("missed", (
            "due 2026-10-25 02:30 Europe/Berlin (00:30 UTC); no run started by 02:40;"
            " last started 2026-10-24 00:30:00 UTC"))]
        run_at(db, nightly, utc(2026, 10, 25, 0, 31))
        run_at(db, hourly, utc(2026, 10, 25, 0, 31))
        assert judged(db, utc(2026, 10, 25, 1, 41)) == [("missed", (
            "due 2026-10-25 02:30 Europe/Berlin (01:30 UTC); no run started by 02:40;"
            " last started 2026-10-25 00:31:00 UTC"))], "only the hourly job: 02:30 CET is due for it alone"
        assert [problem.job for problem in check(db, now=utc(2026, 10, 26, 1, 41))] == [
            "shop/hourly", "shop/nightly"], "02:30 CET on the next day"


def test_lord_howe_a_job_in_the_skipped_half_hour_is_due_when_the_clocks_jump(backend_url):
    nightly = declare("15 2 * * *", LORD_HOWE, grace="5m")
    with connect(backend_url) as db:
        run_at(db, nightly, utc(2026, 10, 2, 15, 45))  # 02:15 at +10:30
        assert judged(db, utc(2026, 10, 3, 15, 34)) == []
        assert judged(db, utc(2026, 10, 3, 15, 36)) == [("missed", (
            "due 2026-10-04 02:30 Australia/Lord_Howe (15:30 UTC); no run started by 02:35;"
            " last started 2026-10-02 15:45:00 UTC"))]
        run_at(db, nightly, utc(2026, 10, 3, 15, 31))
        assert judged(db, utc(2026, 10, 4, 12)) == []


def test_a_run_skipped_by_the_lock_is_a_start_cron_fired_on_time(backend_url):
    sync = declare("*/5 * * * *", name="sync")
    with connect(backend_url) as db:
        holder = run_at(db, sync, utc(2026, 11, 26, 10, 0, 5))
        assert [kind for kind, _ in judged(db, utc(2026, 11, 26, 10, 6, 30))] == ["missed"]
        assert db.runs.acquire("shop/sync", "web1", 1, holder.id, lease=600)  # a run still at work holds it
        skipped = run_at(db, sync, utc(2026, 11, 26, 10, 5, 3), machine="web2")
        assert skipped.status == "skipped"
        assert judged(db, utc(2026, 11, 26, 10, 6, 30)) == []
        assert [kind for kind, _ in judged(db, utc(2026, 11, 26, 10, 11, 30))] == ["missed"]


def test_a_job_is_not_judged_before_its_first_due_time_and_its_first_run_is_never_late(backend_url):
    yearly, daily = declare("0 3 1 1 *", BERLIN, "yearly", grace="15m"), declare("0 3 * * *", name="daily")
    with connect(backend_url) as db:
        run_at(db, yearly, utc(2026, 11, 26, 10))  # its first run: a test by hand when it was deployed
        run_at(db, daily, utc(2026, 11, 26, 14))  # 11 hours after 03:00, but the job was not declared then
        assert judged(db, utc(2026, 11, 26, 15)) == []
        assert judged(db, utc(2026, 12, 31, 23)) == [("missed", (
            "due 2026-11-27 03:00 UTC; no run started by 03:01; last started 2026-11-26 14:00:00 UTC"))]
        assert [(p.job, p.kind) for p in check(db, now=utc(2027, 1, 1, 2, 16))] == [
            ("shop/daily", "missed"), ("shop/yearly", "missed")]


def test_a_jobs_own_grace_replaces_checks_for_expect_every(backend_url):
    registry = Registry()

    @registry.job("shop", "patient", expect_every="1h", grace="10m")
    def patient(ctx):
        pass

    @registry.job("shop", "strict", expect_every="1h")
    def strict(ctx):
        pass

    with connect(backend_url) as db:
        run_at(db, patient, utc(2026, 11, 26, 10))
        run_at(db, strict, utc(2026, 11, 26, 10))
        assert [(p.job, p.kind) for p in check(db, 60, now=utc(2026, 11, 26, 11, 5))] == [
            ("shop/strict", "overdue")]
        assert [(p.job, p.kind) for p in check(db, 60, now=utc(2026, 11, 26, 11, 11))] == [
            ("shop/patient", "overdue"), ("shop/strict", "overdue")]


def test_check_judges_by_the_database_servers_clock_not_a_host_hours_ahead(backend_url, monkeypatch):
    every5 = declare("*/5 * * * *", name="every5", grace="2m")
    with connect(backend_url) as db:
        assert every5.run(database=db, machine="web1").ok
        skew = timedelta(hours=5)  # this host's clock, from here on: hours ahead of the server's

        class HostDatetime(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) + skew

        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + skew.total_seconds())
        monkeypatch.setattr(processcache.storage.clock, "datetime", HostDatetime)
        monkeypatch.setattr(processcache.storage.timeutil, "utcnow", lambda: datetime.now(UTC) + skew)
        db.clock.sync()
        host_now = HostDatetime.now(UTC)
        assert abs(db.clock.now() - (host_now - skew)) < timedelta(minutes=1), "the server's time"
        assert db.check() == [], "by the server's clock it ran a moment ago"
        assert [p.kind for p in check(db, now=host_now)] == ["missed"], "by this host's it is 5h late"
        db.backend.execute("UPDATE process_job_runs SET started_at = $at",
                           {"at": db_time(db.clock.now() - timedelta(minutes=20))})
        assert [p.kind for p in db.check()] == ["missed"]


def test_check_prints_missed_from_the_shell(backend_url):
    every5 = declare("*/5 * * * *", BERLIN, name="every5")
    with connect(backend_url) as db:
        run = every5.run(database=db, machine="web1")
        db.backend.execute("UPDATE process_job_runs SET started_at = $at WHERE id = $id",
                           {"at": db_time(db.clock.now() - timedelta(minutes=30)), "id": run.id})
    result = cli("check", "-d", backend_url)
    assert result.returncode == 1, result.stderr
    line = result.stdout.splitlines()[-1]
    assert line.split()[:3] == ["shop/every5", "missed", str(run.id)]
    assert "Europe/Berlin" in line and "no run started by" in line


def test_a_schedule_this_machine_cannot_read_is_reported_and_the_other_jobs_still_judged(backend_url):
    berlin, fine = declare("0 3 * * *", BERLIN, "berlin"), declare("0 3 * * *", name="fine")
    with connect(backend_url) as db:
        run_at(db, berlin, utc(2026, 11, 25, 2))
        run_at(db, fine, utc(2026, 11, 25, 3))
        # as a checker without Europe/Berlin in its time zone database reads it
        db.backend.execute("UPDATE process_jobs SET timezone = 'Mars/Olympus' WHERE name = 'berlin'")
        assert judged(db, utc(2026, 11, 26, 3, 30)) == [
            ("bad-schedule", "cannot tell when it is due on this machine: unknown time zone 'Mars/Olympus':"
                             " use an IANA name such as 'Europe/Berlin' or 'UTC'"),
            ("missed", "due 2026-11-26 03:00 UTC; no run started by 03:01; last started 2026-11-25 03:00:00 UTC")]


NO_ZONES = """
import sys
sys.modules["tzdata"] = None  # neither the package nor (PYTHONTZPATH) the system's files: a slim container
from processcache import Registry, RegistryError
Registry().job("shop", "utc", schedule="0 3 * * *")  # UTC needs no time zone database
try:
    Registry().job("shop", "berlin", schedule="0 3 * * *", timezone="Europe/Berlin")
except RegistryError as exc:
    print(exc)
"""


def test_a_machine_without_a_time_zone_database_is_told_to_install_one(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_ZONES], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONTZPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("unknown time zone 'Europe/Berlin': this machine has no time zone database;"
                           " install one (pip install tzdata)\n")


SPREAD_SCHEDULES = ["H 3 * * *", "H/15 * * * *", "H(0-29) H(1-5) * * *", "H H H * H", "H(10-20)/5 H * * mon-fri",
                    "0,H 3 * * *"]
job_names = st.builds(lambda group, job: f"{group}/{job}",
                      st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=20),
                      st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=20))


@given(st.sampled_from(SPREAD_SCHEDULES), job_names)
def test_h_resolves_to_a_schedule_due_within_its_ranges_the_same_every_time(expression, job):
    resolved = spread(expression, job)
    assert "h" not in resolved.replace("thu", "").lower()
    assert check_schedule(resolved, "UTC")[0] == resolved
    assert spread(expression, job) == resolved
    minute, hour, day, _month, weekday = resolved.split(" ")
    if expression.startswith("H(0-29) H(1-5)"):
        assert 0 <= int(minute) <= 29 and 1 <= int(hour) <= 5
    if expression == "H H H * H":
        assert 1 <= int(day) <= 28 and 0 <= int(weekday) <= 6, "due every month, each day of the week once"
    if expression == "H/15 * * * *":
        start = int(minute.split("-")[0])
        assert 0 <= start < 15 and minute.endswith("-59/15"), "four times an hour, from the job's own offset"


def test_h_spreads_300_nightly_jobs_over_the_hour_and_is_the_same_in_another_process():
    minutes = [spread("H 3 * * *", f"etl/job-{n}").split(" ")[0] for n in range(300)]
    assert len(set(minutes)) >= 45, "spread over the hour, not all at 03:00"
    code = "from processcache.schedules import spread; print(spread('H 3 * * *', 'etl/job-7'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == f"{minutes[7]} 3 * * *", "derived from the name, not Python's hash seed"


def test_a_job_with_h_is_stored_and_judged_at_its_own_due_time(backend_url):
    nightly = declare("H 3 * * *", name="spread")
    minute = int(spread("H 3 * * *", "shop/spread").split(" ")[0])
    with connect(backend_url) as db:
        run_at(db, nightly, utc(2026, 11, 25, 3, minute))
        [job] = db.jobs()
        assert job.schedule == f"{minute} 3 * * *", "the run stores the schedule it was due by"
        due = utc(2026, 11, 26, 3, minute)
        assert judged(db, due + timedelta(seconds=59)) == []
        [(kind, detail)] = judged(db, due + timedelta(seconds=61))
        assert kind == "missed" and detail.startswith(f"due 2026-11-26 03:{minute:02d} UTC")


def test_the_schedule_command_prints_the_crontab_minute_and_refuses_a_bad_h_in_one_line():
    shown = cli("schedule", "Shop/Spread", "H 3 * * *")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == spread("H 3 * * *", "shop/spread") + "\n"
    assert shown.stderr.count("due ") == 3
    bad = cli("schedule", "shop/spread", "H(50-10) 3 * * *")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["Error: 'H(50-10)': the minutes of H(low-high) run from 0 to 59, low"
                                               " first"]
