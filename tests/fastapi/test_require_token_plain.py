"""``require_token`` without ``install``: FastAPI's own handler answers ``{"detail"}``, which must still
name the wire code, since a request without a token gets the bare challenge (RFC 6750 section 3.1)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import Depends, FastAPI

from keyturn.middleware.fastapi import require_token
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.tokens import AccessClaims

from .._threaded import serving


def test_fastapis_own_handler_names_the_code_in_detail(tmp_path: Path) -> None:
    verifier = AccessTokenVerifier.for_store(f"sqlite:///{tmp_path / 'k.db'}")
    app = FastAPI()
    guard = Depends(require_token(verifier))

    @app.get("/orders")
    async def orders(token: AccessClaims = guard) -> dict[str, str]:
        return {"user": token.sub}

    try:
        with serving(app) as url, httpx.Client(base_url=url) as http:
            missing = http.get("/orders")
            broken = http.get("/orders", headers={"Authorization": "Bearer not-a-token"})
    finally:
        verifier.close()

    assert missing.status_code == 401
    assert missing.json() == {"detail": "token_invalid: No access token was given."}
    assert missing.headers["www-authenticate"] == 'Bearer realm="keyturn"'
    assert broken.status_code == 401
    assert broken.json()["detail"].startswith("token_invalid: ")
    assert broken.headers["www-authenticate"].startswith('Bearer realm="keyturn", error="invalid_token"')
