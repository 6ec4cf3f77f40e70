"""JWKS and health checks."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import KeyturnError
from ._common import runtime

router = APIRouter(tags=["meta"])

JWKS_MAX_AGE = 300
KEY_FRESHNESS = 1.0
logger = logging.getLogger("keyturn.server")


@router.get("/.well-known/jwks.json", summary="The public keys that verify access tokens")
async def jwks(request: Request) -> JSONResponse:
    """Every key that may verify a live access token.

    Validators fetch this when a token names a key they do not know, so the key ring is read again from
    the store first (at most once a second): a key another process signs with is always listed.
    """
    sessions = runtime(request).sessions
    try:
        await sessions.reload_keys(max_age=KEY_FRESHNESS)
    except KeyturnError:
        logger.warning("jwks: could not reload the keys from the store; serving the ones loaded before")
    return JSONResponse(
        sessions.keys.jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@router.get("/healthz", summary="The process is up")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The process can reach its store")
async def readyz(request: Request) -> JSONResponse:
    await runtime(request).store.ping()
    return JSONResponse({"status": "ready"})
