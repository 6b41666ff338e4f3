"""A job's options, checked when the job is declared, not when cron first runs it."""

import dataclasses
import logging
import re
from typing import Any

from .durations import parse_duration
from .errors import RegistryError
from .names import normalize_name, split_job_name

OVERLAP_MODES = ("skip", "wait", "allow")
LOCK_SCOPES = ("job", "machine")
LOAD_MODES = ("lazy", "eager")

#: Seconds a lock, a run or a memoised call's lease lives without a heartbeat: long enough that a
#: busy machine's heartbeat (every lease / 3) renews it, short enough that a killed holder frees it soon.
DEFAULT_LEASE = 60.0
#: Seconds ``check`` allows past a due time or ``expect_every`` before it reports a job (a job's ``grace`` wins).
DEFAULT_GRACE = 60.0
#: Seconds ``overlap="wait"`` waits for the job's lock, and a memoised call for another process's value.
DEFAULT_WAIT_TIMEOUT = 600.0
#: Bytes of a run's stdout, and of its stderr, stored with it: the end of what it printed, where the error is.
DEFAULT_OUTPUT_TAIL = 64 * 1024
#: Seconds a command stopped by its timeout (or a signal) has between SIGTERM and SIGKILL.
DEFAULT_KILL_AFTER = 10.0
#: Seconds a run with ``if_database_down="run"`` or ``"skip"`` tries to reach the database before it runs
#: without it (or is skipped): a server's default connect timeout, so that a stalled server costs one attempt.
DEFAULT_DOWN_WAIT = 10.0
#: What a run may do when its database cannot be reached (`JobOptions.if_database_down`).
DOWN_CHOICES = ("fail", "skip", "run")
#: A job whose last run succeeded is flaky when this many of its last runs failed ("K/N"): 3 of 12 is a
#: failure every four runs, which an hourly job shows within half a day, where one failure is chance.
DEFAULT_FLAKY = "3/12"
#: How far back ``catch_up`` looks for due times no run answered, and how many it runs at most.
DEFAULT_CATCH_UP_WINDOW = 6 * 3600.0
DEFAULT_CATCH_UP_LIMIT = 24
#: What a job's next start does about the due times its schedule missed (`JobOptions.catch_up`).
CATCH_UP_MODES = ("latest", "all", "skip")
#: The most runs a pool lets run at once: each is a lock row that a run that finds the pool full tries.
MAX_POOL_SIZE = 100
#: What ``flaky`` takes to judge no job flaky.
FLAKY_OFF = "off"
_SIZE = re.compile(r"\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 2**20, "mb": 2**20, "mib": 2**20}


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How a job runs. Durations are seconds (given as ``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``).

    overlap:        ``skip`` (default) exits 75 when another run holds the
                    job's lock; ``wait`` waits up to ``wait_timeout`` for it;
                    ``allow`` takes no lock.
    lock:           ``job`` (default) locks the job across every machine;
                    ``machine`` locks it per machine.
    scope:          whose cache and history the job reads: ``job`` (every
                    machine's: a job that moves host, or runs from the same
                    crontab on three, keeps its cache and ``last_success``)
                    or ``machine`` (this machine's alone, as the original
                    process-cache scoped them). Default: the lock's, so a
                    job locked per machine keeps per-machine data too.
    lease:          how long a lock and a run stay alive without a heartbeat
                    (default 60s; the heartbeat renews them every lease / 3).
                    A holder killed with SIGKILL blocks others this long at most.
    wait_timeout:   how long ``overlap="wait"`` waits (default 10m).
    expect_every:   ``processcache check`` reports the job overdue when no run
                    started within this period (plus its ``--grace``).
    max_duration:   ``processcache check`` reports runs that take longer.
    capture_logging: store records of every logger (third-party libraries
                    too) during the run: True for INFO and above, or a level.
    cache_ttl:      the default time-to-live of entries the job creates.
    timeout:        stop an attempt that runs longer (a Python job gets
                    `TimedOut` raised in its thread, so its ``finally``
                    blocks run; a command gets SIGTERM, then SIGKILL after
                    ``kill_after``). The run ends ``timed-out``; ``run`` and
                    ``exec`` exit 124, as GNU timeout does.
    kill_after:     how long a command has between SIGTERM and SIGKILL (10s).
    lost_lease_grace: how long a command whose run lost its lock has between
                    SIGTERM and SIGKILL (default 0: SIGKILL at once). Another
                    run may hold the lock already, and a command's writes
                    cannot be fenced: every moment it goes on, two copies run.
    retries:        run a failed or timed-out attempt again, up to this many
                    times, in the same invocation and under the same lock;
                    the run's status is its last attempt's.
    retry_delay:    the wait before the first retry (default none);
    retry_backoff:  multiplies it before each later retry (default 1).
    once_per:       run at most once per slot of this length across every
                    machine, as the database server's clock cuts them (slots
                    start at the epoch: ``1h`` on the hour, ``1d`` at UTC
                    midnight), or ``"schedule"``: once per due time of the
                    job's ``schedule`` (a slot runs from one to the next). A run that finds its slot taken is skipped
                    (exit 75) saying where it ran; a run that starts up to
                    `SLOT_EARLY` seconds before a slot's start (a machine
                    whose clock is ahead fires cron early) counts in it.
    reopen_failed_slot: when a slot's run failed, timed out, was terminated
                    or lost, this run may take the slot over and try again
                    (default True); with False it is skipped. Decided by the
                    run that finds the slot failed: declare it the same on
                    every machine.
    skip_if_succeeded_within: skip (exit 75) when a run of the job
                    succeeded this recently, on any machine: a job on
                    machines that were down catches up once, not once per
                    machine (as anacron). Judged under the job's lock.
    schedule:       when the job is due, as a cron expression (``"0 3 * * *"``)
                    in ``timezone``: ``processcache check`` reports it ``missed``
                    when no run started within ``grace`` after a due time,
                    and ``late`` when its run started after that.
    timezone:       the time zone ``schedule`` is read in (``"Europe/Berlin"``;
                    default UTC), daylight-saving changes included.
    grace:          how long after a due time (``schedule``) or the end of
                    ``expect_every`` a run may start before the job is missed
                    or overdue (default: ``check --grace``, 60s).
    alert_after:    how many failed runs in a row before an alert is sent
                    (default 1); a missed, lost or too-long job alerts at once.
    flaky:          ``"K/N"``: a job whose last run succeeded but that failed
                    K of its last N runs (skipped copies not counted), in two
                    streaks or more, is ``flaky`` in ``check``, the report and
                    its alerts (default ``"3/12"``; ``"off"`` never). One
                    streak of failures that ended is an outage that recovered,
                    not a flaky job.
    ping:           a URL pinged at each run's start and end, in the
                    protocol of healthchecks.io (``https://hc-ping.com/...``,
                    or ``hc+https://`` for a self-hosted one) or Cronitor
                    (``https://cronitor.link/...``), so those dashboards
                    keep working; a slow or down one never delays a run by
                    more than a few seconds.
    if_database_down: what a run does when its database cannot be reached
                    within ``down_wait`` (docs/deploying.rst, "When the
                    database is down"): ``fail`` (default) exits 1 with the one-line
                    error; ``skip`` exits 75 with one line, recording
                    nothing; ``run`` runs the job without the database: no
                    lock is taken (a copy on another machine may run at the
                    same time), its record, logs, output and cache writes
                    are kept in this machine's spool (`processcache.run.spool`)
                    and stored in the database, once, by the next
                    processcache command that reaches it; its reads of the
                    shared cache raise `DatabaseDownError`. Refused with
                    ``once_per`` or ``skip_if_succeeded_within`` (a slot could
                    run twice) unless ``down_runs_once_per=True`` says so.
    down_wait:      how long a run with ``if_database_down`` ``run`` or
                    ``skip`` tries to reach the database, from its start,
                    before it runs without it or is skipped (default 10s,
                    a server's connect timeout; ``fail`` waits the URL's
                    ``retry_for``). An attempt begun just before it ends
                    may take one more connect timeout.
    down_runs_once_per: with ``once_per`` or ``skip_if_succeeded_within``,
                    allow ``if_database_down="run"``, knowing that a slot
                    may then run on several machines (default False).
    pool:           a farm-wide concurrency pool (``"warehouse"``): at most
                    its size of runs of the jobs that name it run at once,
                    on every machine together; a run that finds it full
                    waits (``overlap="wait"``) or is skipped, exit 75.
    pool_size:      the pool's size when ``processcache pool set`` gave it
                    none (default 1).
    after:          upstream jobs (``["etl/extract"]``): a run starts only
                    once each succeeded for its slot (since the current due
                    time of its ``schedule``), or within ``after_within``
                    (default 1d) for a job without one; else it waits
                    (``overlap="wait"``) or is skipped, exit 75, saying
                    which. ``check`` reports a failing upstream once, with
                    the jobs it blocks.
    after_within:   for a job without a schedule, how recent an upstream's
                    success must be (default 1d).
    catch_up:       for a job with a ``schedule``, what its next start does
                    about due times no run answered within
                    ``catch_up_window`` (default 6h; machines down, cron
                    stopped): ``"latest"`` runs once for the newest of them,
                    ``"all"`` once for each, oldest first, up to
                    ``catch_up_limit`` (default 24), ``"skip"`` records each
                    as a skipped run; then the run for the current due time.
                    Each due time runs once across the farm (it implies
                    ``once_per="schedule"``); ``ctx.slot`` says which.
    output_tail:    bytes of the run's stdout, and of its stderr, stored with
                    it as logs (levels ``STDOUT`` and ``STDERR``): the last
                    64 KiB by default (``"1MiB"``, an int); 0 stores none.
                    What is printed is still written out as before.
    load_cache:     when ``ctx.tree`` and ``ctx.results`` are read from the
                    database: ``lazy`` (default) on their first use, so a
                    run that reads a few keys (``get_cache``, ``latest``)
                    never loads a large cache; ``eager`` when the run
                    starts, before the hooks, as the original process-cache
                    did (the snapshot is then the cache as the run found it).
    """

    overlap: str = "skip"
    lock: str = "job"
    scope: str | None = None
    lease: float = DEFAULT_LEASE
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    expect_every: float | None = None
    max_duration: float | None = None
    capture_logging: int | None = None
    cache_ttl: float | None = None
    load_cache: str = "lazy"
    timeout: float | None = None
    kill_after: float = DEFAULT_KILL_AFTER
    lost_lease_grace: float = 0.0
    retries: int = 0
    retry_delay: float = 0.0
    retry_backoff: float = 1.0
    once_per: float | str | None = None
    reopen_failed_slot: bool = True
    skip_if_succeeded_within: float | None = None
    output_tail: int = DEFAULT_OUTPUT_TAIL
    schedule: str | None = None
    timezone: str = "UTC"
    grace: float | None = None
    alert_after: int = 1
    flaky: str = DEFAULT_FLAKY
    ping: str | None = None
    if_database_down: str = "fail"
    down_wait: float = DEFAULT_DOWN_WAIT
    down_runs_once_per: bool = False
    pool: str | None = None
    pool_size: int | None = None
    after: tuple[str, ...] = ()
    after_within: float | None = None
    catch_up: str | None = None
    catch_up_window: float = DEFAULT_CATCH_UP_WINDOW
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT

    @property
    def data_scope(self) -> str:
        """``job`` or ``machine``: the scope given, else the lock's."""
        return self.scope or self.lock

    @classmethod
    def parse(cls, **given: Any) -> "JobOptions":
        """Options from ``@job(...)`` keywords; RegistryError for anything unknown or malformed."""
        unknown = set(given) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            known = ", ".join(field.name for field in dataclasses.fields(cls))
            raise RegistryError(f"unknown job option(s) {', '.join(sorted(unknown))}: use {known}")
        return cls().replace(**given)

    def replace(self, **changes: Any) -> "JobOptions":
        """A copy with *changes* applied and checked (None leaves a value as it is)."""
        changes = {name: value for name, value in changes.items() if value is not None}
        if changes.get("overlap", self.overlap) not in OVERLAP_MODES:
            raise RegistryError(f"overlap={changes['overlap']!r}: use skip, wait or allow")
        if changes.get("lock", self.lock) not in LOCK_SCOPES:
            raise RegistryError(f"lock={changes['lock']!r}: use job or machine")
        if changes.get("scope", "job") not in LOCK_SCOPES:
            raise RegistryError(f"scope={changes['scope']!r}: use job (every machine's data) or machine")
        if changes.get("load_cache", "lazy") not in LOAD_MODES:
            raise RegistryError(f"load_cache={changes['load_cache']!r}: use lazy (on first use of ctx.tree) or eager")
        for name in ("lease", "wait_timeout", "expect_every", "max_duration", "cache_ttl", "timeout", "kill_after",
                     "lost_lease_grace", "retry_delay", "once_per", "skip_if_succeeded_within", "grace",
                     "down_wait"):
            if name in changes and not (name == "once_per" and changes[name] == "schedule"):
                changes[name] = parse_duration(changes[name], name)
        for name in ("lease", "timeout", "once_per"):
            if changes.get(name) == 0:
                raise RegistryError(f"{name} must be longer than 0 seconds")
        if "retries" in changes:
            changes["retries"] = _count(changes["retries"], "retries")
        if "pool" in changes:
            changes["pool"] = _pool_name(changes["pool"])
        if "after" in changes:
            changes["after"] = _upstreams(changes["after"])
        if changes.get("catch_up") is not None:
            if changes["catch_up"] not in CATCH_UP_MODES:
                raise RegistryError(f"catch_up={changes['catch_up']!r}: use latest, all or skip")
            if not changes.get("schedule", self.schedule):
                raise RegistryError("catch_up needs the job's schedule: add schedule='0 3 * * *' (its due times"
                                    " are what it catches up)")
            changes.setdefault("once_per", self.once_per or "schedule")
        if "catch_up_window" in changes:
            changes["catch_up_window"] = parse_duration(changes["catch_up_window"], "catch_up_window")
        if "catch_up_limit" in changes:
            changes["catch_up_limit"] = _count(changes["catch_up_limit"], "catch_up_limit")
        if "after_within" in changes:
            changes["after_within"] = parse_duration(changes["after_within"], "after_within")
        if "pool_size" in changes:
            changes["pool_size"] = _count(changes["pool_size"], "pool_size")
            if not 1 <= changes["pool_size"] <= MAX_POOL_SIZE:
                raise RegistryError(f"pool_size={changes['pool_size']}: give 1 to {MAX_POOL_SIZE} runs at once")
        if "alert_after" in changes:
            changes["alert_after"] = _count(changes["alert_after"], "alert_after")
            if changes["alert_after"] < 1:
                raise RegistryError("alert_after=0: use 1 (alert at the first failure) or more")
        if "schedule" in changes or "timezone" in changes:
            from .schedules import check_schedule  # cronsim and zoneinfo only for a job that declares one

            changes["schedule"], changes["timezone"] = check_schedule(changes.get("schedule", self.schedule),
                                                                      changes.get("timezone", self.timezone))
        if changes.get("once_per", self.once_per) == "schedule" and not changes.get("schedule", self.schedule):
            raise RegistryError("once_per='schedule' needs the job's schedule: add schedule='0 3 * * *' (and its"
                                " timezone), or give once_per a duration such as '1h'")
        if "ping" in changes:
            from .monitor.channels import check_ping

            changes["ping"] = check_ping(changes["ping"])
        if "retry_backoff" in changes:
            changes["retry_backoff"] = _backoff(changes["retry_backoff"])
        if "output_tail" in changes:
            changes["output_tail"] = parse_size(changes["output_tail"], "output_tail")
        if not isinstance(changes.get("reopen_failed_slot", True), bool):
            raise RegistryError(f"reopen_failed_slot={changes['reopen_failed_slot']!r}: use True or False")
        if "capture_logging" in changes:
            changes["capture_logging"] = _capture_level(changes["capture_logging"])
        if "flaky" in changes:
            changes["flaky"] = _flaky(changes["flaky"])
        replaced = dataclasses.replace(self, **changes)
        _check_down(replaced)
        return replaced


def _check_down(options: "JobOptions") -> None:
    """Refuse an ``if_database_down`` that breaks a promise the options make: once per slot, or per success."""
    if options.if_database_down not in DOWN_CHOICES:
        raise RegistryError(f"if_database_down={options.if_database_down!r}: use fail, skip or run")
    if not isinstance(options.down_runs_once_per, bool):
        raise RegistryError(f"down_runs_once_per={options.down_runs_once_per!r}: use True or False")
    once = "once_per" if options.once_per else "skip_if_succeeded_within" if options.skip_if_succeeded_within else None
    if options.if_database_down == "run" and once and not options.down_runs_once_per:
        raise RegistryError(f"if_database_down='run' with {once}: without the database no slot can be claimed,"
                            " so the job may run more than once; add down_runs_once_per=True to accept that,"
                            " or use if_database_down='skip'")


def flaky_threshold(value: str | None) -> tuple[int, int] | None:
    """(K, N) of a ``flaky`` option as stored (None: `DEFAULT_FLAKY`), or None when it is off (or unreadable:
    a newer release's form).

    >>> flaky_threshold("3/12"), flaky_threshold("off"), flaky_threshold(None)
    ((3, 12), None, (3, 12))
    """
    failures, _, runs = (value or DEFAULT_FLAKY).partition("/")
    if not (failures.isdigit() and runs.isdigit()) or not 1 <= int(failures) <= int(runs):
        return None
    return int(failures), int(runs)


def _flaky(value: Any) -> str:
    """The ``flaky`` option as stored: ``"K/N"`` (a (K, N) pair too), or `FLAKY_OFF` (False too)."""
    if value is False or value == FLAKY_OFF:
        return FLAKY_OFF
    text = f"{value[0]}/{value[1]}" if isinstance(value, tuple) and len(value) == 2 else value
    if not isinstance(text, str) or flaky_threshold(text.replace(" ", "")) is None:
        raise RegistryError(f"flaky={value!r}: use 'K/N' (K failures of the last N runs, 1 <= K <= N, such as"
                            f" '{DEFAULT_FLAKY}') or 'off'")
    return text.replace(" ", "")


def _capture_level(value: bool | int | str) -> int | None:
    if value is False:
        return None
    if value is True:
        return logging.INFO
    level = logging.getLevelName(value.upper()) if isinstance(value, str) else value
    if not isinstance(level, int):
        raise RegistryError(f"capture_logging={value!r}: use True, False or a level such as 'DEBUG'")
    return level


def parse_size(value: int | str, what: str = "size") -> int:
    """Bytes in *value*: an int, or text such as ``65536``, ``64KiB`` or ``1MiB``.

    >>> parse_size("64KiB"), parse_size("1 MiB"), parse_size(0)
    (65536, 1048576, 0)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise RegistryError(f"{what}={value!r} is not a size: write a number of bytes, 64KiB or 1MiB")
    return int(found.group(1)) * _SIZE_UNITS[found.group(2) and found.group(2).lower()]


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RegistryError(f"{what}={value!r}: use a whole number, 0 or more")
    return value


def _backoff(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < float("inf"):
        raise RegistryError(f"retry_backoff={value!r}: use a number of at least 1 (2 doubles each delay)")
    return float(value)


def _pool_name(name: object) -> str:
    """A pool's name as its lock rows hold it: a group or job name's rules (``warehouse``, ``api-quota``)."""
    if not isinstance(name, str):
        raise RegistryError(f"pool={name!r}: name the pool, e.g. pool='warehouse'")
    return normalize_name(name, "pool")


def _upstreams(names: object) -> tuple[str, ...]:
    """Upstream jobs as ``group/job`` names, normalised as a job's own; a string is one name."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise RegistryError(f"after={names!r}: give the upstream jobs, e.g. after=['etl/extract']")
    found = []
    for name in names:
        if not isinstance(name, str):
            raise RegistryError(f"after={names!r}: each upstream is a 'group/job' name")
        group, job = split_job_name(name)
        found.append(f"{normalize_name(group)}/{normalize_name(job)}")
    return tuple(dict.fromkeys(found))
