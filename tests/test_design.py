"""The house by role holds its shape: a small top floor, storage below the rest, and every module on the map."""

import ast
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
    """Every module *path* imports, absolute, lazy imports included."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_the_top_floor_holds_a_dozen_modules_beside_the_six_folders():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == FOLDERS
    assert len(top) <= 12, top


def test_no_module_under_storage_imports_from_the_floors_above_it():
    broken = {str(path.relative_to(ROOT)): sorted(name for name in imported(path) if name.startswith(ABOVE_STORAGE))
              for path in (PACKAGE / "storage").glob("*.py")}
    assert {path: names for path, names in broken.items() if names} == {}


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
