"""Injection-shaped input where it reaches a store: key ids, user names, session ids, on every backend.

A token's ``kid`` picks the key that verifies it, and one the service does not know makes it reload its keys
from the store (docs/contract.md, Keys); a user name at login and the id in ``DELETE /auth/sessions/{id}``
go to the store as they come. Path traversal, SQL, LIKE/glob wildcards and Redis key names must get the
documented answers (``token_invalid``, ``invalid_credentials``, 404 ``invalid_request``) on SQLite,
PostgreSQL and Redis alike, and change nothing: the same keys are published, alice's sessions live on, and
she still logs in and refreshes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ..e2e._http import assert_error, bearer, jwt_parts, me, refresh, refreshed, why
from ._forge import Attacker, forge, fresh_claims, parts
from ._services import Service

HOSTILE_KIDS = {
    "path-traversal": "../../etc/passwd",
    "path-traversal-deep": "../../../../../../../../../etc/passwd",
    "absolute-path": "/etc/passwd",
    "path-with-nul": "../../etc/passwd\x00",
    "file-url": "file:///etc/passwd",
    "sql-or": "' OR 1=1 --",
    "sql-or-double-quotes": '" OR ""="',
    "sql-union": "x' UNION SELECT kid, use, alg, material, public_jwk FROM signing_keys --",
    "sql-drop": "'; DROP TABLE signing_keys; --",
    "sql-comment": "*/ OR 1=1 /*",
    "like-wildcard": "%",
    "redis-glob": "*",
    "redis-key-name": "keyturn:keys",
    "redis-protocol": "x\r\nFLUSHALL\r\n",
    "lua": "]] redis.call('FLUSHALL') --[[",
    "empty": "",
    "very-long": "k" * 2000,
    "non-ascii": "\u043a\u043b\u044e\u0447",
}

Send = Callable[[httpx.Client, str], httpx.Response]


def concurrently(service: Service, send: Send, items: dict[str, str]) -> dict[str, httpx.Response]:
    """``send`` each item from a few threads at once, as a flood would (each unknown key id costs the
    service a reload at most once a second; concurrent requests share it)."""

    def one(item: tuple[str, str]) -> tuple[str, httpx.Response]:
        with service.client() as http:
            return item[0], send(http, item[1])

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(pool.map(one, items.items()))


def assert_all(answers: dict[str, httpx.Response], status: int, code: str) -> None:
    wrong = {name: why(answer) for name, answer in answers.items() if answer.status_code != status}
    assert not wrong, f"expected {status} {code}: {wrong}"
    for answer in answers.values():
        assert_error(answer, status, code)


def published_kids(service: Service) -> set[str]:
    with service.client() as http:
        return {key["kid"] for key in http.get("/.well-known/jwks.json").json()["keys"]}


def assert_nothing_changed(service: Service, kids: set[str], pair: dict[str, Any]) -> None:
    """The keys are the same and alice's session works: her access token passes, her refresh token is
    still the head (it rotates to generation 1, not a replay or a reuse)."""
    assert published_kids(service) == kids
    with service.client() as http:
        assert me(http, pair["access_token"]).status_code == 200
        rotated = refreshed(http, pair["refresh_token"])
    assert jwt_parts(rotated["refresh_token"])[1]["gen"] == 1


@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_hostile_key_ids_are_token_invalid_and_change_nothing(service: Service, kind: str) -> None:
    """No key id reaches a file, a query or a Redis key: each is an unknown key, ``token_invalid``."""
    kids = published_kids(service)
    pair = service.login()
    attacker = Attacker()
    real = pair["access_token"] if kind == "access" else pair["refresh_token"]
    header, claims = parts(real)
    if kind == "access":
        tokens = {
            name: _sign(header, kid, fresh_claims(claims), attacker.key("ES256"), "ES256")
            for name, kid in HOSTILE_KIDS.items()
        }
        answers = concurrently(service, lambda http, token: me(http, token), tokens)
    else:
        tokens = {
            name: _sign(header, kid, fresh_claims(claims), attacker.secret, "HS256")
            for name, kid in HOSTILE_KIDS.items()
        }
        answers = concurrently(service, refresh, tokens)
    assert_all(answers, 401, "token_invalid")
    assert_nothing_changed(service, kids, pair)


def _sign(header: dict[str, Any], kid: str, claims: dict[str, Any], key: Any, alg: str) -> str:
    """``header`` naming ``kid``, over ``claims``, signed with the attacker's ``key``."""
    return forge({**header, "kid": kid}, claims, key, alg)


HOSTILE_USER_NAMES = {
    "sql-or": "' OR 1=1 --",
    "sql-comment-after-name": "alice' --",
    "sql-block-comment": "alice'/*",
    "sql-double-quote": 'alice" --',
    "sql-always-true": "x' OR 'a'='a",
    "like-percent": "ali%",
    "like-underscore": "alic_",
    "glob-star": "al*",
    "leading-space": " alice",
    "trailing-nul": "alice\x00",
    "path": "../alice",
}


def test_injection_shaped_user_names_are_invalid_credentials(service: Service) -> None:
    """Each name comes with alice's real password: a store that matched alice by a pattern, a comment or
    a trimmed or truncated name would log the caller in. None may: ``invalid_credentials``."""

    def log_in(http: httpx.Client, name: str) -> httpx.Response:
        for _ in range(60):  # all at once: past the bounded login queue, 503 and Retry-After (issue 18)
            answer = http.post("/auth/login", json=service.credentials(name))
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers["retry-after"]))
        return answer

    answers = concurrently(service, log_in, HOSTILE_USER_NAMES)
    assert_all(answers, 401, "invalid_credentials")
    assert service.login()["session_id"]
    with service.client() as http:
        upper = log_in(http, "ALICE")
    if service.name_field == "username":
        # Case is not a different name: keyturn serve case folds usernames (NFKC), so ALICE is alice.
        assert upper.status_code == 200, why(upper)
    else:
        # The example app's own users table matches the email exactly: a store that matched it without
        # regard to case (a collation, ILIKE) would log ALICE in as alice.
        assert_all({"case": upper}, 401, "invalid_credentials")


HOSTILE_SESSION_IDS = {
    "sql-or": "' OR 1=1 --",
    "sql-always-true": "x' OR '1'='1",
    "like-percent": "%",
    "like-underscore": "_",
    "glob-star": "*",
    "redis-key-name": "keyturn:sessions:*",
    "path-traversal": "../../etc/passwd",
    "dot-dot": "..",
    "nul": "\x00",
    "very-long": "s" * 4000,
}


def test_injection_shaped_session_ids_are_404_and_end_nothing(service: Service) -> None:
    """``DELETE /auth/sessions/{id}`` with such an id is a session the caller does not have: 404
    ``invalid_request`` (docs/contract.md), and every session of alice's is still active afterwards."""
    first, second = service.login(), service.login()
    sids = {first["session_id"], second["session_id"]}
    ids = {**HOSTILE_SESSION_IDS, "own-id-then-sql": first["session_id"] + "' OR '1'='1"}

    def delete(http: httpx.Client, sid: str) -> httpx.Response:
        return http.delete(f"/auth/sessions/{quote(sid, safe='')}", headers=bearer(second["refresh_token"]))

    answers = concurrently(service, delete, ids)
    assert_all(answers, 404, "invalid_request")
    with service.client() as http:
        listed = http.get("/auth/sessions", headers=bearer(second["refresh_token"]))
        assert listed.status_code == 200, why(listed)
        active = {s["session_id"] for s in listed.json() if s["state"] == "active"}
        assert sids <= active
        assert refresh(http, first["refresh_token"]).status_code == 200
