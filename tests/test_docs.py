"""The README and docs/: what a reader copies from them is what the project runs.

The README's example is checked in test_cli.py, beside the run it shows.
"""

import dataclasses
import re

from paths import ROOT

from processcache import JobOptions
from processcache.durations import parse_duration

README = (ROOT / "README.rst").read_text()


def test_the_readme_test_command_is_the_one_ci_runs():
    ci_line = next(line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "python -m pytest" in line)
    command = ci_line[:ci_line.index("python -m pytest") + len("python -m pytest")]
    assert f"\n    {command}\n" in README


def test_the_readme_options_table_gives_every_job_option_and_its_default():
    section = README[README.index("\nJob options\n"):]
    table = section[section.index("\noption "):section.index("\n\n", section.index("\noption "))]
    rows = {match[1]: match[2] for match in re.finditer(r"^``(\w+)``\s+(\S+)", table, re.MULTILINE)}
    assert set(rows) == {field.name for field in dataclasses.fields(JobOptions)}
    for field in dataclasses.fields(JobOptions):
        shown = rows[field.name]
        if isinstance(field.default, str):
            assert shown == f'``"{field.default}"``', field.name
        elif isinstance(field.default, float):
            assert parse_duration(shown.strip("`"), field.name) == field.default, field.name


def test_every_page_the_readme_links_exists():
    links = re.findall(r"`[^`<>]+<([^<>`\s]+)>`_", README)
    assert "docs/deploying.rst" in links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_the_readme_is_a_guide_of_350_lines_whose_first_screen_reaches_the_first_job():
    lines = README.splitlines()
    assert len(lines) <= 350, "move detail into docs/: the README is the guide"
    assert "Your first job" in lines[:40]
