"""The monitoring trial's per-minute table and its checks (docs/trials/monitoring.rst).

    PROCESSCACHE_DATABASE_URL=... python summarise.py /var/tmp/monitoring_trial/run

Reads what the trial left in its log folder (exits.log, check/mon1.HH:MM.err
and .out..., webhook.jsonl, mailbox.txt) and what the database holds
(``processcache runs --json`` and ``processcache alerts``, run by this
Python), prints one row per minute (each job's run and status, each
checker's exit code and what it said on stderr), the messages each channel
received, the ``alerts`` listing, then the checks. Exits 1 if a check fails.
"""

import collections
import email
import json
import subprocess
import sys
from email import policy
from pathlib import Path

JOBS = ("flaky", "steady", "muted")
CHECKERS = ("mon1", "mon2")
TOKEN = "tok-5e1f9a7c2b8d4e60"  # the secret in the webhook's path: must never be printed
RECOVERED = "trial/flaky recovered after 3 failed runs"


def processcache(*args: str) -> str:
    """What ``processcache ARGS`` prints, run from the log folder's parent (not a source tree)."""
    return subprocess.run([sys.executable, "-m", "processcache", *args], capture_output=True, text=True,
                          check=True, cwd="/").stdout


def webhook_posts(log: Path) -> list[dict]:
    path = log / "webhook.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mails(log: Path) -> list[email.message.EmailMessage]:
    """The messages in the mailbox file, each after its ``=== <time> MAIL FROM...`` line."""
    path = log / "mailbox.txt"
    if not path.exists():
        return []
    chunks = path.read_text().split("=== ")[1:]
    return [email.message_from_string(chunk.split("\n", 1)[1], policy=policy.default) for chunk in chunks]


def minute_table(log: Path, runs: list[dict]) -> list[str]:
    """One line per minute: each job's run (id and status), each checker's exit code and stderr lines."""
    exits: dict[tuple[str, str], str] = {}
    for line in (log / "exits.log").read_text().splitlines():
        minute, who, _what, code = line.split()
        exits[minute, who] = code
    by_minute: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for run in runs:
        by_minute[run["started_at"][11:16]][run["job"]] = f"{run['id']} {run['status']}"
    lines = ["minute  " + "  ".join(f"{'trial/' + job:17}" for job in JOBS) + "  " + "  ".join(
        f"{c} exit" for c in CHECKERS) + "  what the checkers said on stderr"]
    for minute in sorted({m for m, _who in exits}):
        cells = [f"{by_minute[minute].get(job, '-'):17}" for job in JOBS]
        codes = [f"{exits.get((minute, c), '-'):9}" for c in CHECKERS]
        said = [f"{c}: {line.removeprefix('processcache: ')}" for c in CHECKERS
                for line in read(log / "check" / f"{c}.{minute}.err").splitlines()]
        lines.append(f"{minute}   " + "  ".join(cells) + "  " + "  ".join(codes) + "  " + ("; ".join(said) or "-"))
    return lines


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def checks(log: Path, posts: list[dict], mailed: list, deliveries: list[dict], printed: str) -> list[str]:
    """What is wrong: not exactly the two messages per channel, the token shown somewhere, a message about
    another job, a change made twice."""
    problems = []
    hooked = [(p["body"]["job"], p["body"]["event"], p["body"]["text"]) for p in posts]
    if [(job, event) for job, event, _text in hooked] != [("trial/flaky", "failing"), ("trial/flaky", "recovered")]:
        problems.append(f"webhook: expected flaky failing then recovered, got {hooked}")
    elif hooked[1][2] != RECOVERED:
        problems.append(f"webhook: recovery says {hooked[1][2]!r}, not {RECOVERED!r}")
    if any(TOKEN not in p["path"] for p in posts):
        problems.append("webhook: a POST did not go to the token's path")
    subjects = [m["Subject"] for m in mailed]
    if (len(subjects) != 2 or "trial/flaky is failing" not in subjects[0]
            or subjects[1] != f"[processcache] {RECOVERED}"):
        problems.append(f"mail: expected flaky failing then recovered, got {subjects}")
    if sorted((d["job"], d["status"], d["attempts"]) for d in deliveries) != [("trial/flaky", "sent", 1)] * 4:
        problems.append("alerts: expected 4 messages about trial/flaky, each sent at the first try")
    said = "".join(read(path) for path in sorted((log / "check").glob("*.err")))
    for line in ("trial/flaky failing: 2 message(s) queued", "trial/flaky recovered: 2 message(s) queued",
                 "trial/muted failing (muted: no message)", "trial/muted recovered (muted: no message)"):
        if said.count(line) != 1:
            problems.append(f"checkers said {line!r} {said.count(line)} times, not once")
    if said.count(": sent") != 4:
        problems.append(f"checkers reported {said.count(': sent')} messages sent, not 4")
    if "steady" in said:
        problems.append("a checker changed trial/steady's state")
    shown = [str(path) for path in log.rglob("*") if path.is_file() and path.name != "webhook.jsonl"
             and TOKEN in read(path)]
    if TOKEN in printed:
        shown.append("processcache's runs and alerts")
    if shown:
        problems.append(f"the token is shown in {shown}")
    return problems


def main() -> None:
    log = Path(sys.argv[1])
    runs = json.loads(processcache("runs", "trial", "--json", "-n", "1000"))
    alerts_table, alerts_json = processcache("alerts"), processcache("alerts", "--json")
    deliveries = json.loads(alerts_json)
    posts, mailed = webhook_posts(log), mails(log)
    print("\n".join(minute_table(log, runs)))
    print(f"\nwebhook: {len(posts)} POSTs")
    for post in posts:
        print(f"  {post['received_at']} {post['path'].replace(TOKEN, '<token>')}: {post['body']['text']}")
    print(f"mailbox: {len(mailed)} messages")
    for message in mailed:
        print(f"  {message['Subject']}")
    print("\nprocesscache alerts:\n" + alerts_table)
    printed = alerts_table + alerts_json + processcache("runs", "trial", "--json", "-n", "1000")
    problems = checks(log, posts, mailed, deliveries, printed)
    print("\n".join(problems) or "checks passed: 2 messages per channel, about trial/flaky only; "
          "each change made once; the token shown nowhere")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
