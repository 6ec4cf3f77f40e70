"""``keyturn.django`` binds sessions to DPoP keys (RFC 9449) as ``keyturn serve`` does: a login with a proof
is bound, its refreshes need proofs by that key, and a copy of its refresh token without the key is
refused (``refresh_token_bound``) while the session goes on."""

from __future__ import annotations

import time

import httpx

from keyturn.client.dpop import DpopKey

from ._project import ExampleProject


def test_a_bound_session_in_the_django_app(keyturn_project: ExampleProject) -> None:
    (user,) = keyturn_project.add_users(1)
    key = DpopKey.generate()
    with (
        keyturn_project.serve("keyturn", server="gunicorn") as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):

        def proof(path: str, by: DpopKey = key) -> dict[str, str]:
            return {"DPoP": by.proof("POST", url + path, now=time.time())}

        started = c.post(
            "/api/auth/login",
            json={"username": user.username, "password": user.password},
            headers=proof("/api/auth/login"),
        )
        assert started.status_code == 200, started.text
        token = started.json()["refresh_token"]
        for _ in range(2):
            for headers in ({}, proof("/api/auth/refresh", DpopKey.generate())):
                stolen = c.post("/api/auth/refresh", json={"refresh_token": token}, headers=headers)
                assert (stolen.status_code, stolen.json()["error"]) == (401, "refresh_token_bound")
            wrong_url = c.post(
                "/api/auth/refresh", json={"refresh_token": token}, headers=proof("/api/auth/login")
            )
            assert (wrong_url.status_code, wrong_url.json()["error"]) == (400, "invalid_dpop_proof")
            rotated = c.post(
                "/api/auth/refresh", json={"refresh_token": token}, headers=proof("/api/auth/refresh")
            )
            assert rotated.status_code == 200, rotated.text
            token = rotated.json()["refresh_token"]
