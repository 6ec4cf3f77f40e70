"""Access tokens under each selectable algorithm: ES256, EdDSA, RS256 (DESIGN section 1)."""

from __future__ import annotations

import jwt
import pytest

from keyturn.errors import TokenInvalid
from keyturn.testing import TestService, make_service
from keyturn.typing import AccessAlgorithm

from ._jose import hs256, make_scene, sign_access

pytestmark = pytest.mark.anyio

ALGORITHMS: list[AccessAlgorithm] = ["ES256", "EdDSA", "RS256"]


@pytest.fixture(params=ALGORITHMS)
async def svc(request: pytest.FixtureRequest, anyio_backend: str) -> TestService:
    return await make_service(algorithm=request.param)


async def test_access_token_round_trips_with_the_chosen_algorithm(svc: TestService) -> None:
    """Each algorithm signs, verifies in the service, and verifies from the public JWKS alone."""
    alg = svc.settings.access_token_algorithm
    pair = await svc.service.start("alice", {"role": "admin"})

    header = jwt.get_unverified_header(pair.access_token)
    assert (header["alg"], header["typ"], header["kid"]) == (
        alg,
        "at+jwt",
        svc.service.keys.active_access.kid,
    )
    authenticated = await svc.service.authenticate(pair.access_token)
    assert (authenticated.claims.sub, authenticated.claims.claims["role"]) == ("alice", "admin")
    [jwk] = svc.service.keys.jwks()["keys"]
    public = jwt.PyJWK(dict(jwk)).key
    wall_clock_free = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}  # the clock is frozen
    claims = jwt.decode(
        pair.access_token, public, algorithms=[alg], audience=svc.settings.audience, options=wall_clock_free
    )
    assert claims["sid"] == pair.session_id


async def test_hmac_signature_made_with_the_public_key_is_refused(svc: TestService) -> None:
    """Algorithm confusion: the public key, used as an HMAC secret, must not forge a token."""
    scene = await make_scene(svc)
    token = hs256(scene.access_header(alg="HS256"), scene.access, scene.public_pem())

    with pytest.raises(TokenInvalid):
        scene.ts.service.codec.decode_access(token, scene.now)
    with pytest.raises(TokenInvalid):
        await scene.ts.service.authenticate(token)


async def test_header_naming_another_asymmetric_algorithm_is_refused(svc: TestService) -> None:
    """The algorithm is pinned by the key, not read from the header, even among asymmetric ones."""
    scene = await make_scene(svc)
    other = next(a for a in ALGORITHMS if a != scene.access_key.alg)
    token = sign_access(scene.access_key, scene.access_header(alg=other), scene.access)

    with pytest.raises(TokenInvalid):
        await scene.ts.service.authenticate(token)
