"""examples/fastapi_service.py, the service docs/services.rst shows, run through TestClient on each database."""

import importlib.util

import pytest
from paths import ROOT

import processcache


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
