"""Loading `file.py:attr` and `package.module:attr` targets, and each way they fail."""

import importlib
import os
import shutil
import site
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import cli

from processcache import JobSpec, LoadError, connect
from processcache.loader import load_target

JOBS = """
from processcache import job

@job("loader", "one")
def one(ctx):
    pass

@job("loader", "two")
def two(ctx):
    pass

not_a_job = 3
"""


@pytest.fixture
def jobs_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "loader_jobs.py"
    path.write_text(JOBS)
    return path


def test_a_file_path_with_attr(jobs_file):
    spec = load_target(f"{jobs_file}:two")
    assert isinstance(spec, JobSpec) and spec.name == "two"


def test_a_module_name_with_attr(jobs_file):
    assert load_target("loader_jobs:one").name == "one"


def test_without_attr_every_job_of_the_module(jobs_file):
    assert [spec.name for spec in load_target(str(jobs_file))] == ["one", "two"]


def test_a_module_beside_the_job_file_imports(tmp_path):
    (tmp_path / "helper_for_job.py").write_text("VALUE = 42\n")
    (tmp_path / "uses_helper.py").write_text(textwrap.dedent("""
        from processcache import job
        import helper_for_job

        @job("loader", "helper")
        def uses(ctx):
            return helper_for_job.VALUE
    """))
    assert load_target(f"{tmp_path}/uses_helper.py:uses")(None) == 42


@pytest.mark.parametrize("target, message", [
    ("missing_dir/nothing.py:job", "no such file: missing_dir/nothing.py"),
    ("no_such_module_here:job", "no module named 'no_such_module_here'"),
    ("loader_jobs:three", "has no attribute 'three' \\(jobs in it: one, two\\)"),
    ("loader_jobs:not_a_job", "is a int, not a job"),
    ("loader_jobs:", "is not a job target"),
    (":job", "is not a job target"),
])
def test_each_way_a_target_can_be_wrong_has_its_message(jobs_file, target, message):
    with pytest.raises(LoadError, match=message):
        load_target(target)


def test_an_import_error_inside_the_module_is_the_users_own(tmp_path):
    (tmp_path / "broken_job.py").write_text("import a_module_that_does_not_exist\n")
    with pytest.raises(ModuleNotFoundError, match="a_module_that_does_not_exist"):
        load_target(f"{tmp_path}/broken_job.py:job")


def test_a_syntax_error_inside_the_module_propagates(tmp_path):
    (tmp_path / "bad_syntax_job.py").write_text("def (:\n")
    with pytest.raises(SyntaxError):
        load_target(f"{tmp_path}/bad_syntax_job.py:job")


# -- the console script and `python -m` alike -------------------------------------

EXECUTABLES = {"console script": [shutil.which("processcache")], "python -m": [sys.executable, "-m", "processcache"]}


def processcache(executable: str, *args, cwd):
    """Run the `processcache` command as a user would: the installed console script, or `python -m processcache`."""
    env = {k: v for k, v in os.environ.items() if k != "PROCESSCACHE_DATABASE_URL"}
    return subprocess.run([*EXECUTABLES[executable], *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120, check=False)


@pytest.mark.parametrize("executable", EXECUTABLES)
def test_a_dotted_target_is_found_in_the_current_directory_by_both(executable, tmp_path):
    (tmp_path / "nightly").mkdir()
    (tmp_path / "nightly" / "__init__.py").write_text("")
    (tmp_path / "nightly" / "helpers.py").write_text("GREETING = 'hello from the package'\n")
    (tmp_path / "nightly" / "jobs.py").write_text(textwrap.dedent("""
        from processcache import job
        from nightly import helpers

        @job("nightly", "greet")
        def greet(ctx):
            print(helpers.GREETING)
    """))
    result = processcache(executable, "run", "nightly.jobs:greet", "-d", f"sqlite:///{tmp_path}/a.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the package\n"


@pytest.mark.parametrize("executable", EXECUTABLES)
def test_a_missing_dotted_target_hints_at_a_path_that_could_exist(executable, tmp_path):
    result = processcache(executable, "run", "examples.nothere:hello", "-d", f"sqlite:///{tmp_path}/a.db",
                          cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (f"Error: no module named 'examples.nothere' in {tmp_path} or among installed packages:"
                             f" check the name, or give the file's path, such as examples{os.sep}nothere.py\n")


@pytest.mark.parametrize("executable", EXECUTABLES)
@pytest.mark.parametrize("name, use", [("email", "email.message_from_string('Subject: hi').get('Subject')"),
                                       ("logging", "logging.getLevelName(30)"),
                                       ("json", "json.dumps({'a': 1})")])
def test_a_job_file_named_like_a_standard_library_module_runs_and_leaves_it_alone(executable, name, use, tmp_path):
    """The job file, the standard library module it is named after, and a module beside it all import."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "beside_the_job.py").write_text("VALUE = 'from beside'\n")
    (jobs / f"{name}.py").write_text(textwrap.dedent(f"""
        import {name}

        import beside_the_job
        from processcache import job

        @job("stdlib-named", "{name}")
        def named(ctx):
            print({use}, beside_the_job.VALUE)
    """))
    result = processcache(executable, "run", f"jobs/{name}.py", "-d", f"sqlite:///{tmp_path}/a.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(" from beside\n") and "Traceback" not in result.stderr


@pytest.mark.parametrize("executable", EXECUTABLES)
def test_a_module_beside_the_job_named_like_a_standard_library_module_does_not_replace_it(executable, tmp_path):
    """processcache imports sqlite3 after the job's module (to open an SQLite database): the standard library's."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "sqlite3.py").write_text(
        "raise ImportError('the sqlite3.py beside the job replaced the standard library')\n")
    (jobs / "job_beside_sqlite3.py").write_text(textwrap.dedent("""
        from processcache import job

        @job("stdlib-named", "beside")
        def beside(ctx):
            print("ran beside sqlite3.py")
    """))
    result = processcache(executable, "run", "jobs/job_beside_sqlite3.py", "-d", f"sqlite:///{tmp_path}/a.db",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran beside sqlite3.py\n"


def one_job(group: str) -> str:
    """The source of a job file declaring the job GROUP/one."""
    return f"from processcache import job\n\n@job({group!r}, 'one')\ndef one(ctx):\n    pass\n"


@pytest.fixture
def restored_imports(monkeypatch, tmp_path):
    """sys.path as it was, and sys.modules without the test's job files, after a test that loads them here."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = dict(sys.modules)
    yield
    for name, module in list(sys.modules.items()):
        if str(tmp_path) in (getattr(module, "__file__", None) or ""):
            del sys.modules[name]
    sys.modules.update(before)  # what a job file replaced


def test_a_job_file_named_like_a_module_imported_already_gets_a_name_of_its_own(tmp_path, restored_imports):
    email_module, pony_module = importlib.import_module("email"), importlib.import_module("pony")
    for name in ("email", "pony"):
        (tmp_path / f"{name}.py").write_text(one_job(f"named-{name}"))
        spec = load_target(f"{tmp_path}/{name}.py:one")
        assert spec.__module__ == f"processcache_job_{name}"
        assert sys.modules[f"processcache_job_{name}"].__file__ == str(tmp_path / f"{name}.py")
    assert sys.modules["email"] is email_module and sys.modules["pony"] is pony_module


def test_a_job_file_keeps_its_own_name_also_when_a_job_file_of_that_name_was_loaded_before(tmp_path,
                                                                                        restored_imports):
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same_stem_jobs.py").write_text(one_job("same-stem"))
        assert load_target(f"{tmp_path}/{folder}/same_stem_jobs.py:one").__module__ == "same_stem_jobs"


def test_a_job_files_folder_and_the_current_directory_go_after_the_standard_library(tmp_path, restored_imports,
                                                                                        monkeypatch):
    folder, here = tmp_path / "jobs", tmp_path / "here"
    folder.mkdir()
    here.mkdir()
    (folder / "folder_jobs.py").write_text(one_job("folders"))
    monkeypatch.chdir(here)
    load_target(f"{folder}/folder_jobs.py:one")
    stdlib = os.path.dirname(os.__file__)
    installed = [index for index, entry in enumerate(sys.path) if entry in site.getsitepackages()]
    assert sys.path.index(stdlib) < sys.path.index(str(folder)) < sys.path.index(str(here)) < installed[0]


# -- tracebacks that start at the user's code --------------------------------------

def test_a_failing_async_jobs_traceback_starts_at_the_job(tmp_path):
    jobs = tmp_path / "async_jobs.py"
    jobs.write_text(textwrap.dedent("""
        from processcache import job

        @job("tracebacks", "async")
        async def fails(ctx):
            raise ValueError("async failure")
    """))
    url = f"sqlite:///{tmp_path}/a.db"
    result = processcache("python -m", "run", jobs, "-d", url, cwd=tmp_path)
    assert result.returncode == 1
    starts = f'Traceback (most recent call last):\n  File "{jobs}", line 6, in fails\n'
    assert result.stderr.startswith("[ERROR] " + starts), result.stderr
    with connect(url) as db:
        [run] = db.history.list_runs()
        assert run.traceback.startswith(starts), run.traceback


@pytest.mark.parametrize("executable", EXECUTABLES)
@pytest.mark.parametrize("target", ["broken_on_import.py", "broken.jobs"])
def test_a_module_raising_on_import_prints_a_traceback_that_starts_at_it(executable, target, tmp_path):
    (tmp_path / "broken").mkdir()
    for path in (tmp_path / "broken_on_import.py", tmp_path / "broken" / "jobs.py"):
        path.write_text("import os\n\nraise RuntimeError('the module raised while imported')\n")
    result = processcache(executable, "run", target, "-d", f"sqlite:///{tmp_path}/a.db", cwd=tmp_path)
    assert result.returncode == 1
    module = tmp_path / ("broken_on_import.py" if target.endswith(".py") else "broken/jobs.py")
    assert result.stderr == (f'Traceback (most recent call last):\n  File "{module}", line 3, in <module>\n'
                             "    raise RuntimeError('the module raised while imported')\n"
                             "RuntimeError: the module raised while imported\n")


def test_a_module_raising_on_import_is_stored_with_a_traceback_that_starts_at_it(tmp_path):
    module = tmp_path / "broken_on_import.py"
    module.write_text("import os\n\nraise RuntimeError('the module raised while imported')\n")
    url = f"sqlite:///{tmp_path}/a.db"
    result = processcache("python -m", "run", "--job", "ops/broken", module, "-d", url, cwd=tmp_path)
    assert result.returncode == 1
    starts = f'Traceback (most recent call last):\n  File "{module}", line 3, in <module>\n'
    assert result.stderr.startswith(starts), result.stderr
    with connect(url) as db:
        [run] = db.history.list_runs()
        assert run.traceback.startswith(starts), run.traceback


def test_a_syntax_error_in_the_module_is_printed_without_processcaches_frames(tmp_path):
    (tmp_path / "bad_syntax.py").write_text("def (:\n")
    result = processcache("console script", "run", "bad_syntax.py", "-d", f"sqlite:///{tmp_path}/a.db",
                          cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f'  File "{tmp_path / "bad_syntax.py"}", line 1\n'), result.stderr
    assert result.stderr.endswith("SyntaxError: invalid syntax\n")


def test_stray_files_named_like_processcaches_dependencies_do_not_break_a_job(backend_url, tmp_path):
    """Issue 27, point 9: a cronsim.py (and psycopg2.py, pymysql.py, click.py) in the job's folder, or in the
    current directory, shadowed processcache's own imports; the job's sibling modules still import."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    for stray in ("cronsim", "click", "psycopg2", "pymysql"):
        (folder / f"{stray}.py").write_text(f"raise ImportError('the stray {stray}.py beside the job')\n")
    (folder / "crm_helpers.py").write_text("PAGES = 3\n")
    (folder / "etl.py").write_text(textwrap.dedent("""
        import cronsim
        from crm_helpers import PAGES
        from processcache import job

        @job("etl", "crm", schedule="*/5 * * * *")
        def crm(ctx):
            ctx.create_log(f"fetched {PAGES} pages with cronsim {cronsim.__name__}")
    """))
    result = cli("run", "--job", "etl/crm", f"{folder / 'etl.py'}:crm", "-m", "vm1", "-d", backend_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fetched 3 pages" in result.stderr
    assert f"{folder / 'cronsim.py'} is not imported as cronsim" in result.stderr
    quiet = cli("run", "-q", "--job", "etl/crm", "etl.py:crm", "-m", "vm2", "-d", backend_url, cwd=folder)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert cli("check", "-d", backend_url).returncode == 0
