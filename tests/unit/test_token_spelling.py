"""One token, one spelling; and an expired token whose key is gone is expired, not invalid."""

from __future__ import annotations

import pytest

from keyturn.errors import TokenExpired, TokenInvalid
from keyturn.testing import TestService, make_service

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ts(anyio_backend: str) -> TestService:
    return await make_service()


@pytest.mark.parametrize(
    "respell",
    [
        lambda t: t + "=",
        lambda t: t + "==",
        lambda t: t + "=" * 50,
        lambda t: t + "==AAAA",
        lambda t: t.replace(".", "=.", 1),
        lambda t: t[:10] + "+" + t[11:],
        lambda t: t[:10] + " " + t[10:],
        lambda t: t + "\n",
    ],
    ids=["pad1", "pad2", "pad50", "after-padding", "padded-header", "plus", "space", "newline"],
)
async def test_another_spelling_of_a_valid_token_is_refused(ts: TestService, respell: object) -> None:
    """A lenient base64 decoder would accept these as the same token: each would be a new cache entry."""
    pair = await ts.service.start("alice")
    assert (await ts.service.authenticate(pair.access_token)).claims.sid == pair.session_id
    variant = respell(pair.access_token)  # type: ignore[operator]
    assert variant != pair.access_token

    with pytest.raises(TokenInvalid):
        await ts.service.authenticate(variant)


async def test_an_expired_token_whose_key_is_unknown_is_token_expired(ts: TestService) -> None:
    """After ``keyturn keys prune`` an old token's key is gone; the client should refresh, not log out."""
    claims = ts.tokens.access_claims()
    lifetime = ts.settings.access_token_lifetime
    claims.update(iat=int(ts.clock.now()) - 2 * lifetime, exp=int(ts.clock.now()) - lifetime)
    token = ts.tokens.access_token(claims, {"kid": "pruned-long-ago"})

    with pytest.raises(TokenExpired):
        ts.service.codec.decode_access(token, ts.clock.now())


async def test_a_live_token_whose_key_is_unknown_is_still_invalid(ts: TestService) -> None:
    token = ts.tokens.access_token(headers={"kid": "never-heard-of"})

    with pytest.raises(TokenInvalid):
        await ts.service.authenticate(token)
