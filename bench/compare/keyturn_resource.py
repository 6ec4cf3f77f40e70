"""The Keyturn side of the protected-endpoint workload: a FastAPI endpoint behind Keyturn's ASGI middleware.

    KEYTURN_BENCH_SERVICE_URL=http://127.0.0.1:8000 \\
        uvicorn --factory keyturn_resource:make_app --app-dir bench/compare --port 8100

Each process has its own ``AccessTokenVerifier.for_service(url)``: the token service's public keys (its
JWKS), revocations from the service's feed (polled every second), access tokens checked offline, a
validated-token cache in front of the signature check (DESIGN section 4). ``GET /api/me/`` answers the
token's subject, like the DRF view it is compared with; ``GET /status`` needs no token.
"""

# No ``from __future__ import annotations``: FastAPI must see the Depends(...) in the signature.
import os
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from keyturn.middleware import AccessClaims, AccessTokenVerifier
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.fastapi import install, require_token


def make_app() -> FastAPI:
    verifier = AccessTokenVerifier.for_service(os.environ["KEYTURN_BENCH_SERVICE_URL"])
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install(app, verifier)
    app.add_middleware(KeyturnMiddleware, verifier=verifier, exempt=["/status"])

    @app.get("/api/me/")
    async def me(token: Annotated[AccessClaims, Depends(require_token(verifier))]) -> JSONResponse:
        return JSONResponse({"username": token.sub})

    @app.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
