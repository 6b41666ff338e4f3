"""A job's options, checked when the job is declared, not when cron first runs it."""

import dataclasses
import logging
from typing import Any

from .durations import parse_duration
from .errors import RegistryError

OVERLAP_MODES = ("skip", "wait", "allow")
LOCK_SCOPES = ("job", "machine")
LOAD_MODES = ("lazy", "eager")

#: Seconds a lock, a run or a memoised call's lease lives without a heartbeat: long enough that a
#: busy machine's heartbeat (every lease / 3) renews it, short enough that a killed holder frees it soon.
DEFAULT_LEASE = 60.0
#: Seconds ``overlap="wait"`` waits for the job's lock, and a memoised call for another process's value.
DEFAULT_WAIT_TIMEOUT = 600.0


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
        for name in ("lease", "wait_timeout", "expect_every", "max_duration", "cache_ttl"):
            if name in changes:
                changes[name] = parse_duration(changes[name], name)
        if changes.get("lease") == 0:
            raise RegistryError("lease must be longer than 0 seconds")
        if "capture_logging" in changes:
            changes["capture_logging"] = _capture_level(changes["capture_logging"])
        return dataclasses.replace(self, **changes)


def _capture_level(value: bool | int | str) -> int | None:
    if value is False:
        return None
    if value is True:
        return logging.INFO
    level = logging.getLevelName(value.upper()) if isinstance(value, str) else value
    if not isinstance(level, int):
        raise RegistryError(f"capture_logging={value!r}: use True, False or a level such as 'DEBUG'")
    return level
