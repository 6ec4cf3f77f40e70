"""A plain Starlette app (no FastAPI) wrapped in Keyturn's pure ASGI middleware, run as its own process.

``python -m tests.e2e.apps.starlette_resource --service URL --port N``; served by uvicorn. The verifier's
other options come from the ``KEYTURN_*`` environment.

- ``GET /whoami``: the token's ``sub``, ``sid``, ``jti`` and ``kid`` from ``scope["keyturn.token"]``, and
  whether ``request.state.keyturn`` holds the same claims;
- ``GET /status``: the verifier's status, exempt from the token check.
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn.config import Settings
from keyturn.middleware import AccessClaims, AccessTokenVerifier
from keyturn.middleware.asgi import KeyturnMiddleware

from ._listening import serve_uvicorn


def make_app(verifier: AccessTokenVerifier) -> KeyturnMiddleware:
    async def whoami(request: Request) -> JSONResponse:
        token: AccessClaims = request.scope["keyturn.token"]
        same = request.state.keyturn is token
        return JSONResponse(
            {"sub": token.sub, "sid": token.sid, "jti": token.jti, "kid": token.kid, "state_matches": same}
        )

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(verifier.status())

    app = Starlette(routes=[Route("/whoami", whoami), Route("/status", status)])
    return KeyturnMiddleware(app, verifier, exempt=["/status"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    verifier = AccessTokenVerifier.for_service(args.service, settings=Settings())
    serve_uvicorn(make_app(verifier), args.port, log_level="warning")


if __name__ == "__main__":
    main()
