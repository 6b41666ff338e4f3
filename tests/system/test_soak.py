"""The soak test (``pytest --soak tests/system/test_soak.py``): a few minutes of 8 processes on PostgreSQL.

No error, no lost write, no leaked connection, memory flat.
"""

import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from paths import HELPERS

from processcache import ANY, CacheContext, connect

WORKERS = HELPERS / "workers.py"


@pytest.mark.soak
def test_eight_processes_running_jobs_back_to_back(request, tmp_path):
    from conftest import _new_database

    seconds = request.config.getoption("--soak-seconds")
    for url in _new_database("postgres", tmp_path):
        connect(url).close()
        workers = [subprocess.Popen([sys.executable, str(WORKERS), "soak", url, str(seconds)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=seconds + 300)
            assert worker.returncode == 0, err
            reports.append(json.loads(out))
        import psycopg2

        parts = urlsplit(url)
        admin = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres")
        cursor = admin.cursor()
        cursor.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (parts.path.lstrip("/"),))
        leaked = cursor.fetchone()[0]
        admin.close()
        with connect(url) as db:
            stored = [e.value for e in CacheContext(db, "soak", "short", "x").get_cache("n", machine=ANY)]
            failed = db.history.list_runs("soak/short", status="failed", limit=10)
        reported = [run_id for report in reports for run_id in report["ids"]]
        print(f"\nsoak: {len(reported)} runs in {seconds:.0f}s by 8 processes; memory (KiB) after warm-up"
              f" {[r['warm'] for r in reports]} and at the end {[r['end'] for r in reports]}")
        assert sorted(stored) == sorted(reported), "every run's write is there, once"
        assert failed == []
        assert leaked == 0, "every connection closed when its process ended"
        for report in reports:
            assert report["end"] - report["warm"] < 20_000, "memory stays flat after warm-up"
