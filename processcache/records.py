"""Plain immutable records returned to users instead of live ORM objects.

They can be kept after the database is closed, passed between threads, and
compared; reading them never touches the database. Rows are NamedTuples:
loads build one per row, and a tuple is built several times faster than a
frozen dataclass (whose class is also slower to create at import). The
reports (`JobSummary`, `Problem`, `RunDetail`: a few per call) are frozen
dataclasses, which ``--json`` writes as objects with the records inside them
as objects too.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any, Literal, NamedTuple, get_args

# -- logs ------------------------------------------------------------------------------------------------

class LogType(str, Enum):
    """The type of a job log. A str, so it compares equal to its stored name."""

    GENERIC = "GENERIC"
    WARNING = "WARNING"
    ERROR = "ERROR"

    @classmethod
    def parse(cls, value: "LogType | str") -> "LogType":
        """Accept a LogType or its name in any case; refuse anything else clearly."""
        try:
            return cls(value.upper() if isinstance(value, str) else value)
        except ValueError:
            raise ValueError(
                f"unknown log type {value!r}: use GENERIC, WARNING or ERROR"
            ) from None

    def __str__(self) -> str:
        return self.value


#: The levels of the logs that hold what a run printed (`run.output`): the end of its stdout, then of its stderr.
#: ``ctx.get_logs`` leaves them out unless asked (``output=True``), as the original's ``getJobLogs`` had only the
#: job's own logs; ``processcache logs`` shows them.
OUTPUT_LEVELS = ("STDOUT", "STDERR")


#: Every status a run can have, in the order of its life: ``running``; then
#: ``succeeded``; ``failed`` (the job raised, or the command exited non-zero);
#: ``timed-out`` (stopped by its ``timeout``); ``skipped`` (the lock was held,
#: or its ``once_per`` slot or a recent success says the work is done: the
#: reason is its error); ``lost`` (its process died, or another run took its
#: lock over); ``terminated`` (a signal stopped it). The one list the CLI's
#: ``--status`` offers. A `RunStatus` is a plain str, stored and written to JSON as
#: it is; a type checker reads it as these seven, so ``run.status == "succeded"``
#: is an error there.
RunStatus = Literal["running", "succeeded", "failed", "timed-out", "skipped", "lost", "terminated"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
#: Statuses of runs that went wrong: reported by ``check``, alerted, kept longer by ``prune``, and a holder
#: of a ``once_per`` slot that ended so may be followed by another run (``reopen_failed_slot``).
FAILED: tuple[RunStatus, ...] = ("failed", "timed-out", "lost", "terminated")


class GroupRecord(NamedTuple):
    """A group as stored (`Database.find_group`): the original's Process."""

    id: int
    name: str
    created_at: datetime


class JobRecord(NamedTuple):
    """A job as stored (`Database.find_job`): the original's ProcessJob."""

    id: int
    group: str
    name: str
    created_at: datetime


class Entry(NamedTuple):
    """One cached value under a key. Keys are not unique: a key holds a list."""

    id: int
    key: str
    value: Any
    machine: str
    created_at: datetime
    expires_at: datetime | None = None


#: Entry from a 6-tuple without NamedTuple's Python-level ``__new__``: with
#: `map`, a load builds its 100,000 records without a Python frame per record.
entry_of_tuple = partial(tuple.__new__, Entry)


class LogRecord(NamedTuple):
    """One log message of a job, and the run that wrote it (if any).

    *id* is None for the record a log written inside ``ctx.batch()``
    returns: the log is stored, and given its id, when the outermost batch
    ends (committed or rolled back).
    """

    id: int | None
    type: LogType
    message: str
    machine: str
    created_at: datetime
    run_id: int | None = None
    level: str | None = None
    job: str | None = None
    group: str | None = None


class RunRecord(NamedTuple):
    """One execution of a job on a machine."""

    id: int
    group: str
    job: str
    machine: str
    pid: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    duration: float | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None
    signal: int | None = None
    #: The command's exit code, for a run of `processcache exec` (None for Python jobs: see `RunDetail.exit_code`).
    exit_code: int | None = None
    #: How many attempts a run with ``retries`` made (None without retries).
    attempts: int | None = None
    #: The start of the ``once_per`` slot the run claimed, by the database server's clock (None without).
    slot: datetime | None = None
    #: Seconds it waited for its lock (``overlap="wait"``), which its *duration* leaves out; -1 while it
    #: waits (`storage.runs.WAITING`); None for a run that did not wait.
    waited: float | None = None
    #: True for a run recorded late: it ran while the database was down, kept in its machine's spool
    #: (``if_database_down="run"``), and was stored once the database was back; its times are that machine's.
    late: bool = False

    @property
    def waiting(self) -> bool:
        """True while the run waits for its lock: recorded, not at work yet."""
        return self.waited is not None and self.waited < 0

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"

    @property
    def name(self) -> str:
        """``group/job``, as the CLI names a job."""
        return f"{self.group}/{self.job}"


class RunMark(NamedTuple):
    """A run as a strip of runs shows it: no error, traceback or result, which a report of tens of thousands
    of runs reads only for the few runs it opens (`RunRecord`)."""

    id: int
    group: str
    job: str
    machine: str
    status: RunStatus
    started_at: datetime
    duration: float | None
    late: bool = False  # recorded late: kept in its machine's spool while the database was down


class AttemptRecord(NamedTuple):
    """One attempt of a run with ``retries``: a run's status is its last attempt's."""

    number: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    duration: float | None
    error: str | None
    exit_code: int | None = None
    signal: int | None = None


@dataclass(frozen=True)
class JobSummary:
    """One job as ``processcache jobs`` shows it (``db.jobs()``).

    *last_run* is the job's newest run, or the run in progress when copies
    of it were skipped since (they are newer, but the running one is the
    news). *retired_at* is when ``processcache jobs retire`` hid the job,
    None for a job that is not retired: never, restored, or run since.
    """

    group: str
    job: str
    last_run: RunRecord | None
    machines: tuple[str, ...]
    entries: int
    expect_every: float | None
    max_duration: float | None
    retired_at: datetime | None = None
    #: The job's cron schedule, its time zone, its grace (seconds) and its alert_after, as its latest run declared.
    schedule: str | None = None
    timezone: str | None = None
    grace: float | None = None
    alert_after: int | None = None
    #: Its lock (``job`` or ``machine``: then each machine that runs it is expected to go on) and its
    #: ``flaky`` option (``3/12``, ``off``), as its latest run declared; None before schema revision 2.7.
    lock_scope: str | None = None
    flaky: str | None = None
    #: Its pause while it lasts (``processcache pause``); None when it is not paused.
    pause: "Pause | None" = None
    #: The upstream jobs its latest run declared (``after``), as ``group/job`` names.
    after: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``group/job``, as the CLI names a job."""
        return f"{self.group}/{self.job}"

    @property
    def retired(self) -> bool:
        """True when ``check`` and ``jobs`` leave the job out."""
        return self.retired_at is not None


@dataclass(frozen=True)
class Problem:
    """Something ``processcache check`` reports about a job (``db.check()``).

    *kind* is ``overdue`` (``expect_every``), ``missed`` (``schedule``: no
    run started within the job's grace after a due time), ``late`` (the run
    for the last due time started after its grace), ``bad-schedule`` (a
    stored schedule the checking machine cannot read, such as a time zone
    its database lacks), ``failed``, ``timed-out``, ``lost``,
    ``terminated``, ``too-long`` or ``flaky`` (its last run succeeded, but
    K of its last N failed: the job's ``flaky`` option); ``no-jobs``
    (with *job* ``-``) for a database that holds no job at all, so a probe
    given the wrong database fails. *run* is the run judged (the job's last
    one not skipped; for ``late``, the late run; for ``too-long``, the run
    that took or takes too long), so a monitor reading
    ``check --json`` has its machine, exit code, attempts and slot without
    asking again; None when the job never ran. *machine* names the machine
    the problem is about, for a job locked per machine (``lock="machine"``)
    whose machine stopped running it or failed; None for a job's problem.
    """

    job: str
    kind: str
    detail: str
    run_id: int | None = None
    run: RunRecord | None = None
    machine: str | None = None


class LockRecord(NamedTuple):
    """Who holds a lock, until when (seconds from now, by the database's clock)."""

    name: str
    machine: str | None
    pid: int | None
    run_id: int | None
    held_for: float | None
    expires_in: float | None

    @property
    def held(self) -> bool:
        return self.expires_in is not None and self.expires_in > 0


class KeyStats(NamedTuple):
    """One key of a job's cache, as `processcache cache list` shows it."""

    key: str
    entries: int
    size: int
    newest: datetime


class Pause(NamedTuple):
    """A job's pause (``processcache pause``): until when (None: until resumed), why, and who paused it."""

    until: datetime | None
    reason: str | None
    by: str | None


class MachineRuns(NamedTuple):
    """One machine of a job locked per machine, as ``check`` judges it: its last attempt (its newest run not
    skipped), its newest start (skipped runs too) and when it was retired from the job (None: it was not)."""

    attempt: RunRecord | None
    last_start: datetime | None
    retired_at: datetime | None


class JobState(NamedTuple):
    """A job as the ledger holds it for ``check`` to judge (``History.states``): its summary, its last
    attempt, its id and its newest start, skipped runs too; its newest run that ended (too long?), its
    machines (a job locked per machine) and the statuses of its last runs not skipped, newest first (flaky?)."""

    summary: "JobSummary"
    attempt: RunRecord | None
    job_id: int
    last_start: datetime | None
    ended: RunRecord | None
    machines: dict[str, MachineRuns]
    recent: list[str]


@dataclass(frozen=True)
class RunDetail:
    """One run whole, as ``processcache runs show ID`` prints it (``db.run(id)``).

    *exit_code* is what ``processcache run`` exits with for such a run: 0,
    1, 75 or 128 + the signal; None while it runs, for a run whose process
    died without recording its end, and for one a SystemExit ended.
    *logs* are all the run's logs, oldest first; *attempts* those of a run
    with ``retries``, first first (empty without retries).
    """

    run: RunRecord
    exit_code: int | None
    logs: list[LogRecord]
    attempts: list[AttemptRecord] = field(default_factory=list)


# -- exit codes --------------------------------------------------------------------------------------

#: What ``processcache run`` and ``exec`` exit with for a run that timed out, as GNU timeout does.
EXIT_TIMED_OUT = 124
EXIT_OK = 0
#: The job raised; its traceback is in the run's record and an ERROR log.
EXIT_FAILED = 1
#: Skipped (``EX_TEMPFAIL``): another run held the job's lock, or its slot or last success says it is done.
EXIT_SKIPPED = 75
_EXIT_CODES = {"succeeded": EXIT_OK, "skipped": EXIT_SKIPPED, "timed-out": EXIT_TIMED_OUT}
#: Exit codes that say what processcache decided (skipped, timed out): a command's own is reported as 1.
RESERVED = frozenset({EXIT_SKIPPED, EXIT_TIMED_OUT})


def exit_code(run: RunRecord) -> int:
    """The process exit code that reports *run*: a failed command's own, 124 for a timeout, 75 when skipped.

    A command that exits 75 or 124 itself is reported as 1 (its own code
    stays in the record): a crontab line or a script that reads 75 as
    "skipped, try later" or 124 as "timed out" must never be told so by
    the command. Its 126, 127 and 128 + n mean what a shell means by them.
    """
    if run.status == "failed" and run.exit_code:
        return EXIT_FAILED if run.exit_code in RESERVED else run.exit_code
    return _EXIT_CODES.get(run.status, EXIT_FAILED)
