"""Turn ``path/to/file.py:attr`` or ``package.module:attr`` into a `JobSpec`.

Each way a target can be wrong has its own one-line `LoadError`. An error
raised *inside* the user's module while it is imported (a syntax error, a
failed import of its own) is the user's bug: it propagates unchanged, with
its traceback. Only the module the target names is imported.

A target's imports resolve alike under the ``processcache`` console script
and ``python -m processcache`` (whose ``__main__`` takes out the current
directory Python puts first): from the current directory, as ``python -m``
looks there, and from a job file's own folder, as ``python file.py`` does,
so a job's modules beside it import. Both folders go after the standard
library, not first as Python puts them: a job or a helper named
``email.py`` or ``logging.py`` would otherwise replace the standard
library's module for processcache and for every library the job uses. They
still go before installed packages, so the job's own modules win there,
except over processcache's own dependencies (`DEPENDENCIES`: click,
cronsim, Pony, the drivers...), which are always imported from where they
are installed: a stray ``cronsim.py`` beside a job would otherwise break
every job with a schedule, from deep inside processcache, whenever it
imports cronsim. `passed_over` names such files, so that ``run`` can
say which file it left alone.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import site
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from .errors import LoadError
from .registry import JobSpec

#: The top-level modules processcache imports, at once or later (cronsim for a schedule, a driver when it
#: connects): found where they are installed, never in a job's folder or the current directory.
DEPENDENCIES = ("click", "cronsim", "platformdirs", "pony", "tzdata", "psycopg2", "pymysql", "MySQLdb")

# A colon followed by a slash or backslash is a drive (C:\jobs\a.py), not :attr.
_ATTR_SEPARATOR = re.compile(r":(?![\\/])")


def load_target(target: str) -> JobSpec | list[JobSpec]:
    """The job named by *target*, or every job of the module when no ``:attr`` is given."""
    parts = _ATTR_SEPARATOR.split(target)
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
        raise LoadError(f"{target!r} is not a job target: use path/to/file.py:job or package.module:job")
    module = _import(parts[0])
    if len(parts) == 1:
        return jobs_of(module)
    attr = parts[1]
    try:
        found = getattr(module, attr)
    except AttributeError:
        names = ", ".join(sorted(_job_names(module))) or "none"
        raise LoadError(f"{parts[0]} has no attribute {attr!r} (jobs in it: {names})") from None
    if not isinstance(found, JobSpec):
        raise LoadError(
            f"{target} is a {type(found).__name__}, not a job: decorate it with @job(\"group\", \"name\")")
    return found


def jobs_of(module: ModuleType) -> list[JobSpec]:
    """Every job a module defines, in the order they appear."""
    return [value for value in vars(module).values() if isinstance(value, JobSpec)]


def _job_names(module: ModuleType) -> list[str]:
    return [name for name, value in vars(module).items() if isinstance(value, JobSpec)]


def _import(name: str) -> ModuleType:
    if name.endswith(".py") or os.sep in name or "/" in name:
        return _import_file(name)
    here = os.getcwd()
    _search(here)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            path = os.path.join(*name.split(".")) + ".py"
            raise LoadError(f"no module named {name!r} in {here} or among installed packages: check the name,"
                            f" or give the file's path, such as {path}") from None
        raise


class _Dependencies(importlib.abc.MetaPathFinder):
    """Finds processcache's `DEPENDENCIES` on sys.path without the folders the loader added (`folders`)."""

    def __init__(self) -> None:
        self.folders: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if path is not None or fullname not in DEPENDENCIES:
            return None  # a submodule is found in its package's own folder
        return importlib.machinery.PathFinder.find_spec(fullname, [e for e in sys.path if e not in self.folders])


_dependencies = _Dependencies()


def passed_over() -> list[tuple[str, str]]:
    """(name, file) of each file in a job's folder (or the current directory) named like a dependency of
    processcache's that is installed: imports find the installed one, the job's own ``import cronsim`` too."""
    return [(name, spec.origin) for name in DEPENDENCIES for folder in _dependencies.folders
            if (spec := importlib.machinery.PathFinder.find_spec(name, [folder])) is not None and spec.origin
            and _dependencies.find_spec(name) is not None]


def _search(*folders: str) -> None:
    """Let imports find modules in *folders*, in this order, after the standard library and before installed packages.

    See the module's docstring for why; processcache's own dependencies
    are never found there (`_Dependencies`). A folder on sys.path already
    (by PYTHONPATH, say) stays where it is.
    """
    if _dependencies not in sys.meta_path:
        sys.meta_path.insert(0, _dependencies)
    _dependencies.folders.extend(folder for folder in folders if folder not in _dependencies.folders)
    installed = {*site.getsitepackages(), site.getusersitepackages()}
    position = next((index for index, entry in enumerate(sys.path) if entry in installed), len(sys.path))
    for folder in folders:
        if folder not in sys.path:
            sys.path.insert(position, folder)
            position += 1


def _import_file(path: str) -> ModuleType:
    filename = os.path.abspath(path)
    if not os.path.isfile(filename):
        raise LoadError(f"no such file: {path}: check the path (relative paths start at the current directory)")
    folder, base = os.path.split(filename)
    _search(folder, os.getcwd())
    name = _module_name(os.path.splitext(base)[0])
    spec = importlib.util.spec_from_file_location(name, filename)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path} is not a Python file: give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _module_name(stem: str) -> str:
    """The name a job file is imported under: its own, as ``import`` would name it, if that name is free.

    A job file named like a standard-library module (``email.py``) or like
    a module imported already that is not another job file (``click.py``,
    ``processcache.py``) would replace that module for everything imported
    after it: it is imported as ``processcache_job_<name>`` instead. Its own
    name is kept otherwise, so that ``pickle`` (a process pool) finds it.
    """
    taken = sys.modules.get(stem)
    if stem in sys.stdlib_module_names or (taken is not None and not jobs_of(taken)):
        return f"processcache_job_{stem}"
    return stem
