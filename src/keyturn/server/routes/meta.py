"""JWKS and health checks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ._common import runtime

router = APIRouter(tags=["meta"])

JWKS_MAX_AGE = 300


@router.get("/.well-known/jwks.json", summary="The public keys that verify access tokens")
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(
        runtime(request).sessions.keys.jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@router.get("/healthz", summary="The process is up")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The process can reach its store")
async def readyz(request: Request) -> JSONResponse:
    await runtime(request).store.ping()
    return JSONResponse({"status": "ready"})
