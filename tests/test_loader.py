"""Loading `file.py:attr` and `package.module:attr` targets, and each way they fail."""

import textwrap

import pytest

from processcache import JobSpec, LoadError
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
