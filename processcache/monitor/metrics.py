"""Prometheus metrics of every job: what ``processcache metrics`` prints and serves.

The exposition is Prometheus's classic text format (version 0.0.4), not
OpenMetrics: node_exporter's textfile collector reads only the classic
format, and every Prometheus scrapes it. Every family is a gauge, judged
by the database server's clock when the metrics are read.

Labels: ``group``, ``job_name`` and, for what differs between machines,
``machine``. Not ``job``: Prometheus gives every scraped series the
``job`` label of its scrape configuration, and renames a ``job`` label the
target exposes to ``exported_job`` (kube-state-metrics says ``job_name``
for the same reason). A state is one-hot, as kube-state-metrics writes
them: one series per possible value, 1 for the value that holds and 0 for
the others, so every series exists from the first scrape and an alert
can say ``== 1``. Label values are escaped as the format requires
(``\\``, ``"`` and a newline); machine names may hold any of them.

Per job, whichever machine ran it:

- ``processcache_job_last_success_timestamp_seconds``: when the newest
  succeeded run on any machine ended, in seconds since the epoch; 0 when
  none did, so ``time() - ... > 86400`` fires for a job that no machine
  ran well for a day, or ever, and not for a farm-wide job on the machine
  that lost the race for its lock.
- ``processcache_job_problem{kind=...}``: 1 for each problem ``processcache
  check`` reports (overdue, missed, late, bad-schedule, failed, timed-out,
  lost, terminated, too-long), 0 for the others. A problem of a run is the
  machine's it ran on, and its series carries that ``machine`` label (the
  job's last run failed, timed out, was lost or terminated there, or took
  too long there); one of the job's (overdue, missed, late, bad-schedule)
  has none. So a failing job that fails next on another machine is a new
  series: a new alert, naming the machine to look at.

Per job and machine (the machines it ran on, wrote entries from or holds a lock on):

- ``processcache_job_machine_last_success_timestamp_seconds``: when the
  newest succeeded run there ended, 0 when none did; for a job every
  machine runs (``lock="machine"``), where each machine's success counts.
- ``processcache_job_last_run_status{status=...}``: the status of the
  newest run that did the work (``running`` while it runs; ``lost`` when
  its heartbeat stopped), one series per status of `RUN_STATUSES`;
  ``skipped`` only when every run there was skipped.
- ``processcache_job_last_run_duration_seconds``: how long the newest run
  that ended took (absent before one ended).
- ``processcache_job_running``: runs in progress now, heartbeat alive.
- ``processcache_job_consecutive_failures``: runs that failed, timed out,
  were lost or terminated since the last success there.
- ``processcache_job_lock_held``: 1 while a run there holds the job's lock.
- ``processcache_job_cache_entries``: live cache entries written there.

And ``processcache_jobs``: how many jobs the database holds; 0 is what
``check`` calls no-jobs (is the database URL right?). Retired jobs are
left out, as ``check`` and ``jobs`` leave them out. Read from a standby
(``metrics --read-url``), ``processcache_replay_lag_seconds`` says how far
behind its primary it is (`processcache.storage.standby`): every other
family is as of then.
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from ..options import DEFAULT_GRACE
from ..records import RUN_STATUSES
from ..storage import read_ledger
from .check import check

if TYPE_CHECKING:
    from ..records import Problem
    from ..storage import Database, Ledger, MachineState

#: The Content-Type of the exposition, for an HTTP server.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The problems `check` reports about a job, each one series of ``processcache_job_problem`` (a kind `check`
#: adds later gets its series where a job has it).
PROBLEM_KINDS = ("overdue", "missed", "late", "bad-schedule", "failed", "timed-out", "lost", "terminated", "too-long")
#: The problems of the job's judged run, which are the machine's it ran on (``processcache_job_problem``'s ``machine``).
RUN_PROBLEMS = ("failed", "timed-out", "lost", "terminated", "too-long")
JOB_LABELS = ("group", "job_name")
MACHINE_LABELS = (*JOB_LABELS, "machine")

#: A sample: its label values (in its family's label order, plus a state's) and its value.
Sample = tuple[tuple[str, ...], float]


class Family(NamedTuple):
    """One metric family: a gauge, its help, its label names and its samples."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: list[Sample]


#: The families with one sample per job and machine: name, help, and the value (None: no sample).
_PER_MACHINE: tuple[tuple[str, str, Callable[["MachineState"], float | None]], ...] = (
    ("processcache_job_machine_last_success_timestamp_seconds",
     "When the newest succeeded run of the job on the machine ended, in seconds since the epoch (0: none did).",
     lambda state: state.last_success.timestamp() if state.last_success else 0),
    ("processcache_job_last_run_duration_seconds",
     "How long the newest run of the job on the machine that ended took, in seconds.",
     lambda state: state.last_duration),
    ("processcache_job_running", "Runs of the job in progress on the machine now (heartbeat alive).",
     lambda state: state.running),
    ("processcache_job_consecutive_failures",
     "Runs of the job on the machine that failed, timed out, were lost or terminated since its last success.",
     lambda state: state.failures),
    ("processcache_job_lock_held", "1 while a run of the job on the machine holds the job's lock.",
     lambda state: int(state.lock_held)),
    ("processcache_job_cache_entries", "Live cache entries of the job written on the machine.",
     lambda state: state.entries),
)


def exposition(database: "Database", grace: float = DEFAULT_GRACE) -> str:
    """The metrics of every job in *database*, as Prometheus text; *grace* as ``check``'s (seconds)."""
    return render(collect(database, grace))


def collect(database: "Database", grace: float = DEFAULT_GRACE) -> list[Family]:
    """Every family (see the module docstring), read in a fixed number of queries whatever the ledger holds.

    The five of `storage.metrics.read_ledger` for the machines (the
    server's clock, the jobs, the runs per machine, the entries, the
    locks), then those of ``check(db, grace)`` for the problems (and
    on PostgreSQL one for the replay lag, `Database.replay_lag`): in
    one read transaction that sees one moment (`Backend.snapshot`), so a
    run that ends meanwhile is not running in one family and failed in
    another; read again whole after a lost connection.
    """
    def read() -> tuple["Ledger", list["Problem"], float | None]:
        with database.backend.snapshot():
            return read_ledger(database), check(database, grace), database.replay_lag()

    ledger, found, lag = database.backend.retrying(read)
    machines = [((state.group, state.job, state.machine), state) for state in ledger.machines]
    families = [Family(name, text, MACHINE_LABELS,
                       [(labels, value) for labels, state in machines if (value := of(state)) is not None])
                for name, text, of in _PER_MACHINE]
    families.insert(1, Family(
        "processcache_job_last_run_status",
        "1 for the status of the newest run of the job on the machine that did the work (skipped: none did).",
        (*MACHINE_LABELS, "status"),
        _states([(labels, {state.last_status} if state.last_status else set()) for labels, state in machines],
                RUN_STATUSES)))
    families.insert(0, Family(
        "processcache_job_last_success_timestamp_seconds",
        "When the newest succeeded run of the job on any machine ended, in seconds since the epoch (0: none did).",
        JOB_LABELS, _last_successes(ledger)))
    families.append(Family(
        "processcache_job_problem",
        "1 for each problem `processcache check` reports about the job; machine: the one a run's problem is on.",
        (*JOB_LABELS, "kind", "machine"), _problems(ledger.jobs, found)))
    families.append(Family("processcache_jobs", "Jobs in the database, retired ones left out (0: is the URL right?).",
                           (), [((), len(ledger.jobs))]))
    if lag is not None:
        families.append(Family("processcache_replay_lag_seconds",
                               "How far behind its primary the standby these metrics were read from is (inf: unknown).",
                               (), [((), lag)]))
    return families


def _states(items: list[tuple[tuple[str, ...], set[str]]], known: Iterable[str]) -> list[Sample]:
    """For each labelled item, one sample per state: 1 for each state in its set, 0 for the others.

    The states are *known* and any other an item holds (a status or a
    problem a newer release records), so no state is ever dropped.
    """
    every = list(known) + sorted({state for _, held in items for state in held} - set(known))
    return [((*labels, state), int(state in held)) for labels, held in items for state in every]


def _last_successes(ledger: "Ledger") -> list[Sample]:
    """Per job, the end of its newest succeeded run on any machine (the newest of its machines'); 0: none did."""
    newest: dict[tuple[str, ...], float] = dict.fromkeys(ledger.jobs, 0)
    for state in ledger.machines:
        if state.last_success is not None:
            job = (state.group, state.job)
            newest[job] = max(newest[job], state.last_success.timestamp())
    return list(newest.items())


def _problems(jobs: list[tuple[str, str]], found: list["Problem"]) -> list[Sample]:
    """Per job, one sample per problem kind: 1 per machine with that problem (machine "": the job's), else one 0.

    The kinds are `PROBLEM_KINDS` and any other `check` reports (a newer
    release's), as `_states` does; the machine is the judged run's for
    `RUN_PROBLEMS`.
    """
    held: dict[str, dict[str, set[str]]] = {}
    for problem in found:
        machine = problem.run.machine if problem.kind in RUN_PROBLEMS and problem.run is not None else ""
        held.setdefault(problem.job, {}).setdefault(problem.kind, set()).add(machine)
    every = list(PROBLEM_KINDS) + sorted({kind for kinds in held.values() for kind in kinds} - set(PROBLEM_KINDS))
    samples: list[Sample] = []
    for job in jobs:
        kinds = held.get("/".join(job), {})
        samples += [((*job, kind, machine), 1) for kind in every for machine in kinds.get(kind, ())]
        samples += [((*job, kind, ""), 0) for kind in every if kind not in kinds]
    return samples


def render(families: Iterable[Family]) -> str:
    """*families* in the classic text format: HELP and TYPE, then the samples sorted by their labels.

    A label whose value is empty is left out, as Prometheus stores it (a
    problem of the job's has no ``machine``). Each label is escaped once
    however many series carry it (a machine's are in every family): a
    scrape of 1,000 jobs writes some 50,000 lines.
    """
    pairs: dict[tuple[str, str], str] = {}

    def pair(name: str, value: str) -> str:
        found = pairs.get((name, value))
        if found is None:
            found = pairs[(name, value)] = f'{name}="{escape(value)}"' if value else ""
        return found

    lines = []
    for family in families:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} gauge"]
        lines += [f"{family.name}{{{','.join(filter(None, map(pair, family.labels, values)))}}} {_number(value)}"
                  if values else f"{family.name} {_number(value)}" for values, value in sorted(family.samples)]
    return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A whole number as one (``3``), any other as Python's shortest exact form, which Prometheus parses."""
    return str(int(value)) if isinstance(value, int) else repr(float(value))
