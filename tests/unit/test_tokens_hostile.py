"""Hostile access tokens: each gets its documented error from the codec and the service, nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from keyturn.errors import KeyturnError, TokenExpired, TokenInvalid
from keyturn.tokens import MAX_TOKEN_LENGTH

from ._jose import DROP, GARBAGE, Scene, craft, hs256, raw_claim, segment, sign_access

pytestmark = pytest.mark.anyio

Forge = Callable[[Scene], str]


def _tampered_payload(s: Scene) -> str:
    header, _, signature = s.pair.access_token.split(".")
    return f"{header}.{segment({**s.access, 'sub': 'mallory'})}.{signature}"


def _embedded_attacker_jwk(s: Scene) -> str:
    attacker = s.other.service.keys.active_access
    header = {**s.access_header(), "jwk": dict(attacker.jwk)}
    return sign_access(attacker, header, s.access)


HOSTILE_ACCESS: dict[str, Forge] = {
    # algorithm confusion
    "alg-none": lambda s: craft(s.access_header(alg="none"), s.access),
    "alg-None": lambda s: craft(s.access_header(alg="None"), s.access),
    "alg-none-signature-kept": lambda s: (
        craft(s.access_header(alg="none"), s.access) + s.pair.access_token.rsplit(".", 1)[1]
    ),
    "hs256-with-public-pem": lambda s: hs256(s.access_header(alg="HS256"), s.access, s.public_pem()),
    "hs256-with-public-jwk-json": lambda s: hs256(
        s.access_header(alg="HS256"), s.access, json.dumps(dict(s.access_key.jwk)).encode()
    ),
    "hs256-with-public-jwk-json-sorted": lambda s: hs256(
        s.access_header(alg="HS256"), s.access, json.dumps(dict(s.access_key.jwk), sort_keys=True).encode()
    ),
    "hs256-with-refresh-secret-and-kid": lambda s: hs256(
        s.access_header(alg="HS256", kid=s.refresh_key.kid), s.access, s.refresh_key.secret
    ),
    "alg-header-rs256": lambda s: s.access_token(s.access_header(alg="RS256")),
    "alg-header-missing": lambda s: s.access_token(s.access_header(alg=DROP)),
    # wrong type
    "typ-missing": lambda s: s.access_token(s.access_header(typ=DROP)),
    "typ-JWT": lambda s: s.access_token(s.access_header(typ="JWT")),
    "typ-rt+jwt": lambda s: s.access_token(s.access_header(typ="rt+jwt")),
    "typ-not-a-string": lambda s: s.access_token(s.access_header(typ=["at+jwt"])),
    "refresh-token-as-access": lambda s: s.pair.refresh_token,
    # wrong issuer or audience
    "iss-wrong": lambda s: s.access_token(iss="https://evil.example"),
    "iss-list": lambda s: s.access_token(iss=[s.access["iss"]]),
    "aud-wrong": lambda s: s.access_token(aud="another-api"),
    "aud-list-without-us": lambda s: s.access_token(aud=["another-api"]),
    # times
    "iat-in-the-future": lambda s: s.access_token(iat=int(s.now) + s.ts.settings.leeway + 1),
    "nbf-in-the-future": lambda s: s.access_token(nbf=int(s.now) + s.ts.settings.leeway + 1),
    "nbf-not-a-number": lambda s: s.access_token(nbf="now"),
    "exp-not-a-number": lambda s: s.access_token(exp="tomorrow"),
    "exp-a-bool": lambda s: s.access_token(exp=True),
    "iat-not-a-number": lambda s: s.access_token(iat="today"),
    "exp-1e400": lambda s: sign_access(s.access_key, s.access_header(), raw_claim(s.access, "exp", "1e400")),
    "iat-1e400": lambda s: sign_access(s.access_key, s.access_header(), raw_claim(s.access, "iat", "1e400")),
    "iat-nan": lambda s: s.access_token(iat=float("nan")),
    "exp-nan": lambda s: s.access_token(exp=float("nan")),
    "nbf-nan": lambda s: s.access_token(nbf=float("nan")),
    "nbf-1e400": lambda s: sign_access(s.access_key, s.access_header(), raw_claim(s.access, "nbf", "1e400")),
    # signature and key
    "signature-stripped": lambda s: s.pair.access_token.rsplit(".", 1)[0] + ".",
    "signature-truncated": lambda s: s.pair.access_token[:-8],
    "payload-tampered": _tampered_payload,
    "other-key-same-kid": lambda s: sign_access(
        s.other.service.keys.active_access, s.access_header(), s.access
    ),
    "attacker-jwk-embedded": _embedded_attacker_jwk,
    "kid-unknown": lambda s: s.access_token(s.access_header(kid="no-such-key")),
    "kid-missing": lambda s: s.access_token(s.access_header(kid=DROP)),
    "kid-an-int": lambda s: s.access_token(s.access_header(kid=1)),
    "kid-null": lambda s: s.access_token(s.access_header(kid=None)),
    "kid-a-list": lambda s: s.access_token(s.access_header(kid=[s.access_key.kid])),
    # header parameters that change how a token is read
    "crit": lambda s: s.access_token(s.access_header(crit=["exp"])),
    "b64-false": lambda s: s.access_token(s.access_header(b64=False, crit=["b64"])),
    "b64-true": lambda s: s.access_token(s.access_header(b64=True)),
    "zip": lambda s: s.access_token(s.access_header(zip="DEF")),
    # claims of the wrong type
    "sub-an-int": lambda s: s.access_token(sub=42),
    "sub-empty": lambda s: s.access_token(sub=""),
    "sid-an-int": lambda s: s.access_token(sid=7),
    "sid-empty": lambda s: s.access_token(sid=""),
    "jti-a-list": lambda s: s.access_token(jti=["a"]),
    "client_id-an-int": lambda s: s.access_token(client_id=5),
    "payload-a-list": lambda s: sign_access(s.access_key, s.access_header(), "[1, 2, 3]"),
    **{f"garbage-{name}": (lambda s, g=g: g) for name, g in GARBAGE.items()},
}

ACCESS_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "sid"]


async def assert_access_refused(s: Scene, token: str, error: type[KeyturnError] = TokenInvalid) -> None:
    """``error``'s wire code from the codec and from the service (a subclass such as UnknownKey counts)."""
    with pytest.raises(error) as codec_error:
        s.ts.service.codec.decode_access(token, s.now)
    assert codec_error.value.code == error.code
    with pytest.raises(error) as service_error:
        await s.ts.service.authenticate(token)
    assert service_error.value.code == error.code


async def test_forged_tokens_are_well_formed_when_not_tampered_with(scene: Scene) -> None:
    """The forging helpers sign correctly, so each hostile case fails for its own reason alone."""
    token = scene.access_token()

    authenticated = await scene.ts.service.authenticate(token)

    assert authenticated.claims.sid == scene.pair.session_id
    assert scene.ts.service.codec.decode_access(token, scene.now).sub == "alice"


@pytest.mark.parametrize("forge", HOSTILE_ACCESS.values(), ids=HOSTILE_ACCESS.keys())
async def test_hostile_access_token_is_token_invalid(scene: Scene, forge: Forge) -> None:
    """Every forged, confused or malformed access token is refused as token_invalid, never a crash."""
    await assert_access_refused(scene, forge(scene))


@pytest.mark.parametrize("claim", ACCESS_REQUIRED)
async def test_access_token_missing_a_required_claim_is_token_invalid(scene: Scene, claim: str) -> None:
    """A token without one of the RFC 9068 claims Keyturn relies on is not an access token."""
    await assert_access_refused(scene, scene.access_token(**{claim: DROP}))


@pytest.mark.parametrize("token", [None, b"a.b.c", 42], ids=["none", "bytes", "int"])
async def test_access_token_that_is_not_a_string_is_token_invalid(scene: Scene, token: object) -> None:
    """A framework handing over the wrong type must still get a wire error, not a TypeError."""
    await assert_access_refused(scene, token)  # type: ignore[arg-type]


async def test_expired_access_token_is_token_expired(scene: Scene) -> None:
    """Expiry has its own code, so clients refresh instead of ending the session."""
    scene.ts.clock.set(scene.pair.access_expires_at + scene.ts.settings.leeway + 1)

    await assert_access_refused(scene, scene.pair.access_token, TokenExpired)


async def test_access_token_just_inside_the_leeway_is_accepted(scene: Scene) -> None:
    """Clock skew up to the leeway must not reject a good token."""
    scene.ts.clock.set(scene.pair.access_expires_at + scene.ts.settings.leeway)

    authenticated = await scene.ts.service.authenticate(scene.pair.access_token)

    assert authenticated.claims.jti == scene.access["jti"]


async def test_iat_and_nbf_within_the_leeway_are_accepted(scene: Scene) -> None:
    """A token from an issuer whose clock runs slightly ahead is still good."""
    ahead = int(scene.now) + scene.ts.settings.leeway
    token = scene.access_token(iat=ahead, nbf=ahead)

    assert scene.ts.service.codec.decode_access(token, scene.now).iat == ahead


async def test_100_kb_token_is_refused_before_parsing(scene: Scene) -> None:
    """Size is capped before any base64 or JSON work, so a huge token costs next to nothing."""
    huge = scene.access_token(pad="x" * 100_000)

    with pytest.raises(TokenInvalid, match="too large"):
        scene.ts.service.codec.decode_access(huge, scene.now)
    with pytest.raises(TokenInvalid, match="too large"):
        await scene.ts.service.authenticate(huge)
    with pytest.raises(TokenInvalid, match="too large"):
        await scene.ts.service.authenticate("x" * 100_000)


async def test_size_cap_is_exactly_8_kib(scene: Scene) -> None:
    """The cap is 8 KiB (DESIGN section 1): a token of that size passes, one character more does not."""
    pad = 5000
    while len(scene.access_token(pad="x" * (pad + 1))) <= MAX_TOKEN_LENGTH:
        pad += 1
    largest = scene.access_token(pad="x" * pad)
    assert MAX_TOKEN_LENGTH - 4 <= len(largest) <= MAX_TOKEN_LENGTH == 8192

    too_large = scene.access_token(pad="x" * (pad + 1))
    assert len(too_large) > MAX_TOKEN_LENGTH

    assert (await scene.ts.service.authenticate(largest)).claims.claims["pad"] == "x" * pad
    await assert_access_refused(scene, too_large)
