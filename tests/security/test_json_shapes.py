"""Ambiguous, deep and huge JSON: in token headers and claims (signed with the service's own keys, so only
the parsing can refuse them) and in request bodies, at the service and at a resource server.

src/keyturn/_jws.py refuses a repeated member name ("two readers of one token must never see different
claims"); docs/contract.md makes any malformed token ``token_invalid`` and any malformed body 400
``invalid_request``, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from keyturn.keys import KeyRing

from ..e2e._http import assert_error, bearer, jwt_parts, me, refresh, why
from ..e2e._resource import ResourceApp
from ._forge import JSONText, forge, fresh_claims, parts
from ._services import EMBEDDED, Service, whoami

# Parsing does not depend on the store: SQLite only (test_store_inputs.py covers every backend).
pytestmark = pytest.mark.parametrize("service", ["sqlite", EMBEDDED], indirect=True)


def repeated(value: dict[str, Any], name: str, first: Any) -> JSONText:
    """``value`` as JSON text with member ``name`` written twice: ``first``, then its real value."""
    text = json.dumps(value, separators=(",", ":"))
    return f'{{"{name}":{json.dumps(first)},{text[1:]}'


def repeated_last(value: dict[str, Any], name: str, last: Any) -> JSONText:
    """``value`` as JSON text with member ``name`` written again at the end, as ``last``."""
    text = json.dumps(value, separators=(",", ":"))
    return f'{text[:-1]},"{name}":{json.dumps(last)}}}'


def with_raw(value: dict[str, Any], name: str, literal: str) -> JSONText:
    """``value`` as JSON text with ``name`` set to a raw JSON literal (``1e400``, ``NaN``, huge integers)."""
    text = json.dumps({**value, name: "@"}, separators=(",", ":"))
    return text.replace(f'"{name}":"@"', f'"{name}":{literal}')


def nested(depth: int) -> JSONText:
    return "[" * depth + "]" * depth


@dataclass
class Scene:
    service: Service
    keys: KeyRing
    pair: dict[str, Any]

    def header(self) -> dict[str, Any]:
        return {"alg": "ES256", "typ": "at+jwt", "kid": self.keys.active_access.kid}

    def claims(self) -> dict[str, Any]:
        return fresh_claims(parts(self.pair["access_token"])[1])

    def access(self, header: dict[str, Any] | JSONText, claims: dict[str, Any] | JSONText | bytes) -> str:
        return forge(header, claims, self.keys.active_access.private_key, "ES256")

    def refresh_token(self, header: dict[str, Any] | JSONText, claims: dict[str, Any] | JSONText) -> str:
        return forge(header, claims, self.keys.active_refresh.secret, "HS256")


@pytest.fixture
def scene(service: Service) -> Scene:
    return Scene(service, service.keys(), service.login())


Forge = Callable[[Scene], str]

ACCESS_SHAPES: dict[str, Forge] = {
    # A reader keeping the first member and one keeping the last would disagree.
    "header-kid-twice": lambda s: s.access(repeated(s.header(), "kid", "another-key"), s.claims()),
    "header-typ-twice": lambda s: s.access(repeated(s.header(), "typ", "JWT"), s.claims()),
    "header-alg-twice": lambda s: s.access(repeated(s.header(), "alg", "none"), s.claims()),
    "header-typ-twice-same": lambda s: s.access(repeated_last(s.header(), "typ", "at+jwt"), s.claims()),
    "claims-sub-twice": lambda s: s.access(s.header(), repeated(s.claims(), "sub", "mallory")),
    "claims-sub-twice-last": lambda s: s.access(s.header(), repeated_last(s.claims(), "sub", "mallory")),
    "claims-sid-twice": lambda s: s.access(s.header(), repeated(s.claims(), "sid", "another-session")),
    "claims-exp-twice": lambda s: s.access(s.header(), repeated_last(s.claims(), "exp", 4_000_000_000)),
    "claims-aud-twice": lambda s: s.access(s.header(), repeated(s.claims(), "aud", "another-api")),
    "claims-iss-twice": lambda s: s.access(s.header(), repeated(s.claims(), "iss", "https://evil.example")),
    # Deeper than a recursive parser goes, and within the 8 KiB cap.
    "header-nested-2000": lambda s: s.access(with_raw(s.header(), "x", nested(2000)), s.claims()),
    "claims-nested-2000": lambda s: s.access(s.header(), with_raw(s.claims(), "x", nested(2000))),
    # Numbers a parser turns into infinity, NaN, or refuses outright.
    "exp-1e400": lambda s: s.access(s.header(), with_raw(s.claims(), "exp", "1e400")),
    "exp-Infinity": lambda s: s.access(s.header(), with_raw(s.claims(), "exp", "Infinity")),
    "exp-NaN": lambda s: s.access(s.header(), with_raw(s.claims(), "exp", "NaN")),
    "exp-5000-digits": lambda s: s.access(s.header(), with_raw(s.claims(), "exp", "9" * 5000)),
    "iat-minus-1e400": lambda s: s.access(s.header(), with_raw(s.claims(), "iat", "-1e400")),
    "nbf-NaN": lambda s: s.access(s.header(), with_raw(s.claims(), "nbf", "NaN")),
    # Not UTF-8, or not an object.
    "claims-latin-1": lambda s: s.access(s.header(), json.dumps(s.claims())[:-1].encode() + b',"x":"\xe9"}'),
    "claims-an-array": lambda s: s.access(s.header(), "[" + json.dumps(s.claims()) + "]"),
    "header-trailing-garbage": lambda s: s.access(json.dumps(s.header()) + "x", s.claims()),
}


def test_a_well_formed_token_signed_here_is_admitted(scene: Scene, resource: ResourceApp) -> None:
    """The helpers sign correctly: a token they make with plain JSON passes both validators."""
    token = scene.access(scene.header(), scene.claims())
    with scene.service.client() as http:
        assert me(http, token).status_code == 200
    assert whoami(resource, token).status_code == 200


@pytest.mark.parametrize("kind", sorted(ACCESS_SHAPES))
def test_ambiguous_deep_or_huge_json_in_an_access_token_is_token_invalid(
    scene: Scene, resource: ResourceApp, kind: str
) -> None:
    """Each token carries the service's own valid signature; its JSON alone must get it refused."""
    token = ACCESS_SHAPES[kind](scene)
    with scene.service.client() as http:
        assert_error(me(http, token), 401, "token_invalid")
    assert_error(whoami(resource, token), 401, "token_invalid")


REFRESH_SHAPES: dict[str, Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]]] = {
    "header-kid-twice": lambda h, c: (repeated(h, "kid", "another-key"), c),
    "claims-jti-twice": lambda h, c: (h, repeated(c, "jti", "another-token")),
    "claims-sid-twice": lambda h, c: (h, repeated_last(c, "sid", "another-session")),
    "claims-gen-twice": lambda h, c: (h, repeated_last(c, "gen", 7)),
    "claims-sub-twice": lambda h, c: (h, repeated(c, "sub", "mallory")),
    "claims-nested-2000": lambda h, c: (h, with_raw(c, "x", nested(2000))),
    "gen-1e400": lambda h, c: (h, with_raw(c, "gen", "1e400")),
    "gen-5000-digits": lambda h, c: (h, with_raw(c, "gen", "9" * 5000)),
}


@pytest.mark.parametrize("kind", sorted(REFRESH_SHAPES))
def test_ambiguous_deep_or_huge_json_in_a_refresh_token_is_token_invalid(scene: Scene, kind: str) -> None:
    """The session's own head token, re-signed with the real refresh key around odd JSON: refused, and
    the session is neither rotated nor revoked."""
    header, claims = parts(scene.pair["refresh_token"])
    token = scene.refresh_token(*REFRESH_SHAPES[kind](header, claims))
    before = scene.service.session(scene.pair["session_id"])
    with scene.service.client() as http:
        assert_error(refresh(http, token), 401, "token_invalid")
    after = scene.service.session(scene.pair["session_id"])
    assert (after.state, after.gen, after.head_jti) == (before.state, before.gen, before.head_jti)


JSON = {"content-type": "application/json"}


def test_deeply_nested_members_in_login_and_refresh_bodies_are_invalid_request(scene: Scene) -> None:
    """A valid body plus one member nested 100,000 deep (under the 256 KiB cap): 400, and the refresh
    token in that body is not used. (A body that is nothing but nesting:
    tests/e2e/test_hostile_requests.py.)"""
    deep = nested(100_000)
    login_body = with_raw(scene.service.credentials(), "x", deep)
    refresh_body = with_raw({"refresh_token": scene.pair["refresh_token"]}, "x", deep)
    objects = '{"a":' * 40_000 + "1" + "}" * 40_000
    with scene.service.client() as http:
        assert_error(http.post("/auth/login", content=login_body, headers=JSON), 400, "invalid_request")
        assert_error(http.post("/auth/refresh", content=refresh_body, headers=JSON), 400, "invalid_request")
        objects_body = with_raw({"refresh_token": scene.pair["refresh_token"]}, "x", objects)
        assert_error(http.post("/auth/refresh", content=objects_body, headers=JSON), 400, "invalid_request")
        logout_body = with_raw({"refresh_token": scene.pair["refresh_token"]}, "x", deep)
        assert_error(http.post("/auth/logout", content=logout_body, headers=JSON), 400, "invalid_request")
    assert scene.service.session(scene.pair["session_id"]).gen == 0
    assert scene.service.session(scene.pair["session_id"]).state == "active"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/refresh", '{"refresh_token": ' + "9" * 5000 + "}"),
        ("/auth/refresh", '{"refresh_token": 1e400}'),
        ("/auth/refresh", '{"refresh_token": NaN}'),
        ("/auth/login", '{"username": ' + "9" * 5000 + ', "password": "x"}'),
        ("/auth/login", '{"username": "alice", "password": -Infinity}'),
        ("/auth/revoke", '{"token": ' + "9" * 5000 + "}"),
    ],
    ids=["refresh-5000-digits", "refresh-1e400", "refresh-NaN", "login-5000-digits", "login-inf", "revoke"],
)
def test_huge_numbers_in_bodies_are_invalid_request(scene: Scene, path: str, body: str) -> None:
    """Numbers where strings belong, including ones Python's parser refuses (over 4300 digits): 400."""
    with scene.service.client() as http:
        assert_error(http.post(path, content=body, headers=JSON), 400, "invalid_request")


def test_a_repeated_member_in_a_login_body_cannot_split_who_is_checked_from_who_is_logged_in(
    scene: Scene,
) -> None:
    """Whichever ``username`` the service reads, the session it starts belongs to the user whose password
    it checked: alice's password with ``mallory`` read last fails; with ``alice`` read last, the session
    is alice's."""
    password = json.dumps(scene.service.password)
    name, subject = scene.service.name_field, scene.service.subject  # username and alice in keyturn serve
    with scene.service.client() as http:
        last_mallory = f'{{"{name}":"alice","password":{password},"{name}":"mallory"}}'
        assert_error(http.post("/auth/login", content=last_mallory, headers=JSON), 401, "invalid_credentials")
        last_alice = f'{{"{name}":"mallory","password":{password},"{name}":"alice"}}'
        answer = http.post("/auth/login", content=last_alice, headers=JSON)
        assert answer.status_code == 200, why(answer)
        assert jwt_parts(answer.json()["access_token"])[1]["sub"] == subject
        assert me(http, answer.json()["access_token"]).json()["subject"] == subject
        assert http.get("/auth/sessions", headers=bearer(answer.json()["refresh_token"])).status_code == 200
