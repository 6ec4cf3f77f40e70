"""Hostile tokens at a resource server, and what a call may require beyond a valid token (scopes, claims).

Whatever a client sends, ``AccessTokenVerifier`` answers with the error model (``token_invalid``, 401) and
nothing else: a ``KeyError`` or ``ValueError`` escaping would be a 500, and a token accepted by mistake
would be a forgery. ``require_grants`` turns a valid token without the right scope into
``insufficient_scope`` (403), never a 401.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from jwt.algorithms import get_default_algorithms

from keyturn._sign import low_s
from keyturn.clock import FrozenClock
from keyturn.errors import InsufficientScope, TokenInvalid
from keyturn.keys import AccessKey
from keyturn.middleware import AccessTokenVerifier, require_grants, scopes_of
from keyturn.testing import TestService
from keyturn.tokens import MAX_TOKEN_LENGTH, AccessClaims

from ._jose import DROP, GARBAGE, Scene, b64url, craft, hs256, segment, sign_access

pytestmark = pytest.mark.anyio

Forge = Callable[[Scene], str]


def signed(key: AccessKey, header: str, payload: str) -> str:
    """A token correctly signed with ``key`` over header and payload given as raw JSON text."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = get_default_algorithms()[key.alg].sign(signing_input.encode("ascii"), key.private_key)
    if key.alg == "ES256":
        signature = low_s(signature)  # the only ES256 form Keyturn accepts
    return f"{signing_input}.{b64url(signature)}"


def _duplicate_typ_in_header(s: Scene) -> str:
    # A reader keeping the last member would see an access token; one keeping the first, a plain JWT.
    key = s.access_key
    header = f'{{"alg":"{key.alg}","typ":"JWT","kid":"{key.kid}","typ":"at+jwt"}}'
    return signed(key, header, json.dumps(s.access))


def _duplicate_kid_in_header(s: Scene) -> str:
    key = s.access_key
    header = f'{{"alg":"{key.alg}","typ":"at+jwt","kid":"{key.kid}","kid":"{key.kid}"}}'
    return signed(key, header, json.dumps(s.access))


def _duplicate_sub_in_payload(s: Scene) -> str:
    # Signed by the real key: only the repeated name is wrong, and two readers would disagree on sub.
    payload = json.dumps(s.access)[:-1] + ',"sub":"mallory"}'
    return signed(s.access_key, json.dumps(s.access_header()), payload)


def _over_the_size_limit(s: Scene) -> str:
    token = s.access_token(padding="x" * MAX_TOKEN_LENGTH)
    assert len(token) > MAX_TOKEN_LENGTH
    return token


def constant(token: str) -> Forge:
    """A forger that ignores the scene: for strings that are not JWTs at all."""
    return lambda _: token


def _tampered_payload(s: Scene) -> str:
    header, _, signature = s.pair.access_token.split(".")
    return f"{header}.{segment({**s.access, 'sub': 'mallory'})}.{signature}"


HOSTILE: dict[str, Forge] = {
    # the wrong kind of token
    "refresh-token-as-access": lambda s: s.pair.refresh_token,
    "typ-JWT": lambda s: s.access_token(s.access_header(typ="JWT")),
    "typ-missing": lambda s: s.access_token(s.access_header(typ=DROP)),
    "typ-rt+jwt": lambda s: s.access_token(s.access_header(typ="rt+jwt")),
    # someone else's token
    "iss-wrong": lambda s: s.access_token(iss="https://evil.example"),
    "aud-wrong": lambda s: s.access_token(aud="another-api"),
    "aud-list-without-us": lambda s: s.access_token(aud=["another-api"]),
    "signed-by-another-service": lambda s: s.other.tokens.access_token(s.access),
    # algorithm confusion
    "alg-none": lambda s: craft(s.access_header(alg="none"), s.access),
    "alg-none-signature-kept": lambda s: (
        craft(s.access_header(alg="none"), s.access) + s.pair.access_token.rsplit(".", 1)[1]
    ),
    "hs256-with-public-pem": lambda s: hs256(s.access_header(alg="HS256"), s.access, s.public_pem()),
    "hs256-with-public-jwk-json": lambda s: hs256(
        s.access_header(alg="HS256"), s.access, json.dumps(dict(s.access_key.jwk), sort_keys=True).encode()
    ),
    "alg-header-rs256": lambda s: s.access_token(s.access_header(alg="RS256")),
    # signature and key
    "payload-tampered": _tampered_payload,
    "signature-stripped": lambda s: s.pair.access_token.rsplit(".", 1)[0] + ".",
    "other-key-same-kid": lambda s: sign_access(
        s.other.service.keys.active_access, s.access_header(), s.access
    ),
    "kid-missing": lambda s: s.access_token(s.access_header(kid=DROP)),
    "kid-an-int": lambda s: s.access_token(s.access_header(kid=1)),
    "crit": lambda s: s.access_token(s.access_header(crit=["exp"])),
    # ambiguous JSON and size
    "duplicate-typ-in-header": _duplicate_typ_in_header,
    "duplicate-kid-in-header": _duplicate_kid_in_header,
    "duplicate-sub-in-payload": _duplicate_sub_in_payload,
    "over-8-KiB": _over_the_size_limit,
    # claims of the wrong shape
    "exp-not-a-number": lambda s: s.access_token(exp="tomorrow"),
    "exp-nan": lambda s: s.access_token(exp=float("nan")),
    "sub-an-int": lambda s: s.access_token(sub=42),
    "sid-missing": lambda s: s.access_token(sid=DROP),
    "client_id-an-int": lambda s: s.access_token(client_id=5),
    "payload-a-list": lambda s: sign_access(s.access_key, s.access_header(), "[1, 2, 3]"),
    **{f"garbage-{name}": constant(garbage) for name, garbage in GARBAGE.items()},
}


async def judge(verifier: AccessTokenVerifier, token: str, mode: str) -> AccessClaims:
    """``verifier``'s verdict on ``token`` by ``verify`` (sync) or ``averify``."""
    if mode == "verify":
        return verifier.verify(token)
    return await verifier.averify(token)


@pytest.fixture
def verifier(scene: Scene, clock: FrozenClock) -> Iterator[AccessTokenVerifier]:
    """A started verifier on the scene's store and frozen clock; it verifies the scene's real token.

    The clock is then moved past the refetch interval, so that a token naming an unknown key is looked
    for (and refused as token_invalid) rather than answered with a retryable 503 inside the interval.
    """
    with AccessTokenVerifier.for_store(
        scene.ts.store, clock=clock, timer=clock, key_refetch_interval=0.1, revocation_poll_interval=0.05
    ) as started:
        assert started.verify(scene.pair.access_token).sid == scene.pair.session_id
        clock.advance(0.5)
        yield started


async def test_the_forging_helpers_make_tokens_the_verifier_accepts(
    scene: Scene, verifier: AccessTokenVerifier
) -> None:
    """Each hostile case below changes one thing; untouched, the same helpers make a valid token."""
    assert verifier.verify(scene.access_token()).sid == scene.pair.session_id
    key = scene.access_key
    untouched = signed(key, json.dumps(scene.access_header()), json.dumps(scene.access))
    assert verifier.verify(untouched).sub == "alice"


@pytest.mark.parametrize("mode", ["verify", "averify"])
@pytest.mark.parametrize("forge", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_token_is_token_invalid_and_nothing_else(
    scene: Scene, verifier: AccessTokenVerifier, forge: Forge, mode: str
) -> None:
    """Forged, confused and malformed tokens all reach the error model as token_invalid (401)."""
    token = forge(scene)

    with pytest.raises(TokenInvalid) as caught:
        await judge(verifier, token, mode)

    assert (caught.value.code, caught.value.status) == ("token_invalid", 401)
    assert verifier.status()["cached_tokens"] == 1  # only the scene's real token


@pytest.mark.parametrize("token", [None, b"a.b.c", 42], ids=["none", "bytes", "int"])
async def test_a_token_that_is_not_a_string_is_token_invalid(
    verifier: AccessTokenVerifier, token: object
) -> None:
    """A framework handing over the wrong type must still get a wire error, as from the service itself."""
    with pytest.raises(TokenInvalid):
        verifier.verify(token)  # type: ignore[arg-type]


# -- scopes and required claims --------------------------------------------------------------------


async def claims_with(ts: TestService, **own: object) -> AccessClaims:
    """The verified claims of a real token whose session carries ``own`` claims."""
    pair = await ts.service.start("alice", own)  # type: ignore[arg-type]
    with AccessTokenVerifier.for_store(ts.store, clock=ts.clock) as verifier:
        return verifier.verify(pair.access_token)


async def test_scopes_are_read_from_a_space_separated_string(ts: TestService) -> None:
    """RFC 9068 ``scope`` is one string of space-separated scopes."""
    claims = await claims_with(ts, scope="read  write\tadmin:users")

    assert scopes_of(claims) == frozenset({"read", "write", "admin:users"})
    assert require_grants(claims, ["read", "write"]) is claims


async def test_scopes_are_read_from_a_list_of_strings(ts: TestService) -> None:
    """Some issuers send a list; anything in it that is not a string grants nothing."""
    claims = await claims_with(ts, scope=["read", "write", 7, None])

    assert scopes_of(claims) == frozenset({"read", "write"})
    assert require_grants(claims, {"write"}) is claims


@pytest.mark.parametrize("scope", [DROP, 42, {"read": True}, ""], ids=["missing", "int", "object", "empty"])
async def test_a_token_without_readable_scopes_grants_none(ts: TestService, scope: object) -> None:
    """No scope (or one of a shape nobody agreed on) grants nothing, and asking for nothing still passes."""
    claims = await claims_with(ts) if scope is DROP else await claims_with(ts, scope=scope)

    assert scopes_of(claims) == frozenset()
    assert require_grants(claims) is claims
    with pytest.raises(InsufficientScope):
        require_grants(claims, ["read"])


async def test_a_missing_scope_is_insufficient_scope_not_a_token_error(ts: TestService) -> None:
    """The token is valid, it just does not allow this call: 403 insufficient_scope (RFC 6750), so the
    client does not throw away a good token or log the user out."""
    claims = await claims_with(ts, scope="read")

    with pytest.raises(InsufficientScope) as caught:
        require_grants(claims, ["read", "write", "admin"])

    error = caught.value
    assert (error.code, error.status, error.retryable) == ("insufficient_scope", 403, False)
    assert "admin write" in error.detail  # the missing scopes, sorted, and only those
    assert "read" not in error.detail


async def test_required_claim_values_must_match_exactly(ts: TestService) -> None:
    """A tenant check: the claim must be present and equal, not merely truthy or similar."""
    claims = await claims_with(ts, scope="read", tenant="acme", admin=True)

    assert require_grants(claims, ["read"], {"tenant": "acme", "admin": True}) is claims
    for wrong in ({"tenant": "ACME"}, {"tenant": "other"}, {"admin": "true"}, {"region": "eu"}):
        with pytest.raises(InsufficientScope) as caught:
            require_grants(claims, ["read"], wrong)
        assert caught.value.status == 403
    with pytest.raises(InsufficientScope):
        require_grants(claims, ["write"], {"tenant": "acme"})
