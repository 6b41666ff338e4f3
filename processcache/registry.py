"""`@job(group, name)`: declare a plain function as a processcache job.

Registering never touches a database. The decorator returns a `JobSpec`
that stays callable as the plain function (``spec(ctx)``), so a job can be
unit-tested with any context, and carries the two load hooks.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .errors import RegistryError
from .names import normalize_name
from .options import JobOptions

if TYPE_CHECKING:
    from .cache.context import CacheContext
    from .records import LogRecord, RunRecord
    from .storage import Database

#: ``fn(ctx)``, a load hook: plain or ``async def``, its return value unused.
Hook = Callable[["CacheContext"], Any]
H = TypeVar("H", bound=Hook)
P = ParamSpec("P")
R = TypeVar("R")


class JobSpec(Generic[P, R]):
    """A job: its function, its names, its options and its load hooks.

    Generic in the function's parameters and result, so a type checker
    reads ``spec(ctx)`` as the plain function's call.
    """

    def __init__(self, func: Callable[P, R], group: str, name: str, options: JobOptions | None = None) -> None:
        self.func = func
        self.group = normalize_name(group, "group name")
        self.name = normalize_name(name, "job name")
        self.options = options or JobOptions()
        self.cache_empty_hook: Hook | None = None
        self.cache_exist_hook: Hook | None = None
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", self.name)
        # None for a function exec()'d in a namespace without __name__, whatever typeshed says of __module__.
        self.__module__ = getattr(func, "__module__", None)  # type: ignore[assignment]
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<JobSpec {self.group}/{self.name} ({self.__module__}.{self.__name__})>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the plain function, as a unit test would: ``spec(ctx)``."""
        return self.func(*args, **kwargs)

    def on_cache_empty(self, hook: H) -> H:
        """Decorate ``fn(ctx)`` to run before the job when its cache (in its scope) holds no entry."""
        self.cache_empty_hook = hook
        return hook

    def on_cache_exist(self, hook: H) -> H:
        """Decorate ``fn(ctx)`` to run before the job when its cache holds entries (``ctx.tree`` loads on first use)."""
        self.cache_exist_hook = hook
        return hook

    def run(self, database: "Database | str | None" = None, machine: str | None = None,
            echo: "Callable[[LogRecord], None] | None" = None, **overrides: Any) -> "RunRecord":
        """Run this job now, recorded, and return its `RunRecord`.

        A job that raises does not raise here: the record's ``status`` is
        ``failed`` and its ``error`` and ``traceback`` say why; a run that
        could not have the job's lock is ``skipped``. *overrides* replace
        options for this run, e.g. ``overlap="allow"``.
        """
        from .run.runner import run_job

        return run_job(self, database=database, machine=machine, echo=echo, **overrides)


class Registry:
    """Jobs by (group, name). ``processcache.job`` uses a module-level default one."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], JobSpec[..., Any]] = {}

    def job(self, group: str, name: str | None = None, **options: Any) -> Callable[[Callable[P, R]], JobSpec[P, R]]:
        """Decorator factory: ``@registry.job("group", "name", **options)`` on ``def fn(ctx)``.

        Options are checked now (see `JobOptions`), not when cron first runs the job.
        """
        if callable(group) or callable(name) or name is None:
            raise RegistryError('@job needs a group and a name: write @job("group", "name")')
        parsed = JobOptions.parse(**options)

        def decorator(func: Callable[P, R]) -> JobSpec[P, R]:
            spec = JobSpec(func, group, name, parsed)
            self.register(spec)
            return spec

        return decorator

    def register(self, spec: JobSpec[..., Any]) -> None:
        """Add *spec*; the same job from another function is an error."""
        key = (spec.group, spec.name)
        known = self.jobs.get(key)
        if known is not None and _origin(known) != _origin(spec):
            raise RegistryError(
                f"the job {spec.group}/{spec.name} is declared twice ({_origin(known)} and"
                f" {_origin(spec)}): give one of them another name")
        self.jobs[key] = spec


def _origin(spec: JobSpec[..., Any]) -> str:
    # A module imported again (by path, then by name) declares the same job anew.
    return f"{spec.__module__}.{getattr(spec.func, '__qualname__', spec.__name__)}"


default_registry = Registry()


def job(group: str, name: str | None = None, **options: Any) -> Callable[[Callable[P, R]], JobSpec[P, R]]:
    """Declare ``fn(ctx)`` as the job *name* of *group*; options as in `JobOptions`.

    >>> @job("example", "doc-job")
    ... def doc_job(ctx):
    ...     ctx.create_log("hello")
    >>> doc_job.group, doc_job.name
    ('example', 'doc-job')
    """
    return default_registry.job(group, name, **options)
