"""Algorithm confusion against RS256 and EdDSA services and their resource servers (ES256: tests/e2e).

DESIGN section 1 and docs/contract.md: every decoder pins the algorithm per token type (the header's ``alg``
must equal the key's), so ``none``, an HMAC made with the public key, another asymmetric algorithm or an odd
spelling of the right one are all ``token_invalid``, at the service and at a resource server alike. Refresh
tokens are HS256 only: the service's own refresh secret under another HMAC algorithm is refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from keyturn.keys import KeyRing

from ..e2e._http import assert_error, me, refresh
from ..e2e._resource import ResourceApp
from ._forge import AsymmetricKey, Attacker, forge, fresh_claims, parts, public_key_encodings
from ._services import Service, running_resource, running_service, whoami


@dataclass
class Scene:
    service: Service
    resource: ResourceApp
    keys: KeyRing
    pair: dict[str, Any]
    attacker: Attacker

    @property
    def alg(self) -> str:
        return self.keys.active_access.alg

    @property
    def private_key(self) -> AsymmetricKey:
        key = self.keys.active_access.private_key
        assert not isinstance(key, bytes)
        return key

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": self.alg, "typ": "at+jwt", "kid": self.keys.active_access.kid, **changes}
        return {name: value for name, value in header.items() if value is not ...}

    def claims(self) -> dict[str, Any]:
        return fresh_claims(parts(self.pair["access_token"])[1])


@pytest.fixture(scope="module", params=["RS256", "EdDSA"])
def scene(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    algorithm = request.param
    tmp = tmp_path_factory.mktemp(f"alg-{algorithm}")
    env = {"KEYTURN_ACCESS_TOKEN_ALGORITHM": algorithm}
    with running_service("sqlite", tmp, env) as service, running_resource(service, tmp / "resource") as app:
        keys = service.keys()
        assert keys.active_access.alg == algorithm
        yield Scene(service, app, keys, service.login(), Attacker())


Forge = Callable[[Scene], str]


def _other_algorithms(alg: str) -> list[str]:
    return [other for other in ("ES256", "RS256", "EdDSA") if other != alg]


def _hmac_with_public_key(encoding: str) -> Forge:
    """HS256 with the published key as the secret (``native``: PKCS#1 for RSA, raw bytes for Ed25519)."""

    def make(s: Scene) -> str:
        encodings = public_key_encodings(s.private_key, s.keys.active_access.jwk)
        native = encodings.get("pkcs1-pem", encodings.get("raw", b""))
        secret = native if encoding == "native" else encodings[encoding]
        return forge(s.header(alg="HS256"), s.claims(), secret, "HS256")

    return make


def _signed_as_other(index: int) -> Forge:
    """Signed by the attacker's key of another algorithm, the header naming that algorithm and our kid."""

    def make(s: Scene) -> str:
        other = _other_algorithms(s.alg)[index]
        return forge(s.header(alg=other), s.claims(), s.attacker.key(other), other)

    return make


def _spelled(alg: object) -> Forge:
    """Signed with the service's own key, the header's ``alg`` spelled otherwise."""
    return lambda s: forge(s.header(alg=alg), s.claims(), s.private_key, s.alg)


ACCESS_FORGERIES: dict[str, Forge] = {
    "none": lambda s: forge(s.header(alg="none"), s.claims(), None, "none"),
    "none-with-real-signature": lambda s: (
        forge(s.header(alg="none"), s.claims(), None, "none") + s.pair["access_token"].rsplit(".", 1)[1]
    ),
    "None": lambda s: forge(s.header(alg="None"), s.claims(), None, "none"),
    "NONE": lambda s: forge(s.header(alg="NONE"), s.claims(), None, "none"),
    **{
        f"hs256-with-public-{encoding}": _hmac_with_public_key(encoding)
        for encoding in ("pem", "der", "openssh", "jwk-json", "jwk-json-sorted", "native")
    },
    "other-asymmetric-alg-1": _signed_as_other(0),
    "other-asymmetric-alg-2": _signed_as_other(1),
    "right-alg-wrong-key-type": lambda s: forge(s.header(), s.claims(), s.attacker.key("ES256"), "ES256"),
    "alg-lower-case": lambda s: _spelled(s.alg.lower())(s),
    "alg-trailing-space": lambda s: _spelled(s.alg + " ")(s),
    "alg-a-list": lambda s: _spelled([s.alg])(s),
    "alg-null": _spelled(None),
    "alg-a-number": _spelled(256),
    "alg-missing": _spelled(...),
}


def test_the_services_own_token_is_admitted(scene: Scene) -> None:
    """The forging is sound: with nothing changed, a token made here passes both validators."""
    token = forge(scene.header(), scene.claims(), scene.private_key, scene.alg)
    with scene.service.client() as http:
        assert me(http, token).status_code == 200
    assert whoami(scene.resource, token).status_code == 200


@pytest.mark.parametrize("kind", sorted(ACCESS_FORGERIES))
def test_algorithm_confusion_is_token_invalid(scene: Scene, kind: str) -> None:
    """Each forgery names the service's real key id, so only the algorithm pinning can refuse it."""
    token = ACCESS_FORGERIES[kind](scene)
    with scene.service.client() as http:
        assert_error(me(http, token), 401, "token_invalid")
    assert_error(whoami(scene.resource, token), 401, "token_invalid")


REFRESH_FORGERIES: dict[str, Forge] = {
    "hs512-with-the-real-secret": lambda s: forge(
        {**parts(s.pair["refresh_token"])[0], "alg": "HS512"},
        parts(s.pair["refresh_token"])[1],
        s.keys.active_refresh.secret,
        "HS512",
    ),
    "none": lambda s: forge(
        {**parts(s.pair["refresh_token"])[0], "alg": "none"}, parts(s.pair["refresh_token"])[1], None, "none"
    ),
    "signed-with-the-access-key": lambda s: forge(
        {**parts(s.pair["refresh_token"])[0], "alg": s.alg},
        parts(s.pair["refresh_token"])[1],
        s.private_key,
        s.alg,
    ),
    "hs256-with-public-pem": lambda s: forge(
        parts(s.pair["refresh_token"])[0],
        parts(s.pair["refresh_token"])[1],
        public_key_encodings(s.private_key, s.keys.active_access.jwk)["pem"],
        "HS256",
    ),
}


@pytest.mark.parametrize("kind", sorted(REFRESH_FORGERIES))
def test_refresh_tokens_are_hs256_with_the_refresh_secret_only(scene: Scene, kind: str) -> None:
    """A refresh token under any other algorithm or key is ``token_invalid`` and rotates nothing."""
    before = scene.service.session(scene.pair["session_id"])
    with scene.service.client() as http:
        assert_error(refresh(http, REFRESH_FORGERIES[kind](scene)), 401, "token_invalid")
    after = scene.service.session(scene.pair["session_id"])
    assert (after.state, after.gen, after.head_jti) == (before.state, before.gen, before.head_jti)
