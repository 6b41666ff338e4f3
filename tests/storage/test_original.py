"""The original process-cache's database, as its own code wrote it (tests/fixtures/original/): refused in one line
before anything is created, and imported whole, once, in its order, on request."""

import pytest
from cli_helpers import cli
from original_db import TABLES, tables
from paths import ROOT

from processcache import SchemaError, connect


def test_a_database_the_original_wrote_is_refused_in_one_line_naming_it_and_the_import_and_nothing_is_created(
        original_url):
    result = cli("run", ROOT / "examples" / "hello.py:hello", "--database", original_url)
    assert result.returncode == 1 and result.stdout == ""
    [line] = [line for line in result.stderr.splitlines() if "mode 0644" not in line]
    assert "holds the original process-cache's tables (process_cache, process_job_logs, process_jobs," \
           " processes)" in line
    assert "nothing was changed" in line and f"processcache db import-original {original_url}" in line
    assert [table for table in tables(original_url) if table != "sqlite_sequence"] == sorted(TABLES)
    with pytest.raises(SchemaError, match="original process-cache's tables"):
        connect(original_url)
    assert [table for table in tables(original_url) if table != "sqlite_sequence"] == sorted(TABLES)
