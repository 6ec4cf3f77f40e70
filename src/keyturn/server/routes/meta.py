"""The JWKS (``jwks_router``, wherever Keyturn is installed); health checks and metrics (``router``,
``keyturn serve``). Each answers HEAD too (``curl -I``), as every GET route of a ``KeyturnRoute`` does."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...keys import public_jwks
from ...typing import JSONValue, Store
from ..errors import KeyturnRoute
from ._common import UNAVAILABLE, keyturn, runtime

router = APIRouter(tags=["meta"], route_class=KeyturnRoute)
jwks_router = APIRouter(tags=["meta"], route_class=KeyturnRoute)

JWKS_MAX_AGE = 300


@jwks_router.get(
    "/.well-known/jwks.json",
    summary="The public keys that verify access tokens",
    responses=UNAVAILABLE,
)
async def jwks(request: Request) -> JSONResponse:
    """Every key that may verify a live access token, read from the store for this request.

    Validators fetch this when a token names a key they do not know. Every key is in the store before
    any process signs with it, so an answer to a request made after a token was issued lists its key,
    whichever process signed the token and whichever answers. Concurrent requests share reads, one at
    a time, each answered by a read begun after it arrived. Without the store the answer is a 503: a
    list older than the question could make a validator take a genuine token for a forged one.
    """
    return JSONResponse(
        await keyturn(request).jwks_reads(), headers={"Cache-Control": f"private, max-age={JWKS_MAX_AGE}"}
    )


async def read_jwks(store: Store) -> dict[str, list[Mapping[str, JSONValue]]]:
    return public_jwks(await store.list_keys())


@router.get("/healthz", summary="The process is up")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The process can reach its store", responses=UNAVAILABLE)
async def readyz(request: Request) -> JSONResponse:
    await runtime(request).store.ping()
    return JSONResponse({"status": "ready"})


metrics_router = APIRouter(tags=["meta"], route_class=KeyturnRoute)
"""``/metrics``, unless ``KEYTURN_METRICS=off``."""


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The text exposition format"}},
)
async def metrics(request: Request) -> Response:
    """Refresh outcomes and latency, rotations, replays, reuse, sessions started and revoked, rate-limit
    hits. Labels are codes and reasons only: no session, subject or address."""
    series = keyturn(request).metrics
    return Response(series.render(), media_type=series.content_type)
