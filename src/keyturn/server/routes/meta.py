"""JWKS and health checks."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import KeyturnError
from ._common import runtime

router = APIRouter(tags=["meta"])

JWKS_MAX_AGE = 300
logger = logging.getLogger("keyturn.server")


@router.get("/.well-known/jwks.json", summary="The public keys that verify access tokens")
async def jwks(request: Request) -> JSONResponse:
    """Every key that may verify a live access token, read from the store on each request.

    Validators fetch this when a token names a key they do not know. Every key is in the store before
    any process signs with it, so a key missing from an answer begun after a token was issued never
    signed it, whichever process signed the token and whichever process answers.
    """
    rt = runtime(request)
    try:
        stored = await rt.store.list_keys()
        jwks = {"keys": [json.loads(k.public_jwk) for k in stored if k.use == "access" and k.public_jwk]}
    except KeyturnError:
        logger.warning("jwks: the store is out of reach; serving the keys loaded before")
        jwks = rt.sessions.keys.jwks()
    return JSONResponse(
        jwks,
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@router.get("/healthz", summary="The process is up")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The process can reach its store")
async def readyz(request: Request) -> JSONResponse:
    await runtime(request).store.ping()
    return JSONResponse({"status": "ready"})
