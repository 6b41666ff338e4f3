"""The crontab trial's per-minute table and its checks (docs/trials/crontab.rst).

    processcache runs trial --json -n 1000 | python summarise.py /var/tmp/trial/exits.log

Reads the trial's runs (JSON on stdin) and the exit codes cron's lines
logged ("HH:MM MACHINE JOB EXIT"), prints one row per minute and job (the
machine whose run claimed the minute's slot, its status, what each machine
exited with, what became of the other runs), then the checks. Exits 1 if a
check fails.
"""

import collections
import json
import sys

MACHINES = ("web1", "web2", "web3")
#: What each job's slot winner exits with in a minute: trial/hang times out in even minutes.
EXPECTED = {"report": lambda minute: 0, "py": lambda minute: 0,
            "hang": lambda minute: 124 if int(minute[-2:]) % 2 == 0 else 0}


def minute_of(run):
    """HH:MM of the slot a run claimed; a run that claimed none (skipped by the lock, failed before) by its start."""
    return (run["slot"] or run["started_at"])[11:16]


def fate(run):
    """What became of a run that did not claim the slot, in a word: skipped by the lock or the slot, or failed."""
    if run["status"] != "skipped":
        return run["status"]
    return "lock" if "holds the lock" in run["error"] else "slot"


def main():
    runs = [run for run in json.load(sys.stdin) if run["group"] == "trial"]
    exits = collections.defaultdict(list)
    for line in open(sys.argv[1]):
        minute, machine, job, code = line.split()
        exits[minute, job].append((machine, int(code)))
    by_minute = collections.defaultdict(list)
    for run in runs:
        by_minute[minute_of(run), run["job"]].append(run)
    problems = []
    print(f"{'minute':6}  {'job':6}  {'ran on':6}  {'run':>4}  {'status':9}  "
          + "  ".join(f"{m:4}" for m in MACHINES) + "  the others")
    for minute, job in sorted(set(by_minute) | set(exits)):
        here, logged = by_minute[minute, job], exits[minute, job]
        claimed = [run for run in here if run["slot"]]
        won = claimed[0] if len(claimed) == 1 else {"machine": "-", "id": "-", "status": "-"}
        codes = ["/".join(str(code) for who, code in logged if who == m) or "-" for m in MACHINES]
        others = ", ".join(f"{run['machine']}: {fate(run)}" for run in here if not run["slot"])
        print(f"{minute:6}  {job:6}  {won['machine']:6}  {won['id']:>4}  {won['status']:9}  "
              + "  ".join(f"{code:4}" for code in codes) + "  " + others)
        problems += check(minute, job, here, claimed, logged)
    print()
    for machine in MACHINES:
        counts = collections.Counter(code for logged in exits.values() for who, code in logged if who == machine)
        print(f"{machine} exit codes: " + ", ".join(f"{code}: {n}" for code, n in sorted(counts.items())))
    print("\n".join(problems) or f"checks passed: {len(by_minute)} minute-jobs, each slot claimed by one run")
    sys.exit(1 if problems else 0)


def check(minute, job, here, claimed, logged):
    """What is wrong in one minute of one job: a slot claimed twice or never, a run that failed before
    claiming it, a machine that did not fire or exited otherwise than expected."""
    where = f"{minute} {job}:"
    problems = [f"{where} run {run['id']} on {run['machine']} {run['status']}: {run['error']}"
                for run in here if not run["slot"] and run["status"] != "skipped"]
    if len(claimed) != 1:
        problems.append(f"{where} {len(claimed)} runs claimed the slot ({', '.join(str(r['id']) for r in claimed)})")
    machines = sorted(machine for machine, _code in logged)
    if machines != list(MACHINES) or len(here) != len(MACHINES):
        problems.append(f"{where} {len(here)} runs recorded, exit codes logged by {machines}")
    codes, expected = sorted(code for _machine, code in logged), sorted([EXPECTED[job](minute), 75, 75])
    if codes != expected:
        problems.append(f"{where} exit codes {codes}, expected {expected}")
    return problems


if __name__ == "__main__":
    main()
