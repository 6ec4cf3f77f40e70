"""The Keyturn side of the protected-endpoint workload: a FastAPI endpoint behind Keyturn's ASGI middleware.

    KEYTURN_BENCH_SERVICE_URL=http://127.0.0.1:8000 KEYTURN_BENCH_JWKS_FILE=jwks.json \\
        uvicorn --factory keyturn_resource:make_app --app-dir bench/compare --port 8100

Each process has its own ``AccessTokenVerifier``: the token service's public keys (its JWKS document,
which the benchmark fetched once into ``KEYTURN_BENCH_JWKS_FILE``), revocations from the service's feed
(polled every second), access tokens checked offline, a validated-token cache in front of the signature
check (DESIGN section 4). It is what ``AccessTokenVerifier.for_service(url)`` builds, except that the keys
are not fetched again from ``/.well-known/jwks.json`` while the benchmark runs: the token service's JWKS
route can hang (``FreshReads`` in ``keyturn/_reload.py`` spins when a request arrives just as a read
finishes), and did in this benchmark's first runs. ``GET /api/me/`` answers the token's subject, like the
DRF view it is compared with; ``GET /status`` needs no token.
"""

# No ``from __future__ import annotations``: FastAPI must see the Depends(...) in the signature.
import json
import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from keyturn.config import Settings
from keyturn.middleware import AccessClaims, AccessTokenVerifier, FeedURL, StaticKeys
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.fastapi import install, require_token


def verifier_for(service_url: str, jwks_file: Path) -> AccessTokenVerifier:
    settings = Settings()
    return AccessTokenVerifier(
        StaticKeys(json.loads(jwks_file.read_text())),
        FeedURL(f"{service_url.rstrip('/')}{settings.route_prefix}/revocations"),
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.leeway,
        revocation_poll_interval=settings.revocation_poll_interval,
    )


def make_app() -> FastAPI:
    verifier = verifier_for(
        os.environ["KEYTURN_BENCH_SERVICE_URL"], Path(os.environ["KEYTURN_BENCH_JWKS_FILE"])
    )
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
