"""What operators and resource servers rely on, over real HTTP: the JWKS (public keys only), health and
readiness probes, the API docs and OpenAPI document, the production switches, and the warning about a
data directory others can enter.
"""

from __future__ import annotations

from pathlib import Path

import jwt

from ._api import Api
from ._http import assert_error, jwt_parts
from ._server import cluster

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_jwks_publishes_public_keys_only_with_cache_control(api: Api) -> None:
    """Resource servers cache the JWKS and verify access tokens with it; it never carries a secret."""
    with api.client() as http:
        answer = http.get("/.well-known/jwks.json")
        pair = api.login(http)
    assert answer.status_code == 200
    cache = answer.headers["cache-control"]
    assert "max-age=" in cache
    assert "no-store" not in cache
    keys = answer.json()["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & set(key), sorted(key)
        assert key["use"] == "sig"
        assert key["kty"] in {"EC", "OKP", "RSA"}
        assert key["kid"]
        assert key["alg"] != "HS256"
    # A resource server with nothing but the JWKS verifies an access token.
    kid = jwt_parts(pair["access_token"])[0]["kid"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    claims = jwt.decode(
        pair["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience="keyturn-api",
        issuer="keyturn",
    )
    assert claims["sid"] == pair["session_id"]
    # The refresh key is server-only.
    refresh_kid = jwt_parts(pair["refresh_token"])[0]["kid"]
    assert refresh_kid not in {k["kid"] for k in keys}


def test_health_and_readiness_answer(api: Api) -> None:
    """Orchestrators probe /healthz and /readyz."""
    api.serve_only("/healthz and /readyz")
    with api.client() as http:
        health = http.get("/healthz")
        ready = http.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_docs_and_openapi_are_served(api: Api) -> None:
    """The API documents itself: /docs renders and /openapi.json lists every endpoint."""
    api.serve_only("the service's own OpenAPI document")
    with api.client() as http:
        docs = http.get("/docs")
        schema = http.get("/openapi.json")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "openapi.json" in docs.text
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/auth/login",
        "/auth/refresh",
        "/auth/me",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/sessions",
        "/auth/sessions/{session_id}",
        "/auth/revoke",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/introspect",
        "/.well-known/oauth-authorization-server",
    ):
        assert path in paths


def test_docs_metrics_and_demo_can_be_turned_off(tmp_path: Path) -> None:
    """Production switches: /docs (Swagger UI, whose scripts come from a CDN) is off unless
    ``KEYTURN_DOCS=on``; ``KEYTURN_METRICS=off`` and ``KEYTURN_DEMO=off`` take /metrics and /demo/ away.
    /openapi.json, plain data, stays."""
    with cluster(tmp_path / "on", 1) as group, group.server.client() as http:
        assert_error(http.get("/docs"), 404, "invalid_request")
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert http.get("/demo/").status_code == 200
    off = {"KEYTURN_METRICS": "off", "KEYTURN_DEMO": "off"}
    with cluster(tmp_path / "off", 1, off) as group, group.server.client() as http:
        assert_error(http.get("/metrics"), 404, "invalid_request")
        assert_error(http.get("/demo/"), 404, "invalid_request")
        assert http.get("/healthz").status_code == 200


def test_openapi_says_what_the_service_answers(api: Api) -> None:
    """The served document: no 422 (a malformed call is a 400 with the one error body), the bearer scheme
    on the calls that need an access token, the bodies FastAPI cannot see, cookie mode's cookie and
    header, and the 503 of the routes that read the store."""
    api.serve_only("the service's own OpenAPI document (an app's has its own routes' 422s)")
    with api.client() as http:
        schema = http.get("/openapi.json").json()
    operations = {(m.upper(), p): op for p, ops in schema["paths"].items() for m, op in ops.items()}
    assert all("422" not in op["responses"] for op in operations.values())
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert operations[("GET", "/auth/me")]["security"] == [{"bearer": []}]
    assert operations[("POST", "/auth/logout")]["security"] == [{"bearer": []}, {}]  # or the refresh token
    managing = (
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{session_id}"),
        ("POST", "/auth/logout-all"),
    )
    for key in managing:  # the refresh token as the bearer credential, or in the body or the cookie
        assert operations[key]["security"] == [{"refresh": []}, {}], key
        assert "403" in operations[key]["responses"], key
    assert schema["components"]["securitySchemes"]["refresh"]["scheme"] == "bearer"
    for key in (("POST", "/auth/refresh"), ("POST", "/auth/logout"), ("POST", "/auth/logout-all")):
        names = {(p["in"], p["name"]) for p in operations[key].get("parameters", [])}
        dpop = {("header", "DPoP")} if key == ("POST", "/auth/refresh") else set()  # RFC 9449 proofs
        assert names == {("cookie", "keyturn_refresh"), ("header", "X-Keyturn-CSRF")} | dpop, key
    refresh_body = operations[("POST", "/auth/refresh")]["requestBody"]["content"]["application/json"]
    assert set(refresh_body["schema"]["properties"]) == {"refresh_token"}
    revoke_body = operations[("POST", "/auth/revoke")]["requestBody"]["content"]
    assert set(revoke_body) == {"application/x-www-form-urlencoded", "application/json"}
    assert revoke_body["application/json"]["schema"]["required"] == ["token"]
    for key in (("GET", "/.well-known/jwks.json"), ("GET", "/readyz")):
        assert "503" in operations[key]["responses"], key


def test_a_data_directory_others_can_enter_is_warned_about(tmp_path: Path) -> None:
    """An existing data directory of mode 0755 holds the master secret and the SQLite file: the server
    starts, and says so in its log; a 0700 one is not warned about."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with cluster(data, 1) as group, group.server.client() as http:
        assert http.get("/healthz").status_code == 200
        log = group.server.log.read_text()
    assert "open to other users (mode 755)" in log
    with cluster(tmp_path / "private", 1) as group, group.server.client() as http:
        assert http.get("/healthz").status_code == 200
        assert "open to other users" not in group.server.log.read_text()
