"""A resource server behind Keyturn's ASGI middleware and FastAPI dependency, run as its own process.

``python -m tests.e2e.apps.fastapi_resource --service URL --port N [--key-refetch-interval S]``; the
verifier's other options come from the ``KEYTURN_*`` environment (``REVOCATION_POLL_INTERVAL`` and so on).

- ``GET /whoami``: the token's ``sub``, ``sid``, ``jti`` and ``kid``;
- ``GET /orders``: needs the scope ``orders:read``;
- ``GET /status``: the verifier's status, without a token.
"""

# No ``from __future__ import annotations``: FastAPI must see the Depends(...) built inside make_app.
import argparse
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from keyturn.config import Settings
from keyturn.middleware import AccessClaims, AccessTokenVerifier
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.fastapi import install, require_token

from ._listening import serve_uvicorn


def make_app(service_url: str, **options: object) -> FastAPI:
    verifier = AccessTokenVerifier.for_service(service_url, settings=Settings(), **options)
    app = FastAPI()
    install(app, verifier)
    app.add_middleware(KeyturnMiddleware, verifier=verifier, exempt=["/status"])  # type: ignore[arg-type]

    @app.get("/whoami")
    async def whoami(token: Annotated[AccessClaims, Depends(require_token(verifier))]) -> JSONResponse:
        return JSONResponse({"sub": token.sub, "sid": token.sid, "jti": token.jti, "kid": token.kid})

    @app.get("/orders")
    async def orders(
        token: Annotated[AccessClaims, Depends(require_token(verifier, scopes=["orders:read"]))],
    ) -> JSONResponse:
        return JSONResponse({"orders": [], "for": token.sub})

    @app.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse(verifier.status())

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-refetch-interval", type=float, default=1.0)
    args = parser.parse_args()
    app = make_app(args.service, key_refetch_interval=args.key_refetch_interval)
    serve_uvicorn(app, args.port, log_level="warning")


if __name__ == "__main__":
    main()
