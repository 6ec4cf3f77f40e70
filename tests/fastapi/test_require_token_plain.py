"""``require_token`` without ``install``: FastAPI's own handler answers ``{"detail"}``, which must still
name the wire code, since a request without a token gets the bare challenges (RFC 6750 section 3.1)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

from keyturn.middleware.fastapi import require_token
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.testing import make_settings
from keyturn.tokens import AccessClaims

from .._challenges import ALGS, BARE, BARE_BEARER, challenges
from .._threaded import serving


@pytest.mark.parametrize("dpop", ["optional", "off"])
def test_fastapis_own_handler_names_the_code_in_detail(tmp_path: Path, dpop: str) -> None:
    """RFC 9449 section 7.2: while DPoP is on (``KEYTURN_DPOP``), no token and a refused Bearer token are
    challenged in both schemes, ``DPoP`` with the proof algorithms; off, in ``Bearer`` alone, as before."""
    settings = make_settings(dpop=dpop)
    verifier = AccessTokenVerifier.for_store(f"sqlite:///{tmp_path / 'k.db'}", settings=settings)
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

    on = dpop != "off"
    assert missing.status_code == 401
    assert missing.json() == {"detail": "token_invalid: No access token was given."}
    assert missing.headers["www-authenticate"] == (BARE if on else BARE_BEARER)
    assert broken.status_code == 401
    assert broken.json()["detail"].startswith("token_invalid: ")
    (scheme, params), *rest = challenges(broken.headers["www-authenticate"])
    assert (scheme, params["realm"], params["error"]) == ("Bearer", "keyturn", "invalid_token")
    assert rest == ([("DPoP", {"realm": "keyturn", "algs": ALGS})] if on else [])
