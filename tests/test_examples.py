"""The examples on each database: examples/fastapi_service.py (the service docs/services.rst shows) through
TestClient, examples/original_readme.py as the program it is, against what the original's own code printed."""

import importlib.util
import subprocess
import sys

import original_db
import pytest
from paths import ROOT

import processcache
from processcache import ANY


@pytest.fixture
def service():
    """The example's module, loaded from its file as uvicorn's --factory would import it."""
    pytest.importorskip("fastapi", reason="the test extra installs FastAPI: pip install -e '.[test]'")
    spec = importlib.util.spec_from_file_location("fastapi_service", ROOT / "examples" / "fastapi_service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fastapi_example_caches_the_upstream_records_its_imports_and_reads_without_a_run(service, backend_url):
    from fastapi.testclient import TestClient

    app = service.create_app(backend_url)
    with TestClient(app) as client:
        calls = app.state.upstream_calls
        assert [client.get("/rates/EUR").json()["rate"] for _ in range(3)] == [1.08] * 3
        assert [client.get("/async/rates/GBP").json()["rate"] for _ in range(3)] == [1.27] * 3
        assert calls == ["EUR", "GBP"]  # each asked upstream once
        assert [client.get("/rates/XXX").status_code for _ in range(2)] == [404, 404]
        assert calls[2:] == ["XXX", "XXX"]  # an error is not cached

        assert client.get("/orders/status").json() == {"cursor": None, "orders": 0, "last_success": None}
        first, second = client.post("/orders/import").json(), client.post("/orders/import").json()
        assert (first["status"], first["result"], second["status"]) == ("succeeded", {"imported": 3}, "succeeded")
        for _ in range(2):
            assert client.get("/orders/status").json() == {"cursor": 6, "orders": 6, "last_success": second["run"]}
    with processcache.connect(backend_url) as db:  # the status reads recorded nothing
        assert [run.id for run in db.list_runs("shop/import-orders")] == [second["run"], first["run"]]


def test_the_original_readme_example_prints_and_stores_what_the_originals_own_code_does(backend_url):
    """Two runs, compared with the original README's index.ts run twice by its own code (tests/fixtures/original)."""
    for run in (1, 2):
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "original_readme.py"), backend_url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (original_db.FIXTURES / f"readme.run{run}.stdout").read_text()
        assert done.stderr == (original_db.FIXTURES / f"readme.run{run}.stderr").read_text()
    with processcache.cache_session("example", "readme-hello-world", machine="desktop-main", database=backend_url,
                                    scope="machine") as ctx:
        assert [(entry.key, entry.value, entry.machine) for entry in ctx.get_cache("foo", machine=ANY)] == \
            [("foo", "nope", "desktop-main"), ("foo", "bar", "desktop-main")]
        stored = [(log.machine, log.type.value, log.message) for log in ctx.get_logs(machine=ANY)]
    # the logs the original's own hello-world stored on desktop-main in its first two runs (original.sql, ids 1-5
    # and 11-15)
    assert stored == [("desktop-main", kind, message) for kind, message in [
        ("GENERIC", "Cache is empty and fresh"), ("GENERIC", "Operation running"),
        ("WARNING", "This is an example warning log"), ("ERROR", "This is what an error looks like"),
        ("GENERIC", 'Created value "nope" at key "foo" in cache'),
        ("GENERIC", "Cache does exist"), ("GENERIC", "Operation running"),
        ("WARNING", "This is an example warning log"), ("ERROR", "This is what an error looks like"),
        ("GENERIC", 'Created value "bar" at key "foo" in cache')]]
