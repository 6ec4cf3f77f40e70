"""Header parameters that name a key or change how a token is read, at the service and a resource server.

``jku``, ``x5u``, ``jwk`` and ``x5c`` let a token say which key verifies it; a validator that listened could
be handed the attacker's own key. docs/contract.md pins the key by ``kid`` among the service's own keys and
refuses ``crit``, ``b64`` and ``zip``; it does not list the others, so they are ignored: a token signed by
the attacker is ``token_invalid`` whatever its header points to, a token the service itself signed is
still good with them, and the URLs are never fetched (an attacker's server on loopback counts requests).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyturn.keys import KeyRing

from ..e2e._http import assert_error, me, refresh, why
from ..e2e._resource import ResourceApp
from ._forge import Attacker, b64url, forge, fresh_claims, parts
from ._services import EMBEDDED, Bait, Service, whoami

# Parsing does not depend on the store: SQLite only (test_store_inputs.py covers every backend).
pytestmark = pytest.mark.parametrize("service", ["sqlite", EMBEDDED], indirect=True)


ATTACKER_KID = "attacker-key-1"


def self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyturn")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@dataclass
class Scene:
    """A live session, the service's keys, and an attacker with a key, a certificate and a web server."""

    service: Service
    keys: KeyRing
    pair: dict[str, Any]
    attacker: Attacker
    bait: Bait
    x5c: list[str]

    def pointers(self) -> dict[str, Any]:
        """Every header parameter that points a validator at the attacker's key."""
        return {
            "jku": self.bait.url("/jwks.json"),
            "x5u": self.bait.url("/cert.pem"),
            "jwk": self.attacker.jwk("ES256", ATTACKER_KID),
            "x5c": self.x5c,
        }

    def access_header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "ES256", "typ": "at+jwt", "kid": self.keys.active_access.kid, **changes}

    def refresh_header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "HS256", "typ": "rt+jwt", "kid": self.keys.active_refresh.kid, **changes}

    def access_claims(self, **changes: Any) -> dict[str, Any]:
        return fresh_claims(parts(self.pair["access_token"])[1], **changes)

    def refresh_claims(self, **changes: Any) -> dict[str, Any]:
        return fresh_claims(parts(self.pair["refresh_token"])[1], **changes)


@pytest.fixture
def scene(service: Service) -> Iterator[Scene]:
    attacker = Attacker()
    key = attacker.key("ES256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = self_signed(key)
    jwks = json.dumps({"keys": [attacker.jwk("ES256", ATTACKER_KID)]}).encode()
    documents = {
        "/jwks.json": ("application/json", jwks),
        "/cert.pem": ("application/x-pem-file", cert.public_bytes(serialization.Encoding.PEM)),
    }
    with Bait(documents) as bait:
        x5c = [b64url(cert.public_bytes(serialization.Encoding.DER))]
        yield Scene(service, service.keys(), service.login(), attacker, bait, x5c)
        assert bait.requests == [], "a validator fetched a URL named in a token header"


def test_the_bait_server_would_see_a_fetch(scene: Scene) -> None:
    """The attacker's server answers and records: a validator fetching from it would not go unnoticed."""
    answer = httpx.get(scene.bait.url("/jwks.json"), timeout=10)
    assert answer.json()["keys"][0]["kid"] == ATTACKER_KID
    assert scene.bait.requests == ["/jwks.json"]
    scene.bait.requests.clear()


# Tokens signed by the attacker, each header pointing at the attacker's key one way or another. For the
# resource server their iat is two minutes old, so one naming an unknown kid is token_invalid without a
# JWKS fetch (docs/resource-servers.md; a fresh one may be a retryable 503 instead).
Forge = Callable[[Scene, int], str]


def _attacker_access(scene: Scene, iat: int, **header: Any) -> str:
    claims = scene.access_claims(iat=iat)
    return forge(scene.access_header(**header), claims, scene.attacker.key("ES256"), "ES256")


ATTACKER_SIGNED: dict[str, Forge] = {
    "jku-attacker-kid": lambda s, iat: _attacker_access(s, iat, kid=ATTACKER_KID, jku=s.pointers()["jku"]),
    "jku-service-kid": lambda s, iat: _attacker_access(s, iat, jku=s.pointers()["jku"]),
    "jwk-attacker-kid": lambda s, iat: _attacker_access(s, iat, kid=ATTACKER_KID, jwk=s.pointers()["jwk"]),
    "jwk-service-kid": lambda s, iat: _attacker_access(s, iat, jwk=s.pointers()["jwk"]),
    "jwk-no-kid": lambda s, iat: forge(
        {"alg": "ES256", "typ": "at+jwt", "jwk": s.pointers()["jwk"]},
        s.access_claims(iat=iat),
        s.attacker.key("ES256"),
        "ES256",
    ),
    "x5u-attacker-kid": lambda s, iat: _attacker_access(s, iat, kid=ATTACKER_KID, x5u=s.pointers()["x5u"]),
    "x5u-service-kid": lambda s, iat: _attacker_access(s, iat, x5u=s.pointers()["x5u"]),
    "x5c-service-kid": lambda s, iat: _attacker_access(s, iat, x5c=s.x5c),
    "all-four-service-kid": lambda s, iat: _attacker_access(s, iat, **s.pointers()),
    "all-four-attacker-kid": lambda s, iat: _attacker_access(s, iat, **{**s.pointers(), "kid": ATTACKER_KID}),
}


@pytest.mark.parametrize("kind", sorted(ATTACKER_SIGNED))
def test_a_token_pointing_at_the_attackers_key_is_token_invalid(
    scene: Scene, resource: ResourceApp, kind: str
) -> None:
    """Wherever the header points, only the service's own key for the token's ``kid`` can verify it."""
    with scene.service.client() as http:
        assert_error(me(http, ATTACKER_SIGNED[kind](scene, int(time.time()))), 401, "token_invalid")
    old = int(time.time()) - 120
    assert_error(whoami(resource, ATTACKER_SIGNED[kind](scene, old)), 401, "token_invalid")


def test_a_refresh_token_pointing_at_the_attackers_key_is_token_invalid(scene: Scene) -> None:
    """The same for refresh tokens, with the attacker's HMAC key embedded as an ``oct`` JWK."""
    secret = scene.attacker.secret
    oct_jwk = {"kty": "oct", "k": b64url(secret), "kid": ATTACKER_KID}
    pointers = {**scene.pointers(), "jwk": oct_jwk}
    headers = {
        "service-kid": scene.refresh_header(**pointers),
        "attacker-kid": scene.refresh_header(**{**pointers, "kid": ATTACKER_KID}),
    }
    before = scene.service.session(scene.pair["session_id"])
    with scene.service.client() as http:
        for name, header in headers.items():
            answer = refresh(http, forge(header, scene.refresh_claims(), secret, "HS256"))
            assert answer.status_code == 401, f"{name}: {why(answer)}"
            assert_error(answer, 401, "token_invalid")
    after = scene.service.session(scene.pair["session_id"])
    assert (after.state, after.gen, after.head_jti) == (before.state, before.gen, before.head_jti)


def test_the_services_own_token_with_pointers_is_good_and_nothing_is_fetched(
    scene: Scene, resource: ResourceApp
) -> None:
    """Ignored, not refused: the service's own signature verifies whatever ``jku``/``x5u``/``jwk``/``x5c``
    say, and the scene's teardown checks that no URL was fetched on the way."""
    access = forge(
        scene.access_header(**scene.pointers()),
        scene.access_claims(),
        scene.keys.active_access.private_key,
        "ES256",
    )
    refresh_token = forge(
        scene.refresh_header(**scene.pointers()),
        parts(scene.pair["refresh_token"])[1],
        scene.keys.active_refresh.secret,
        "HS256",
    )
    with scene.service.client() as http:
        assert me(http, access).status_code == 200
        rotated = refresh(http, refresh_token)
        assert rotated.status_code == 200, why(rotated)
    assert whoami(resource, access).status_code == 200


REFUSED_PARAMETERS: dict[str, dict[str, Any]] = {
    "crit-exp": {"crit": ["exp"]},
    "crit-empty": {"crit": []},
    "crit-jku": {"crit": ["jku"], "jku": "http://127.0.0.1:9/jwks.json"},
    "b64-false": {"b64": False, "crit": ["b64"]},
    "b64-false-without-crit": {"b64": False},
    "zip": {"zip": "DEF"},
}


@pytest.mark.parametrize("kind", sorted(REFUSED_PARAMETERS))
def test_crit_b64_and_zip_are_refused_even_with_the_services_signature(
    scene: Scene, resource: ResourceApp, kind: str
) -> None:
    """docs/contract.md: every decoder refuses ``crit``, ``b64`` and ``zip``: ``token_invalid``, though
    the service's own key signed the token (at the service, and at the resource server)."""
    header = scene.access_header(**REFUSED_PARAMETERS[kind])
    access = forge(header, scene.access_claims(), scene.keys.active_access.private_key, "ES256")
    refresh_token = forge(
        scene.refresh_header(**REFUSED_PARAMETERS[kind]),
        scene.refresh_claims(),
        scene.keys.active_refresh.secret,
        "HS256",
    )
    with scene.service.client() as http:
        assert_error(me(http, access), 401, "token_invalid")
        assert_error(refresh(http, refresh_token), 401, "token_invalid")
    assert_error(whoami(resource, access), 401, "token_invalid")
