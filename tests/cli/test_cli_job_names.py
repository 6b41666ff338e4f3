"""GROUP/JOB, the address of a job on the command line: read by one parser, refused alike by every command."""

import pytest
from cli_helpers import cli
from hypothesis import given
from hypothesis import strategies as st

from processcache.errors import InvalidNameError
from processcache.names import split_job_name

part = st.text(min_size=1, max_size=20).filter(lambda text: "/" not in text)


@given(group=part, job=part)
def test_group_slash_job_splits_into_its_two_parts_as_written(group, job):
    assert split_job_name(f"{group}/{job}") == (group, job)


@given(text=st.one_of(part, part.map(lambda text: text + "/"), part.map(lambda text: "/" + text), st.just("/")))
def test_a_name_without_both_parts_is_refused_in_one_line_naming_the_form(text):
    with pytest.raises(InvalidNameError) as refused:
        split_job_name(text)
    assert str(refused.value) == f"{text!r} is not GROUP/JOB: write it as example/hello-world"


COMMANDS_ON_ONE_JOB = [["cache", "list"], ["cache", "get", "JOB", "key"], ["cache", "set", "JOB", "key", "1"],
                       ["cache", "delete", "JOB", "key"], ["cache", "clear", "JOB", "--yes"], ["cache", "export"],
                       ["cache", "import"], ["jobs", "retire"], ["jobs", "restore"], ["jobs", "delete", "JOB", "--yes"]]


@pytest.mark.parametrize("command", COMMANDS_ON_ONE_JOB, ids=" ".join)
def test_every_command_on_one_job_refuses_a_name_without_a_group_as_a_usage_error(command, tmp_path):
    """Exit 2 before any database is opened: a typo in a crontab or a script creates and changes nothing."""
    words = [word if word != "JOB" else "nightly" for word in command]
    if "JOB" not in command:
        words.append("nightly")
    result = cli(*words, "-d", f"sqlite:///{tmp_path}/none.db", input="")
    assert result.returncode == 2, result.stderr
    assert "Error: 'nightly' is not GROUP/JOB: write it as example/hello-world" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_the_shell_completes_command_names_and_a_mistyped_one_gets_the_closest():
    completed = cli(env={"_PROCESSCACHE_COMPLETE": "bash_complete", "COMP_WORDS": "processcache ru", "COMP_CWORD": "1"})
    assert completed.stdout.split() == ["plain,run", "plain,runs"]
    mistyped = cli("rnu")
    assert mistyped.returncode == 2 and "Did you mean 'run'?" in mistyped.stderr
