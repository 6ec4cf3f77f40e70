"""A third party's RFC 9068 validator (authlib's) accepts Keyturn's access tokens as they are issued.

RFC 9068 requires ``client_id`` among other claims; a resource server built on a standard library, not
on Keyturn's verifier, must be able to take the tokens as they are.
"""

from __future__ import annotations

import time

import pytest
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc.jwk import KeySet

from keyturn.clock import FrozenClock
from keyturn.testing import TestService, make_service
from keyturn.typing import AccessAlgorithm, JSONValue

pytestmark = pytest.mark.anyio


class _Validator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, ts: TestService) -> None:
        super().__init__(issuer=ts.settings.issuer, resource_server=ts.settings.audience)
        keys = [dict(jwk) for jwk in ts.service.keys.jwks()["keys"]]
        jwks: dict[str, list[dict[str, JSONValue]]] = {"keys": keys}
        self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    def get_jwks(self) -> KeySet:
        return self._keys


# Not EdDSA: joserfc, under authlib, refuses the "EdDSA" alg by default as "not recommended" (RFC 9864
# deprecates it for "Ed25519"); that is the library's policy, not a defect of the token.
@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
async def test_authlibs_rfc9068_validator_accepts_keyturns_access_tokens(
    anyio_backend: str, algorithm: AccessAlgorithm
) -> None:
    ts = await make_service(clock=FrozenClock(time.time()), algorithm=algorithm)
    validator = _Validator(ts)
    for sub, client_id in (("alice", None), ("bob", "app")):
        pair = await ts.service.start(sub, {"scope": "read write"}, client_id=client_id)
        claims = validator.authenticate_token(pair.access_token)
        validator.validate_token(claims, ["read"], None)
        assert claims["sid"] == pair.session_id
        assert claims["client_id"] == (client_id or "keyturn")


async def test_authlibs_validator_refuses_a_token_for_another_audience(anyio_backend: str) -> None:
    """So that the test above cannot pass with a validator that accepts anything."""
    ts = await make_service(clock=FrozenClock(time.time()))
    validator = _Validator(ts)
    validator.resource_server = "someone-else"
    claims = validator.authenticate_token((await ts.service.start("alice")).access_token)
    with pytest.raises(InvalidTokenError):
        validator.validate_token(claims, [], None)
