"""Hostile refresh tokens: token_invalid from the codec and the service, and the session untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keyturn.errors import RefreshTokenReused, SessionRevoked, TokenInvalid

from ._jose import DROP, GARBAGE, Scene, craft, hs256, raw_claim, sign_access

pytestmark = pytest.mark.anyio

Forge = Callable[[Scene], str]


HOSTILE_REFRESH: dict[str, Forge] = {
    # algorithm and key confusion
    "alg-none": lambda s: craft(s.refresh_header(alg="none"), s.refresh),
    "es256-signed-with-refresh-kid": lambda s: sign_access(
        s.access_key, s.refresh_header(alg=s.access_key.alg), s.refresh
    ),
    "es256-signed-with-access-kid": lambda s: sign_access(
        s.access_key, s.refresh_header(alg=s.access_key.alg, kid=s.access_key.kid), s.refresh
    ),
    "hs256-with-public-pem": lambda s: hs256(s.refresh_header(), s.refresh, s.public_pem()),
    "hs256-with-public-pem-access-kid": lambda s: hs256(
        s.refresh_header(kid=s.access_key.kid), s.refresh, s.public_pem()
    ),
    "hs384-header": lambda s: s.refresh_token(s.refresh_header(alg="HS384")),
    "other-service-secret-same-kid": lambda s: hs256(
        s.refresh_header(), s.refresh, s.other.service.keys.active_refresh.secret
    ),
    "signature-stripped": lambda s: s.pair.refresh_token.rsplit(".", 1)[0] + ".",
    "kid-unknown": lambda s: s.refresh_token(s.refresh_header(kid="no-such-key")),
    "kid-missing": lambda s: s.refresh_token(s.refresh_header(kid=DROP)),
    "kid-an-int": lambda s: s.refresh_token(s.refresh_header(kid=3)),
    # wrong type
    "access-token-as-refresh": lambda s: s.pair.access_token,
    "typ-missing": lambda s: s.refresh_token(s.refresh_header(typ=DROP)),
    "typ-JWT": lambda s: s.refresh_token(s.refresh_header(typ="JWT")),
    "typ-at+jwt": lambda s: s.refresh_token(s.refresh_header(typ="at+jwt")),
    # header parameters Keyturn does not accept
    "crit": lambda s: s.refresh_token(s.refresh_header(crit=["gen"])),
    "b64-false": lambda s: s.refresh_token(s.refresh_header(b64=False, crit=["b64"])),
    # claims
    "iss-wrong": lambda s: s.refresh_token(iss="https://evil.example"),
    "aud-present": lambda s: s.refresh_token(aud=s.ts.settings.audience),
    "gen-a-string": lambda s: s.refresh_token(gen="1"),
    "gen-true": lambda s: s.refresh_token(gen=True),
    "gen-false": lambda s: s.refresh_token(gen=False),
    "gen-negative": lambda s: s.refresh_token(gen=-1),
    "gen-a-float": lambda s: s.refresh_token(gen=0.5),
    "gen-a-list": lambda s: s.refresh_token(gen=[0]),
    "sub-an-int": lambda s: s.refresh_token(sub=1),
    "sid-empty": lambda s: s.refresh_token(sid=""),
    "jti-an-int": lambda s: s.refresh_token(jti=9),
    "iat-in-the-future": lambda s: s.refresh_token(iat=int(s.now) + s.ts.settings.leeway + 1),
    "nbf-in-the-future": lambda s: s.refresh_token(nbf=int(s.now) + s.ts.settings.leeway + 1),
    "exp-not-a-number": lambda s: s.refresh_token(exp="later"),
    "exp-1e400": lambda s: hs256(
        s.refresh_header(), raw_claim(s.refresh, "exp", "1e400"), s.refresh_key.secret
    ),
    "iat-nan": lambda s: s.refresh_token(iat=float("nan")),
    "exp-nan": lambda s: s.refresh_token(exp=float("nan")),
    "nbf-nan": lambda s: s.refresh_token(nbf=float("nan")),
    "payload-a-list": lambda s: hs256(s.refresh_header(), "[]", s.refresh_key.secret),
    "oversized": lambda s: s.refresh_token(pad="x" * 100_000),
    **{f"garbage-{name}": (lambda s, g=g: g) for name, g in GARBAGE.items()},
}

REFRESH_REQUIRED = ["iss", "sub", "sid", "jti", "gen", "iat", "exp"]


async def assert_refresh_refused(s: Scene, token: str) -> None:
    """token_invalid from the codec, the service and nothing changed in the session."""
    before = await s.ts.store.get_session(s.pair.session_id)
    with pytest.raises(TokenInvalid) as codec_error:
        s.ts.service.codec.decode_refresh(token, s.now)
    assert codec_error.value.code == "token_invalid"
    with pytest.raises(TokenInvalid) as service_error:
        await s.ts.service.refresh(token)
    assert service_error.value.code == "token_invalid"
    await s.ts.service.revoke_token(token)  # RFC 7009: an invalid token is not an error
    assert await s.ts.store.get_session(s.pair.session_id) == before


async def test_forged_refresh_token_is_well_formed_when_not_tampered_with(scene: Scene) -> None:
    """The forging helper signs correctly, so each hostile case fails for its own reason alone."""
    forged = scene.refresh_token()
    codec = scene.ts.service.codec

    assert codec.decode_refresh(forged, scene.now) == codec.decode_refresh(
        scene.pair.refresh_token, scene.now
    )
    rotated = await scene.ts.service.refresh(forged)
    assert codec.decode_refresh(rotated.refresh_token, scene.now).gen == 1


@pytest.mark.parametrize("forge", HOSTILE_REFRESH.values(), ids=HOSTILE_REFRESH.keys())
async def test_hostile_refresh_token_is_token_invalid_and_changes_nothing(scene: Scene, forge: Forge) -> None:
    """A forged or confused refresh token must neither work nor revoke the session it names."""
    await assert_refresh_refused(scene, forge(scene))


@pytest.mark.parametrize("claim", REFRESH_REQUIRED)
async def test_refresh_token_missing_a_required_claim_is_token_invalid(scene: Scene, claim: str) -> None:
    """Every refresh claim is needed to find and judge the session."""
    await assert_refresh_refused(scene, scene.refresh_token(**{claim: DROP}))


async def test_genuine_refresh_token_for_an_unknown_session_is_session_revoked(scene: Scene) -> None:
    """A validly signed token whose session is gone (pruned, other store) ends the session cleanly."""
    token = scene.refresh_token(sid="no-such-session")

    with pytest.raises(SessionRevoked):
        await scene.ts.service.refresh(token)


async def test_validly_signed_token_with_an_unknown_jti_is_treated_as_reuse(scene: Scene) -> None:
    """Whoever mints refresh tokens outside the store's chain is not trusted with the session."""
    token = scene.refresh_token(jti="minted-outside-the-store")

    with pytest.raises(RefreshTokenReused):
        await scene.ts.service.refresh(token)

    session = await scene.ts.store.get_session(scene.pair.session_id)
    assert session is not None
    assert (session.state, session.revoked_reason) == ("revoked", "reuse")


async def test_refresh_token_of_another_subject_is_token_invalid(scene: Scene) -> None:
    """A token naming a session that belongs to someone else must not refresh it."""
    token = scene.refresh_token(sub="mallory")

    with pytest.raises(TokenInvalid):
        await scene.ts.service.refresh(token)
