"""Run control of Python jobs: retries, timeouts, once per slot, the anacron guard, and captured output."""

import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processcache import ANY, JobSkippedError, Registry, RegistryError, SchemaError, TimedOut, cache_session, connect
from processcache.records import exit_code
from processcache.storage.schema import RUN_CONTROL_REVISION


def flaky_job(fail_times: int, **options):
    """A job that raises on its first *fail_times* calls, then returns how many calls it took."""
    registry = Registry()
    calls = []

    @registry.job("control", "flaky", **options)
    def flaky(ctx):
        calls.append(time.monotonic())
        print(f"call {len(calls)}")
        if len(calls) <= fail_times:
            raise ValueError(f"boom {len(calls)}")
        return len(calls)

    return flaky, calls


# -- retries ----------------------------------------------------------------------------------------


def test_a_failed_attempt_is_tried_again_and_the_run_succeeds_with_every_attempt_visible(backend_url):
    flaky, calls = flaky_job(2, retries=3, retry_delay=0.1)
    run = flaky.run(database=backend_url, machine="m")
    assert (run.status, run.attempts, run.result) == ("succeeded", 3, 3)
    with connect(backend_url) as db:
        detail = db.run(run.id)
        assert [(a.number, a.status, a.error) for a in detail.attempts] == [
            (1, "failed", "ValueError: boom 1"), (2, "failed", "ValueError: boom 2"), (3, "succeeded", None)]
        warnings = [log.message for log in detail.logs if log.type.value == "WARNING"]
        assert warnings == ["attempt 1 of 4 failed: ValueError: boom 1; trying again in 100ms",
                            "attempt 2 of 4 failed: ValueError: boom 2; trying again in 100ms"]
        assert sum("ValueError: boom" in log.message for log in detail.logs if log.type.value == "ERROR") == 2
        assert [r.id for r in db.history.list_runs("control/flaky")] == [run.id], "one run, not one per attempt"
    assert output_logs(backend_url, run.id) == {"STDOUT": "call 1\n[processcache: attempt 2 of 4]\ncall 2\n"
                                                          "[processcache: attempt 3 of 4]\ncall 3"}


def test_when_every_attempt_fails_the_run_fails_with_the_last_attempts_error(backend_url):
    flaky, calls = flaky_job(10, retries=2)
    run = flaky.run(database=backend_url, machine="m")
    assert (run.status, run.attempts, run.error, len(calls)) == ("failed", 3, "ValueError: boom 3", 3)
    assert exit_code(run) == 1


def test_the_delay_grows_by_the_backoff_between_attempts(tmp_path):
    flaky, calls = flaky_job(2, retries=2, retry_delay=0.2, retry_backoff=3)
    assert flaky.run(database=f"sqlite:///{tmp_path}/r.db", machine="m").ok
    gaps = [later - earlier for earlier, later in zip(calls, calls[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.6, gaps


def test_the_lock_is_held_between_attempts(backend_url):
    registry = Registry()
    waiting = threading.Event()

    @registry.job("control", "locked", retries=1, retry_delay=3)
    def locked(ctx):
        if not waiting.is_set():
            waiting.set()
            raise ValueError("first attempt")

    results = []
    worker = threading.Thread(target=lambda: results.append(locked.run(database=backend_url, machine="a")))
    worker.start()
    assert waiting.wait(30)
    time.sleep(0.3)  # inside the retry delay
    other = Registry().job("control", "locked")(lambda ctx: None).run(database=backend_url, machine="b")
    worker.join(60)
    assert other.status == "skipped" and "holds the lock control/locked" in other.error
    assert results[0].status == "succeeded" and results[0].attempts == 2


def test_retries_are_refused_for_a_with_block_which_cannot_run_twice():
    with pytest.raises(RegistryError, match="a with block cannot be run again"):
        with cache_session("control", "block", database="sqlite://:memory:", retries=2):
            pass


@pytest.mark.parametrize("options, message", [
    ({"retries": -1}, "retries=-1: use a whole number"),
    ({"retry_backoff": 0.5}, "retry_backoff=0.5: use a number of at least 1"),
    ({"timeout": 0}, "timeout must be longer than 0 seconds"),
    ({"timeout": "soon"}, "the timeout 'soon' is not a duration"),
    ({"once_per": "0s"}, "once_per must be longer than 0 seconds"),
    ({"output_tail": "lots"}, "output_tail='lots' is not a size"),
    ({"reopen_failed_slot": "yes"}, "reopen_failed_slot='yes': use True or False"),
])
def test_bad_run_control_options_are_refused_when_the_job_is_declared(options, message):
    with pytest.raises(Exception, match=message):
        Registry().job("control", "bad", **options)(lambda ctx: None)


# -- timeouts ---------------------------------------------------------------------------------------


def test_a_job_past_its_timeout_is_interrupted_its_finally_runs_and_its_lock_is_freed(backend_url):
    registry = Registry()

    @registry.job("control", "hangs", timeout=0.5)
    def hangs(ctx):
        try:
            time.sleep(60)
        finally:
            ctx.create_cache("cleaned-up", True)

    started = time.monotonic()
    run = hangs.run(database=backend_url, machine="m")
    assert time.monotonic() - started < 30, "interrupted, not slept out"
    assert (run.status, run.error, exit_code(run)) == ("timed-out", "timed out after 500ms", 124)
    with connect(backend_url) as db:
        assert db.runs.locks("control/hangs")[0].held is False
        assert [problem.kind for problem in db.check()] == ["timed-out"]
    with cache_session("control", "hangs", machine="m", database=backend_url) as ctx:
        assert ctx.latest("cleaned-up") is True, "the job's finally block ran and its write was kept"


def test_a_timeout_stops_a_job_run_from_another_thread(tmp_path):
    registry = Registry()

    @registry.job("control", "spins", timeout=0.3)
    def spins(ctx):
        while True:
            sum(range(1000))

    results = []
    worker = threading.Thread(target=lambda: results.append(spins.run(database=f"sqlite:///{tmp_path}/t.db")))
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and results[0].status == "timed-out"


def test_a_timed_out_attempt_is_retried(tmp_path):
    registry = Registry()
    calls = []

    @registry.job("control", "slow-once", timeout=0.3, retries=1)
    def slow_once(ctx):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(30)

    run = slow_once.run(database=f"sqlite:///{tmp_path}/t.db", machine="m")
    assert (run.status, run.attempts) == ("succeeded", 2)
    with connect(f"sqlite:///{tmp_path}/t.db") as db:
        assert [a.status for a in db.run(run.id).attempts] == ["timed-out", "succeeded"]


def test_a_session_block_past_its_timeout_raises_timed_out_and_is_recorded(backend_url):
    with pytest.raises(TimedOut):
        with cache_session("control", "block", database=backend_url, timeout=0.3) as ctx:
            time.sleep(30)
    assert ctx.run.status == "timed-out"


def test_a_timer_that_did_not_fire_leaves_nothing_behind(tmp_path):
    registry = Registry()
    quick = registry.job("control", "quick", timeout=0.2)(lambda ctx: None)
    assert quick.run(database=f"sqlite:///{tmp_path}/t.db").ok
    time.sleep(0.4)  # a TimedOut raised after the run would end this test


# -- once per slot ------------------------------------------------------------------------------------


def slot_job(**options):
    registry = Registry()
    return registry.job("control", "hourly", once_per="1h", **options)(lambda ctx: print("did the work"))


def test_once_per_slot_runs_on_one_machine_and_skips_the_others_saying_where_it_ran(backend_url):
    first = slot_job().run(database=backend_url, machine="web1")
    second = slot_job().run(database=backend_url, machine="web2")
    assert first.ok and first.slot is not None and first.slot.minute == first.slot.second == 0
    assert second.status == "skipped" and exit_code(second) == 75
    assert f"already ran in this slot on web1 (run {first.id})" in second.error
    assert f"{first.slot:%Y-%m-%d %H:%M:%S} UTC" in second.error


def test_a_failed_run_leaves_its_slot_open_unless_asked_to_keep_it(backend_url):
    registry = Registry()
    failing = registry.job("control", "hourly", once_per="1h")(lambda ctx: 1 / 0)
    assert failing.run(database=backend_url, machine="web1").status == "failed"
    retried = slot_job().run(database=backend_url, machine="web2")
    assert retried.ok, "the slot reopened after the failure"
    registry = Registry()
    kept = registry.job("control", "daily", once_per="1d", reopen_failed_slot=False)(lambda ctx: 1 / 0)
    failed = kept.run(database=backend_url, machine="web1")
    again = Registry().job("control", "daily", once_per="1d", reopen_failed_slot=False)(lambda ctx: None) \
        .run(database=backend_url, machine="web2")
    assert again.status == "skipped" and f"on web1 (run {failed.id}, failed)" in again.error


def test_a_slot_whose_run_is_still_running_says_so(backend_url):
    with cache_session("control", "hourly", machine="web1", database=backend_url, once_per="1h") as running:
        skipped = slot_job().run(database=backend_url, machine="web2")
    assert skipped.status == "skipped"
    assert f"already running in this slot on web1 (run {running.run.id})" in skipped.error


def test_a_session_whose_slot_is_taken_raises_job_skipped(backend_url):
    assert slot_job().run(database=backend_url, machine="web1").ok
    with pytest.raises(JobSkippedError, match="already ran in this slot"):
        with cache_session("control", "hourly", machine="web2", database=backend_url, once_per="1h"):
            raise AssertionError("the block of a skipped session never runs")


def test_once_per_on_a_database_of_an_older_revision_says_to_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    with connect(url) as db:
        db.backend.execute("UPDATE processcache_meta SET value = '3' WHERE name = 'schema_revision'")
    with connect(url, upgrade=False) as db:
        assert not db.has_revision(RUN_CONTROL_REVISION)
        with pytest.raises(SchemaError, match=r"once_per needs schema 2\.4.*run `processcache db upgrade`"):
            slot_job().run(database=db, machine="m")
        [run] = db.history.list_runs("control/hourly")
        assert run.status == "failed" and "once_per needs schema 2.4" in run.error


# -- skip if succeeded within ----------------------------------------------------------------------------


def test_a_job_that_succeeded_recently_on_any_machine_is_skipped_once_the_window_passes_it_runs(backend_url):
    def catch_up(fails=False):
        registry = Registry()
        return registry.job("control", "catch-up", skip_if_succeeded_within=1.5)(
            lambda ctx: 1 / 0 if fails else None)

    assert catch_up(fails=True).run(database=backend_url, machine="web1").status == "failed"
    first = catch_up().run(database=backend_url, machine="web2")
    assert first.ok, "a failure is not a success to skip after"
    skipped = catch_up().run(database=backend_url, machine="web3")
    assert skipped.status == "skipped" and f"on web2 (run {first.id})" in skipped.error
    time.sleep(2)
    assert catch_up().run(database=backend_url, machine="web3").ok


# -- captured output -------------------------------------------------------------------------------------


def output_logs(url: str, run_id: int) -> dict[str, str]:
    with connect(url) as db:
        return {log.level: log.message for log in db.store.logs(run_id=run_id) if log.level in ("STDOUT", "STDERR")}


def test_what_a_job_prints_is_stored_with_its_run_and_still_printed(backend_url, capsys):
    registry = Registry()

    @registry.job("control", "chatty")
    def chatty(ctx):
        print("to stdout")
        print("to stderr", file=sys.stderr)
        ctx.create_log("a log, stored once as a log")

    run = chatty.run(database=backend_url, machine="m", echo=lambda record: print(f"[echo] {record.message}",
                                                                                      file=sys.stderr))
    printed = capsys.readouterr()
    assert printed.out == "to stdout\n" and "to stderr" in printed.err and "[echo] a log" in printed.err
    assert output_logs(backend_url, run.id) == {"STDOUT": "to stdout", "STDERR": "to stderr"}, \
        "processcache's echo of the job's logs is not part of the job's output"


def test_only_the_end_of_a_long_output_is_kept_and_the_cut_is_said(tmp_path):
    registry = Registry()

    @registry.job("control", "floods", output_tail="1KiB")
    def floods(ctx):
        for n in range(10_000):
            print(f"line {n}")

    url = f"sqlite:///{tmp_path}/o.db"
    run = floods.run(database=url, machine="m")
    stored = output_logs(url, run.id)["STDOUT"]
    first, *lines = stored.splitlines()
    assert first.startswith("[the first ") and first.endswith(" bytes are not kept]")
    assert lines[-1] == "line 9999" and lines[0].startswith("line ") and len(stored) < 1100


def test_output_tail_zero_stores_no_output(tmp_path):
    registry = Registry()
    run = registry.job("control", "silent", output_tail=0)(lambda ctx: print("not stored")).run(
        database=f"sqlite:///{tmp_path}/o.db")
    assert output_logs(f"sqlite:///{tmp_path}/o.db", run.id) == {}


@settings(max_examples=25, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
def test_printed_text_comes_back_as_it_was_printed(tmp_path_factory, text):
    url = f"sqlite:///{tmp_path_factory.mktemp('out')}/o.db"
    registry = Registry()
    run = registry.job("control", "prints")(lambda ctx: sys.stdout.write(text)).run(database=url, machine="m")
    expected = text.removesuffix("\n").replace("\x00", "\\x00")
    assert output_logs(url, run.id).get("STDOUT", "") == expected


def test_printed_output_is_read_by_every_machine(backend_url):
    registry = Registry()
    run = registry.job("control", "prints")(lambda ctx: print("héllo ✓ 𝄞")).run(database=backend_url, machine="m")
    with cache_session("control", "prints", machine="other", database=backend_url) as ctx:
        assert [log.message for log in ctx.get_logs(machine=ANY, output=True) if log.run_id == run.id] == ["héllo ✓ 𝄞"]


# -- the same options on `processcache run` ------------------------------------------------------------------


def test_run_takes_a_timeout_and_once_per_over_the_jobs_own(tmp_path):
    from cli_helpers import cli

    jobs = tmp_path / "jobs.py"
    jobs.write_text("import time\nfrom processcache import job\n\n"
                    "@job('control', 'sleepy')\ndef sleepy(ctx):\n    print('going to sleep')\n    time.sleep(60)\n")
    url = f"sqlite:///{tmp_path}/cli.db"
    stopped = cli("run", f"{jobs}:sleepy", "-d", url, "-m", "m", "--timeout", "0.5", "--once-per", "1d")
    assert stopped.returncode == 124 and "timed-out in" in stopped.stderr and "timed out after 500ms" in stopped.stderr
    reopened = cli("run", f"{jobs}:sleepy", "-d", url, "-m", "other", "--timeout", "0.5", "--once-per", "1d")
    assert reopened.returncode == 124, "a timed-out run leaves its slot open"
    refused = cli("run", f"{jobs}:sleepy", "-d", url, "--timeout", "later")
    assert refused.returncode == 2 and "the timeout 'later' is not a duration" in refused.stderr
    with connect(url) as db:
        runs = db.history.list_runs("control/sleepy")
        assert [run.status for run in runs] == ["timed-out", "timed-out"]
        assert output_logs(url, runs[0].id) == {"STDOUT": "going to sleep"}


def test_a_database_another_process_created_first_is_used_at_its_revision(tmp_path):
    """Cron starts several runs on a new database at once: the one that finds the tables made must use them all."""
    url = f"sqlite:///{tmp_path}/new.db"
    with connect(url, create=False) as late:  # found no tables...
        with connect(url):  # ...then another process made them
            pass
        late.sync("create")  # what connect() does next: nothing is missing now
        assert late.has_revision(RUN_CONTROL_REVISION)
        assert slot_job().run(database=late, machine="web1").ok


def test_once_per_schedule_keeps_each_due_time_to_one_machine(backend_url):
    def scheduled():
        registry = Registry()
        return registry.job("control", "every-5", schedule="*/5 * * * *", once_per="schedule")(lambda ctx: None)

    first = scheduled().run(database=backend_url, machine="web1")
    second = scheduled().run(database=backend_url, machine="web2")
    assert first.ok and first.slot.minute % 5 == 0 and first.slot.second == 0
    assert second.status == "skipped" and "(the schedule's due time)" in second.error
    with pytest.raises(RegistryError, match="once_per='schedule' needs the job's schedule"):
        Registry().job("control", "unscheduled", once_per="schedule")(lambda ctx: None)


def test_prune_takes_a_runs_attempts_and_old_slots_with_it(backend_url):
    flaky, _ = flaky_job(1, retries=1, once_per="1h")
    old = flaky.run(database=backend_url, machine="m")
    with connect(backend_url) as db:
        assert len(db.run(old.id).attempts) == 2
        long_ago = "2020-01-01 00:00:00"
        db.backend.execute("UPDATE process_job_runs SET started_at = $t WHERE id = $id", {"t": long_ago, "id": old.id})
        db.backend.execute("UPDATE process_job_slots SET slot = slot - 86400 * 400")
    newer = [Registry().job("control", "flaky", once_per="1h")(lambda ctx: None).run(database=backend_url,
                                                                                   machine="m") for _ in range(2)]
    assert [run.status for run in newer] == ["succeeded", "skipped"]
    with connect(backend_url) as db:
        assert db.history.prune(runs_older_than=30 * 86400)["runs"] == 1
        assert db.backend.value("SELECT COUNT(*) FROM process_job_attempts WHERE run_id = $id", {"id": old.id}) == 0
        assert db.backend.values("SELECT run_id FROM process_job_slots") == [newer[0].id]
