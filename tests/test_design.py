"""The house by role holds its shape: a small top floor, storage below the rest, and every module on the map."""

import ast
import re
from pathlib import Path

from paths import ROOT

PACKAGE = ROOT / "processcache"
FOLDERS = {"run", "cache", "monitor", "web", "storage", "cli"}
#: What storage may not import: the floors above it.
ABOVE_STORAGE = ("processcache.run", "processcache.cache.context", "processcache.cache.memo",
                 "processcache.monitor", "processcache.web", "processcache.cli")


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def imported(path: Path) -> set[str]:
    """Every module *path* imports, absolute, lazy imports included, and every name it imports from one."""
    found = set()
    for node, target in imports(path, ast.parse(path.read_text())):
        found.add(target)
        if isinstance(node, ast.ImportFrom):
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def imports(path: Path, tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    """Each import statement of *tree* (the module at *path*) with the absolute module it imports (from)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]).split(".")
    found: list[tuple[ast.stmt, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            found.append((node, ".".join(base + ([node.module] if node.module else []))))
    return found


def test_the_top_floor_holds_a_dozen_modules_beside_the_six_folders():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == FOLDERS
    assert len(top) <= 12, top


#: The one arrow up from storage: ``db.check()``, the user's call for verdicts since the first release, asks
#: ``monitor.check`` when it is called (the verdicts are monitor's; storage returns rows).
UPWARD = {"processcache/storage/database.py": ["processcache.monitor.check", "processcache.monitor.check.check"]}
#: Statements only storage writes: the floors above ask it.
SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|CREATE TABLE|ALTER TABLE|UPDATE [a-z_]+ SET)\b")


def test_no_module_under_storage_imports_from_the_floors_above_it():
    broken = {str(path.relative_to(ROOT)): sorted(name for name in imported(path) if name.startswith(ABOVE_STORAGE))
              for path in (PACKAGE / "storage").glob("*.py")}
    assert {path: names for path, names in broken.items() if names} == UPWARD


def test_the_floors_above_reach_storage_through_its_one_door_and_write_no_sql():
    through_a_side_door = {}
    with_sql = {}
    for path in modules():
        if path.is_relative_to(PACKAGE / "storage"):
            continue
        tree = ast.parse(path.read_text())
        side = sorted({name for _, name in imports(path, tree) if name.startswith("processcache.storage.")})
        if side:
            through_a_side_door[str(path.relative_to(ROOT))] = side
        statements = [node.value[:40] for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)]
        if statements:
            with_sql[str(path.relative_to(ROOT))] = statements
    assert through_a_side_door == {}, "import from processcache.storage, whose __init__ names what it offers"
    assert with_sql == {}, "SQL is storage's: add a method there"


def test_every_module_is_on_the_map_in_docs_design():
    design = (ROOT / "docs" / "design.rst").read_text()
    missing = [str(path.relative_to(PACKAGE)) for path in modules()
               if path.name != "__init__.py" and f"``{path.name}``" not in design]
    assert missing == [], "docs/design.rst maps every module: add a line for each"


def test_each_folder_says_what_it_holds():
    for folder in FOLDERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) >= 1, folder
        if folder != "cli":
            named = [path.stem for path in (PACKAGE / folder).glob("*.py") if path.name != "__init__.py"]
            assert [name for name in named if f"`{name}`" not in doc] == [], f"{folder}/__init__ maps its modules"


def test_tests_say_what_they_show_not_which_issue_asked():
    said = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = [ast.get_docstring(node) or "" for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))]
        if any(re.search(r"\bissue \d+", doc) for doc in docs):
            said[str(path.relative_to(ROOT))] = True
    assert said == {}, "a docstring says the behaviour; the commit and the note name the issue"


#: Modules that import inside functions, and why: each keeps a start-up (``processcache run``, ``import
#: processcache``) free of what only some calls need, or breaks a circle named here. Nothing else may.
LAZY = {
    "__init__.py": "memoize loads the memo machinery on first use",
    "cache/context.py": "ctx.logger and ctx.memoize load logging and the memo machinery when first used",
    "cache/memo.py": "hashlib and asyncio only for the calls that need them",
    "cli/alerts.py": "each command loads what it runs when it runs: run loads no alert, report or web code",
    "cli/cache.py": "each command loads what it runs when it runs",
    "cli/jobs.py": "each command loads what it runs when it runs",
    "cli/listen.py": "the HTTP server only for serve and metrics --serve",
    "cli/metrics.py": "each command loads what it runs when it runs",
    "cli/report.py": "each command loads what it runs when it runs",
    "cli/run.py": "run and exec load only their own path: the quiet output, the supervisor, the loader",
    "cli/style.py": "zoneinfo only when a time is shown in another zone",
    "monitor/channels.py": "urllib.request and smtplib only when a message is sent",
    "monitor/pings.py": "logging only when a ping fails",
    "names.py": "hashlib only for a name too long to be its own key",
    "options.py": "cronsim only for a job with a schedule, the channels only for one with a ping",
    "registry.py": "declaring a job touches no run machinery; running one loads it (and registry <-> runner)",
    "run/downtime.py": "the steps of a run it shares with session, which imports it (a circle)",
    "run/heartbeat.py": "logging only when a renewal fails",
    "run/reaper.py": "ctypes only for the subreaper call, in a process started with python -I -S",
    "run/runner.py": "asyncio only for async jobs",
    "run/session.py": "pings, schedules and the log handler only for runs that ask; downtime is a circle",
    "schedules.py": "cronsim only when a schedule is read",
    "storage/backend.py": "sqlite3 and the file checks only for SQLite",
    "storage/config.py": "platformdirs only off Linux",
    "storage/database.py": "history, retirement, schedules, the verdicts: only for the calls that ask them",
    "storage/dialects.py": "waits and psycopg2.extras only on PostgreSQL",
    "storage/pauses.py": "cronsim only for a job that has a maintenance window",
    "storage/schema.py": "the original process-cache's tables only when a database is refused",
    "storage/spool.py": "platformdirs only off Linux",
    "web/scrape.py": "the metrics only when scraped",
}


def test_imports_inside_functions_are_kept_for_start_up_time_each_with_its_reason():
    lazy = set()
    for path in modules():
        tree = ast.parse(path.read_text())
        if any(isinstance(inner, (ast.Import, ast.ImportFrom)) for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for inner in ast.walk(node)):
            lazy.add(str(path.relative_to(PACKAGE)))
    assert sorted(lazy - set(LAZY)) == [], "import at the top, or say in LAZY why not"
    assert sorted(set(LAZY) - lazy) == [], "LAZY names a module that imports nothing lazily any more"


def test_only_the_dialects_ask_which_database_it_is():
    asking = re.compile(r"(provider|dialect\.name)\s*[!=]=|== \"(sqlite|postgres|mysql)\"")
    found = {str(path.relative_to(PACKAGE)): line.strip() for path in modules() if path.name != "dialects.py"
             for line in path.read_text().splitlines() if asking.search(line)}
    assert found == {}, "a difference between databases is a Dialect attribute (storage/dialects.py)"


def test_retry_is_pure_and_the_backend_calls_it_never_the_reverse():
    names = imported(PACKAGE / "storage" / "retry.py")
    assert not {name for name in names if name.startswith("processcache.storage.")}, names
