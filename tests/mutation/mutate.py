"""Mutation testing of the modules that keep processcache's promises, by hand: ``python tests/mutation/mutate.py``.

For each module named (all of `MODULES` without a name) it mutates the
module in a separate git worktree of the current commit, one small change
at a time (cosmic-ray: ``<`` for ``<=``, ``and`` for ``or``, a number off
by one, a ``break`` for a ``continue``...), runs that module's tests against
each mutant with the PostgreSQL and MariaDB servers on, and prints the
score: the share of mutants some test failed on. A surviving mutant is a
change no test noticed: kill it with a test, or, when no behaviour a user
could see changes, list it in ``tests/mutation/equivalent.txt`` with the
reason. ``docs/mutation.rst`` keeps the last scores and says how.

Why cosmic-ray: it writes each mutant into the module's file on disk, so
the ``python -m processcache`` processes the tests start (most promises are
tested through real processes) run the mutant too; mutmut 3 switches its
mutants on in the test process only. And why a worktree: the mutants are
written to disk, so never in the checkout people work in.

A session is kept per module (and content of it and its tests) in the worktree's ``.mutation``
folder: run the same command again after an interruption and it goes on
where it stopped. ``--fresh`` starts over.
"""

import argparse
import contextlib
import datetime
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
SERVERS = {"PROCESSCACHE_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
           "PROCESSCACHE_TEST_MYSQL_URL": "mysql://root@127.0.0.1:3306/test"}
#: -x: the first failing test kills the mutant; -p no:randomly: the same order each time; -n 2: this machine's cores.
PYTEST = f"{shlex.quote(sys.executable)} -m pytest -x -q -p no:randomly -n 2"
#: Replacements that only ever crash on the first call (a float shifted, or'ed, raised to a power): each costs
#: a whole test run to learn nothing, so they are skipped (listed as excluded, never counted).
EXCLUDED_OPERATORS = [r"core/ReplaceBinaryOperator_\w+_(Pow|RShift|LShift|BitOr|BitAnd|BitXor)$"]


class Target(NamedTuple):
    """The files mutated together under one name, and the tests a developer runs for them."""

    paths: tuple[str, ...]
    tests: tuple[str, ...]


PROMISES = "tests/test_promises.py::test_"
LEASES = (f"{PROMISES}a_command_that_runs_through_several_leases_while_they_are_renewed_succeeds",
          f"{PROMISES}each_renewal_resets_how_long_the_lease_went_unconfirmed",
          f"{PROMISES}a_renewal_that_finds_the_lock_taken_marks_the_lease_lost_and_stops_resetting")
RETRIES = f"{PROMISES}retries_stop_at_a_lost_lock"
MASKING = f"{PROMISES}a_password_in_any_form_of_the_url_is_masked_in_every_copy_of_every_message"
ESCAPING = (f"{PROMISES}the_report_shows_every_stored_text_as_text_whatever_tag_it_holds",
            f"{PROMISES}the_dashboards_pages_show_every_stored_text_as_text")

#: Module -> its tests: the test files whose names say they test it, and the promise tests (test_promises.py)
#: and single tests elsewhere that reach it, by node id; a module's doctests run by naming its file.
MODULES = {
    "durations": Target(("processcache/durations.py",), ("tests/test_durations.py", "processcache/durations.py")),
    "names": Target(("processcache/names.py",), ("tests/test_names.py", "processcache/names.py")),
    "fence": Target(("processcache/storage/fence.py",), ("tests/storage/test_fencing.py", RETRIES)),
    "heartbeat": Target(("processcache/run/heartbeat.py",),
                        (*LEASES, "tests/storage/test_fencing.py",
                         "tests/run/test_locks.py::test_heartbeats_keep_a_long_run_alive_past_its_lease")),
    "attempts": Target(("processcache/run/attempts.py",), ("tests/run/test_run_control.py", RETRIES)),
    "timeouts": Target(("processcache/run/timeouts.py",), ("tests/run/test_run_control.py", "tests/run/test_exec.py")),
    "retry": Target(("processcache/storage/retry.py",),
                    ("tests/system/test_faults.py", "tests/system/test_failover.py",
                     "tests/system/test_bounded_waits.py")),
    "waits": Target(("processcache/storage/waits.py",),
                    ("tests/system/test_bounded_waits.py", "tests/storage/test_pool.py")),
    "config": Target(("processcache/storage/config.py",),
                     ("tests/storage/test_config.py", "tests/storage/test_secrets.py", MASKING)),
    "schema": Target(("processcache/storage/schema.py",),
                     ("tests/storage/test_schema_guard.py", "tests/storage/test_upgrades.py")),
    "check": Target(("processcache/monitor/check.py", "processcache/storage/history.py"),
                      ("tests/monitor/test_judgements.py", "tests/cli/test_cli_check.py",
                       "tests/monitor/test_retire.py")),
    "cache": Target(("processcache/storage/cache.py",),
                    ("tests/cache/test_cache.py", "tests/cache/test_cache_features.py",
                     "tests/cache/test_cache_model.py")),
    "context": Target(("processcache/cache/context.py",), ("tests/test_api.py", "tests/cache/test_cache_features.py")),
    "memo": Target(("processcache/cache/memo.py",), ("tests/cache/test_memo.py", "tests/cache/test_memo_threads.py")),
    "command": Target(("processcache/run/command.py", "processcache/run/supervised.py"),
                      ("tests/run/test_exec.py", "tests/run/test_supervision.py", "tests/run/test_signals.py")),
    "schedules": Target(("processcache/schedules.py",), ("tests/test_schedules.py",)),
    "alerts": Target(("processcache/monitor/alerts.py",),
                     ("tests/monitor/test_alerts.py", "tests/cli/test_cli_check.py")),
    "channels": Target(("processcache/monitor/channels.py",), ("tests/monitor/test_alerts.py",)),
    "report": Target(("processcache/web/parts.py", "processcache/web/pages.py"),
                     ("tests/web/test_report.py", "tests/cli/test_cli_escaping.py", *ESCAPING)),
}


class Mutant(NamedTuple):
    path: str
    line: int
    operator: str
    occurrence: int


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prepare_tree(tree: Path, commit: str) -> None:
    """The worktree at *commit*, any mutant an interrupted run left on disk undone."""
    if tree.resolve() == REPO:
        sys.exit("the worktree must not be the checkout you work in: the mutants are written to disk")
    if not (tree / ".git").exists():
        git("worktree", "add", "--detach", str(tree), commit)
    git("checkout", "--detach", "--force", commit, cwd=tree)  # in the worktree only: undoes a mutant left behind


def environment(tree: Path) -> dict[str, str]:
    """The tests' environment: the servers on, and the worktree's processcache first in every process they start."""
    return {**os.environ, **SERVERS, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def config(name: str, target: Target, tree: Path, timeout: float) -> str:
    excluded = ", ".join(f"'{operator}'" for operator in EXCLUDED_OPERATORS)
    return (f"[cosmic-ray]\nmodule-path = [{', '.join(repr(p) for p in target.paths)}]\ntimeout = {timeout:.0f}\n"
            f"excluded-modules = []\ntest-command = {test_command(name, tree)!r}\n\n"
            f"[cosmic-ray.distributor]\nname = 'local'\n\n"
            f"[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n")


def test_command(name: str, tree: Path) -> str:
    """What cosmic-ray runs per mutant: this script's `tests_of`, which runs the tests and ends what they left."""
    return shlex.join([sys.executable, str(Path(__file__).resolve()), "--tests-of", name, "--tree", str(tree)])


def tests_of(name: str, tree: Path) -> int:
    """Run the module's tests in the worktree; then end the worker scripts a mutant kept from ending."""
    code = subprocess.run(shlex.split(PYTEST) + list(MODULES[name].tests), cwd=tree).returncode
    stop_leftovers(tree)
    return code


def baseline(target: Target, tree: Path, env: dict[str, str]) -> float:
    """Seconds the tests take on the unmutated code; exits if they fail there twice (every mutant would look killed).

    A timing test can fail once on a loaded machine: then a mutant's kill may be that flake, so it says so.
    """
    for attempt in (1, 2):
        began = time.monotonic()
        done = subprocess.run(shlex.split(PYTEST) + list(target.tests), cwd=tree, env=env, capture_output=True,
                              text=True)
        if done.returncode == 0:
            return time.monotonic() - began
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        print(f"the tests failed on the unmutated code ({attempt} of 2): {failed or done.stdout[-2000:]}", flush=True)
    sys.exit("the tests fail on the unmutated code: fix them (or the machine's load) first")


def files(tests: tuple[str, ...]) -> list[str]:
    """The files of *tests*, some of which are single tests (``file::test``)."""
    return sorted({test.split("::")[0] for test in tests})


def session_file(name: str, tree: Path) -> Path:
    """Where the module's session is kept: one per content of the module, its tests and their conftest."""
    target = MODULES[name]
    blobs = git("rev-parse", *(f"HEAD:{path}" for path in (*target.paths, *files(target.tests), "tests/conftest.py")),
                cwd=tree)
    return tree / ".mutation" / f"{name}-{hashlib.sha1(blobs.encode()).hexdigest()[:10]}.sqlite"


def run(name: str, tree: Path, fresh: bool) -> None:
    """Mutate one module and run its tests on each mutant; a kept session goes on where it stopped."""
    target, env = MODULES[name], environment(tree)
    session = session_file(name, tree)
    session.parent.mkdir(exist_ok=True)
    settings = session.with_suffix(".toml")
    if fresh or not session.exists():
        session.unlink(missing_ok=True)
        seconds = baseline(target, tree, env)
        print(f"{name}: the tests take {seconds:.0f} s on the unmutated code", flush=True)
        # A mutant that makes the tests hang is killed by the timeout: three times the clean run, and a margin.
        commit = git("rev-parse", "--short=10", "HEAD", cwd=tree)
        settings.write_text(f"# {datetime.date.today()} {commit}\n{config(name, target, tree, 3 * seconds + 60)}")
        cosmic_ray("cli", "init", str(settings), str(session), tree=tree)
        cosmic_ray("tools.filters.operators_filter", str(session), str(settings), tree=tree)
    cosmic_ray("cli", "exec", str(settings), str(session), tree=tree)


def stop_leftovers(tree: Path) -> None:
    """End the worker scripts of this worktree's tests still running: a mutant can keep one from ever ending."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.decode(errors="replace").startswith(f"{tree}/tests/") for arg in args[1:3]):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


def cosmic_ray(module: str, *args: str, tree: Path) -> None:
    """A cosmic-ray command, by this Python, in the worktree: it mutates the files under its current folder."""
    subprocess.run([sys.executable, "-m", f"cosmic_ray.{module}", *args], cwd=tree, env=environment(tree), check=True)


def equivalents() -> dict[Mutant, str]:
    """The kept mutants judged equivalent: ``path line operator occurrence reason``, one a line."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            path, number, operator, occurrence, reason = line.split(maxsplit=4)
            found[Mutant(path, int(number), operator, int(occurrence))] = reason
    return found


class Score(NamedTuple):
    mutants: int
    killed: int
    equivalent: int
    survivors: list[tuple[Mutant, str]]
    run: str  # the date and commit the session began at

    def percent(self) -> float:
        judged = self.mutants - self.equivalent
        return 100.0 * self.killed / judged if judged else 100.0


def score(name: str, tree: Path) -> Score | None:
    """The finished mutants of the module's session: killed, equivalent (kept file) and surviving."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    session = session_file(name, tree)
    if not session.exists():  # the last run, of an older module or tests: marked so
        older = sorted(tree.glob(f".mutation/{name}-*.sqlite"), key=lambda path: path.stat().st_mtime)
        if not older:
            return None
        session = older[-1]
    known, mutants, killed, equivalent, survivors = equivalents(), 0, 0, 0, []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue  # an excluded operator
            spec = item.mutations[0]
            mutant = Mutant(str(spec.module_path), spec.start_pos[0], spec.operator_name, spec.occurrence)
            mutants += 1
            if result.test_outcome != TestOutcome.SURVIVED:
                killed += 1
            elif mutant in known:
                equivalent += 1
            else:
                survivors.append((mutant, result.diff or ""))
    run = session.with_suffix(".toml").read_text().splitlines()[0].lstrip("# ")
    run += "" if session == session_file(name, tree) else " *"
    return Score(mutants, killed, equivalent, survivors, run)


def report(names: list[str], tree: Path, diffs: bool) -> None:
    """The score per module as a reStructuredText table (docs/mutation.rst keeps it), then each survivor."""
    columns = ("mutants", "killed", "equivalent", "survived", "score")
    rule = " ".join(["=" * 12, "=" * 23] + ["=" * 10] * len(columns))
    print(f"\n{rule}\n" + " ".join([f"{'module':12}", f"{'date and commit':23}"]
                                    + [f"{column:>10}" for column in columns]) + f"\n{rule}")
    scores = {name: score(name, tree) for name in names}
    for name, found in scores.items():
        if found is None:
            print(f"{name:12} {'not run':23}")
        else:
            print(f"{name:12} {found.run:23} {found.mutants:10} {found.killed:10} {found.equivalent:10}"
                  f" {len(found.survivors):10} {found.percent():9.1f}%")
    print(rule)
    if any(found and found.run.endswith("*") for found in scores.values()):
        print("* the last run was of another version of the module or its tests")
    for found in scores.values():
        for mutant, diff in found.survivors if found else ():
            print(f"\nsurvived: {mutant.path} {mutant.line} {mutant.operator} {mutant.occurrence}")
            if diffs:
                print(diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="module",
                        help=f"what to mutate (default: all): {', '.join(MODULES)}")
    parser.add_argument("--tree", type=Path, default=Path(tempfile.gettempdir()) / "processcache-mutation",
                        help="the separate git worktree the mutants are written in (made if missing)")
    parser.add_argument("--fresh", action="store_true", help="start each module's session over")
    parser.add_argument("--report", action="store_true", help="print the scores of the kept sessions, run nothing")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's change")
    parser.add_argument("--tests-of", metavar="MODULE", help=argparse.SUPPRESS)  # cosmic-ray's test command
    options = parser.parse_args()
    if options.tests_of:
        sys.exit(tests_of(options.tests_of, options.tree))
    for name in options.modules:
        if name not in MODULES:
            parser.error(f"no module {name!r}: choose from {', '.join(MODULES)}")
    names = options.modules or list(MODULES)
    if not options.report:
        prepare_tree(options.tree, git("rev-parse", "HEAD"))
        for name in names:
            run(name, options.tree, options.fresh)
    report(names, options.tree, options.diffs)


if __name__ == "__main__":
    main()
