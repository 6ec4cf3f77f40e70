"""``auth.start_session`` and ``auth.start`` in an app's own route refuse the way ``POST /auth/login`` does:
Keyturn's error body with the documented code (docs/fastapi.md), never a 500 the caller can provoke."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from keyturn import fastapi as keyturn
from keyturn.errors import SessionEnded
from keyturn.testing import make_settings

from .._challenges import ALGS, challenges
from .._threaded import serving
from ..e2e._http import assert_error


def _fastapi_app(tmp_path: Path) -> FastAPI:
    app = FastAPI()
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    auth = keyturn.install(app, settings=settings, subject_check=lambda subject: subject != "disabled")

    @app.post("/magic-link/{subject}")
    async def magic_link(subject: str, request: Request) -> Any:
        return await auth.start_session(request, subject)

    @app.post("/own-response/{subject}")
    async def own_response(subject: str, request: Request) -> dict[str, str]:
        return {"session": (await auth.start(request, subject)).session_id}

    @app.get("/calls-another-service")
    async def calls_another_service() -> None:
        raise SessionEnded("logout")  # the Python client's error: the app's own bug, not a wire code

    @app.get("/checks-by-hand")
    async def checks_by_hand(request: Request) -> dict[str, str]:
        token = request.headers.get("authorization", "").partition(" ")[2]
        return {"sub": (await auth.verifier.averify(token)).sub}

    return app


def _starlette_app(tmp_path: Path) -> Starlette:
    async def magic_link(request: Request) -> Response:
        return await auth.start_session(request, request.path_params["subject"])

    app = Starlette(routes=[Route("/magic-link/{subject}", magic_link, methods=["POST"])])
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    auth = keyturn.install(app, settings=settings, subject_check=lambda subject: subject != "disabled")
    return app


@pytest.mark.parametrize("build", [_fastapi_app, _starlette_app], ids=["fastapi", "starlette"])
def test_a_refused_start_answers_keyturns_error_not_a_500(build: Any, tmp_path: Path) -> None:
    """A subject ``subject_check`` refuses is ``401 invalid_credentials`` (as at the login route), and a
    malformed ``DPoP`` header, which any caller can send, ``400 invalid_dpop_proof``."""
    with serving(build(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as http:
        started = http.post("/magic-link/ada")
        assert started.status_code == 200, started.text

        refused = http.post("/magic-link/disabled")
        assert_error(refused, 401, "invalid_credentials", bare=True)

        bad_proof = http.post("/magic-link/ada", headers={"DPoP": "not-a-proof"})
        assert_error(bad_proof, 400, "invalid_dpop_proof")


def test_start_refuses_the_same_way_and_the_clients_errors_stay_the_apps(tmp_path: Path) -> None:
    """``auth.start`` (a response of the app's own) refuses as ``start_session`` does; an error of the
    Python client raised in an app's route is not a wire code and stays the app's 500."""
    with serving(_fastapi_app(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/own-response/ada").status_code == 200
        assert_error(http.post("/own-response/disabled"), 401, "invalid_credentials", bare=True)
        assert_error(http.post("/own-response/ada", headers={"DPoP": "x"}), 400, "invalid_dpop_proof")
        assert http.get("/calls-another-service").status_code == 500


def test_a_token_refused_by_hand_is_challenged_as_at_the_apps_resources(tmp_path: Path) -> None:
    """``auth.verifier`` called in an app's own route: its refusal is challenged as ``require_token``'s,
    ``Bearer`` then ``DPoP`` with the algorithms (the embedding takes DPoP-bound tokens), and in the DPoP
    scheme alone for a request that used it (RFC 9449 sections 7.1 and 7.2)."""
    with serving(_fastapi_app(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as http:
        as_bearer = http.get("/checks-by-hand", headers={"Authorization": "Bearer not-a-token"})
        as_dpop = http.get("/checks-by-hand", headers={"Authorization": "DPoP not-a-token"})
    assert_error(as_bearer, 401, "token_invalid", dpop=True)
    assert (as_dpop.status_code, as_dpop.json()["error"]) == (401, "token_invalid")
    ((scheme, params),) = challenges(as_dpop.headers["www-authenticate"])
    assert (scheme, params["error"], params["algs"]) == ("DPoP", "invalid_token", ALGS)
