"""processcache inside a FastAPI service: one Database per worker, memoised upstream calls, recorded work.

Run it (four worker processes, each importing this module and calling
`create_app` after the fork, so each has its own Database and pool)::

    pip install fastapi uvicorn 'processcache[postgres]'
    PROCESSCACHE_DATABASE_URL=postgresql://app@db.internal/app \\
        uvicorn --factory examples.fastapi_service:create_app --workers 4

    curl localhost:8000/rates/EUR          # a sync endpoint: FastAPI runs it in its thread pool
    curl localhost:8000/async/rates/EUR    # an async one: the memoised coroutine
    curl -X POST localhost:8000/orders/import
    curl localhost:8000/orders/status

What each endpoint shows is in docs/services.rst; tests/test_examples.py
runs them through FastAPI's TestClient.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

import processcache
from processcache import ProcessCacheError, cache_session, memoize, read_cache

#: The upstream API this service sits in front of (here, a stand-in that counts its calls).
UPSTREAM_RATES = {"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}


def fetch_rate(currency: str, calls: list[str]) -> float:
    """The slow, rate-limited upstream call that the cache is for."""
    calls.append(currency)
    try:
        return UPSTREAM_RATES[currency]
    except KeyError:
        raise HTTPException(404, f"no rate for {currency}") from None


def fetch_orders(since: int, calls: list[str]) -> list[dict[str, Any]]:
    """New orders upstream after the order number *since* (here, three a call)."""
    calls.append(f"orders>{since}")
    return [{"number": number, "total": 10.0 * number} for number in range(since + 1, since + 4)]


def create_app(database: str | None = None) -> FastAPI:
    """The service, on *database* (a URL; default ``PROCESSCACHE_DATABASE_URL``).

    One Database per process, connected here and handed to everything: one
    pool of at most ``pool_size`` server connections (10 by default) that
    all of the worker's threads share, whichever endpoint they serve.
    """
    db = processcache.connect(database or os.environ.get("PROCESSCACHE_DATABASE_URL"))
    # if_database_down="call": while the cache's database cannot be reached, ask upstream uncached rather than fail.
    calls: list[str] = []  # what reached the upstream API, for the tests and the curious

    @memoize("service", ttl="1h", database=db, name="rates", if_database_down="call")
    def rate(currency: str) -> float:
        return fetch_rate(currency, calls)

    @memoize("service", ttl="1h", database=db, name="rates-async", if_database_down="call")
    async def rate_async(currency: str) -> float:
        return fetch_rate(currency, calls)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(lifespan=lifespan)
    app.state.database, app.state.upstream_calls = db, calls

    @app.get("/rates/{currency}")
    def get_rate(currency: str) -> dict[str, Any]:
        # A plain def: FastAPI runs it in its thread pool, where blocking on the database is fine.
        return {"currency": currency, "rate": rate(currency)}

    @app.get("/async/rates/{currency}")
    async def get_rate_async(currency: str) -> dict[str, Any]:
        return {"currency": currency, "rate": await rate_async(currency)}

    @app.post("/orders/import")
    def import_orders() -> dict[str, Any]:
        # Work worth a record: a run of shop/import-orders, as cron's runs of it are. output_tail=0: the
        # process's stdout is every thread's, not this run's. overlap="skip": one import at a time, farm-wide.
        try:
            with cache_session("shop", "import-orders", database=db, output_tail=0, overlap="skip") as ctx:
                with ctx.batch():  # read-modify-write: the orders and the cursor are stored together or not at all
                    since = ctx.latest("cursor", 0)
                    orders = fetch_orders(since, calls)
                    ctx.create_cache_many([("order", order) for order in orders])
                    ctx.set_cache("cursor", orders[-1]["number"])
                ctx.result = {"imported": len(orders)}
        except ProcessCacheError as exc:  # JobLockedError: another import is running
            raise HTTPException(409, str(exc)) from None
        run = ctx.record  # the final record: never None once the block has ended
        return {"run": run.id, "status": run.status, "result": run.result}

    @app.get("/orders/status")
    def orders_status() -> dict[str, Any]:
        # Looking records nothing: no run, and the next import's last_success() is what it was.
        try:
            with read_cache("shop", "import-orders", database=db) as cache:
                last = cache.last_success()
                return {"cursor": cache.latest("cursor"), "orders": len(cache.get_cache("order")),
                        "last_success": None if last is None else last.id}
        except ProcessCacheError:
            return {"cursor": None, "orders": 0, "last_success": None}  # no import has run yet

    return app
