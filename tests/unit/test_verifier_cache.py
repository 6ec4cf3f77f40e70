"""``AccessTokenVerifier``'s validated-token cache, with real tokens, keys and revocation feed.

A cached token saves the signature check and nothing else: expiry and revocation are still checked on a
hit, the cache never holds more than its size, and a size of zero turns it off.
"""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import TokenExpired, TokenRevoked
from keyturn.testing import TestService

from ._verifier import eventually, outcome, verifier_on

pytestmark = pytest.mark.anyio


async def test_a_second_verify_is_a_cache_hit(ts: TestService) -> None:
    """The second request with a token is a dictionary look-up: the very claims object comes back."""
    pair = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        assert verifier.status()["cached_tokens"] == 0
        first = verifier.verify(pair.access_token)
        second = verifier.verify(pair.access_token)
        cached = verifier.status()["cached_tokens"]

    assert second is first  # a cache miss would have parsed the token into a new object
    assert cached == 1


async def test_expiry_is_still_checked_on_a_cache_hit(ts: TestService, clock: FrozenClock) -> None:
    """A cached token must not outlive its ``exp``: the cache saves the signature check, not the clock."""
    pair = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        first = verifier.verify(pair.access_token)
        clock.set(pair.access_expires_at + verifier.leeway)  # the last moment the leeway allows
        assert verifier.verify(pair.access_token) is first

        clock.advance(1)
        with pytest.raises(TokenExpired):
            verifier.verify(pair.access_token)
        assert verifier.status()["cached_tokens"] == 0  # the hit found it expired and dropped it


async def test_revocation_is_still_checked_on_a_cache_hit(ts: TestService) -> None:
    """Logging out must end a token that is already in the cache, once the feed has been read."""
    pair = await ts.service.start("alice")
    other = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        first = verifier.verify(pair.access_token)
        assert verifier.verify(pair.access_token) is first  # cached

        await ts.service.logout(access_token=pair.access_token)

        await eventually(lambda: outcome(verifier, pair.access_token) != "ok", "the logout is read")
        with pytest.raises(TokenRevoked):
            verifier.verify(pair.access_token)
        assert verifier.verify(other.access_token).sid == other.session_id


async def test_the_cache_never_holds_more_than_its_size(ts: TestService) -> None:
    """A resource server's memory must not grow with the number of distinct tokens it has seen."""
    pairs = [await ts.service.start(f"user-{i}") for i in range(7)]
    sizes: list[int] = []
    with verifier_on(ts, cache_size=3) as verifier:
        for pair in pairs:
            verifier.verify(pair.access_token)
            size = verifier.status()["cached_tokens"]
            assert isinstance(size, int)
            sizes.append(size)
        # The oldest was evicted: it is read (and verified) afresh, and still valid.
        assert verifier.verify(pairs[0].access_token).sid == pairs[0].session_id
        final = verifier.status()["cached_tokens"]

    assert sizes == [1, 2, 3, 3, 3, 3, 3]
    assert final == 3


async def test_a_cache_size_of_zero_turns_the_cache_off(ts: TestService) -> None:
    """``cache_size=0`` means every request pays the signature check; nothing may be kept."""
    pair = await ts.service.start("alice")
    with verifier_on(ts, cache_size=0) as verifier:
        first = verifier.verify(pair.access_token)
        second = verifier.verify(pair.access_token)
        cached = verifier.status()["cached_tokens"]

    assert second == first
    assert second is not first  # parsed again
    assert cached == 0
