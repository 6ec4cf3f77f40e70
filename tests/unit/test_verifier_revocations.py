"""``AccessTokenVerifier`` and the revocation feed, with real tokens from a ``SessionService``.

Revocations (sessions and single access tokens) arrive by the feed within a poll and leave again once no
token they match can be valid; a long feed is read to its end, and a feed whose store was reset is
followed from its start.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import jwt
import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import TokenExpired, TokenRevoked
from keyturn.middleware import StoreRevocations
from keyturn.revocation import FEED_BATCH, RevocationSet
from keyturn.store.memory import MemoryStore
from keyturn.testing import TestService
from keyturn.typing import Revocation

from ._verifier import eventually, flaky_verifier, outcome, verifier_on

pytestmark = pytest.mark.anyio


async def _logout(ts: TestService, access: str, refresh: str, sid: str) -> None:
    await ts.service.logout(access_token=access)


async def _revoke(ts: TestService, access: str, refresh: str, sid: str) -> None:
    assert await ts.service.revoke(sid)


async def _revoke_refresh_token(ts: TestService, access: str, refresh: str, sid: str) -> None:
    await ts.service.revoke_token(refresh)  # RFC 7009 with a refresh token: the whole session


@pytest.mark.parametrize(
    "end_session",
    [_logout, _revoke, _revoke_refresh_token],
    ids=["logout", "revoke", "revoke_token-refresh"],
)
async def test_a_revoked_session_is_token_revoked(
    ts: TestService, end_session: Callable[[TestService, str, str, str], Awaitable[None]]
) -> None:
    """However a session ends, its access tokens stop working at every resource server within a poll,
    and nobody else's do."""
    pair = await ts.service.start("alice")
    bystander = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        assert verifier.verify(pair.access_token).sid == pair.session_id

        await end_session(ts, pair.access_token, pair.refresh_token, pair.session_id)

        await eventually(lambda: outcome(verifier, pair.access_token) != "ok", "the revocation is read")
        with pytest.raises(TokenRevoked) as caught:
            verifier.verify(pair.access_token)
        with pytest.raises(TokenRevoked):
            await verifier.averify(pair.access_token)
        assert verifier.verify(bystander.access_token).sid == bystander.session_id
        assert verifier.status()["revocations"] == 1

    assert (caught.value.code, caught.value.status) == ("token_revoked", 401)


async def test_a_single_revoked_access_token_is_token_revoked_and_its_session_lives_on(
    ts: TestService,
) -> None:
    """RFC 7009 with an access token revokes that token only: the session's next token still works."""
    pair = await ts.service.start("alice")
    refreshed = await ts.service.refresh(pair.refresh_token)
    with verifier_on(ts) as verifier:
        verifier.verify(pair.access_token)

        await ts.service.revoke_token(pair.access_token)

        await eventually(lambda: outcome(verifier, pair.access_token) != "ok", "the revocation is read")
        assert outcome(verifier, pair.access_token) == "token_revoked"
        claims = verifier.verify(refreshed.access_token)
        assert claims.sid == pair.session_id  # same session, another jti
        assert verifier.status()["revocations"] == 1


async def test_revocations_are_pruned_once_no_token_they_match_can_be_valid(
    ts: TestService, clock: FrozenClock
) -> None:
    """The revocation sets would grow forever if entries never left; they leave once past their
    expiry (plus the leeway), since every token they match is refused as expired by then."""
    pair = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        await ts.service.logout(access_token=pair.access_token)
        await eventually(lambda: verifier.status()["revocations"] == 1, "the revocation is read")

        clock.advance(ts.settings.revocation_lifetime + verifier.leeway + 1)

        await eventually(lambda: verifier.status()["revocations"] == 0, "the revocation is pruned")
        with pytest.raises(TokenExpired):
            verifier.verify(pair.access_token)


def test_a_revocation_set_keeps_an_entry_until_its_expiry_plus_the_leeway() -> None:
    """The boundary: an entry matching a token still inside the leeway must stay in force."""
    revoked = RevocationSet(leeway=30)
    revoked.add(
        [
            Revocation(1, "sid", "s1", 1_000.0),
            Revocation(2, "jti", "j1", 2_000.0),
            Revocation(3, "sid", "s1", 500.0),  # an earlier expiry for the same session does not shorten it
        ],
        last_seq=3,
    )
    revoked.add([], last_seq=2)  # a lower position: the feed's store was reset; what was read stays

    revoked.prune(1_030.0)
    assert (revoked.sids, revoked.jtis, revoked.last_seq) == ({"s1": 1_000.0}, {"j1": 2_000.0}, 2)

    revoked.prune(1_030.5)
    assert (set(revoked.sids), set(revoked.jtis), len(revoked)) == (set(), {"j1"}, 1)


async def test_a_feed_longer_than_one_page_is_read_to_its_end(ts: TestService) -> None:
    """After an outage a busy service's feed holds thousands of entries: a verifier must read them all
    at once, not one page per poll, or a revoked token stays valid for minutes."""
    first = await ts.service.start("alice")
    await ts.service.logout(access_token=first.access_token)  # seq 1: on the first page
    expires = ts.clock.now() + ts.settings.revocation_lifetime
    for _ in range(2 * FEED_BATCH + 500):
        await ts.store.revoke_access_token(secrets.token_urlsafe(12), expires)
    last = await ts.service.start("bob")
    await ts.service.revoke_token(last.access_token)  # the very last entry, on the third page
    total = 2 * FEED_BATCH + 502

    # Polled rarely: everything read must have been read by the first poll, page after page.
    verifier, feed = flaky_verifier(ts, revocation_poll_interval=60.0)
    with verifier:
        status = verifier.status()
        assert (status["revocations_last_seq"], status["revocations"]) == (total, total)
        assert feed.asked == [0, FEED_BATCH, 2 * FEED_BATCH]
        assert outcome(verifier, first.access_token) == "token_revoked"
        assert outcome(verifier, last.access_token) == "token_revoked"


async def test_a_feed_that_grows_by_more_than_a_page_between_polls_is_read_to_its_end(
    ts: TestService,
) -> None:
    """The same for the background poll: a burst of revocations between two polls is read whole."""
    pair = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        verifier.verify(pair.access_token)
        expires = ts.clock.now() + ts.settings.revocation_lifetime
        for _ in range(FEED_BATCH + 200):
            await ts.store.revoke_access_token(secrets.token_urlsafe(12), expires)
        await ts.service.logout(access_token=pair.access_token)
        total = FEED_BATCH + 201

        await eventually(lambda: verifier.status()["revocations_last_seq"] == total, "the burst is read")
        assert verifier.status()["revocations"] == total
        assert outcome(verifier, pair.access_token) == "token_revoked"


async def test_a_feed_whose_store_was_reset_is_followed_from_its_start(ts: TestService) -> None:
    """A Redis without persistence restarts, or the service moves to a new store: the feed's numbers
    begin again, below the verifier's cursor. The verifier must follow the new numbers at once, or a
    token revoked after the reset stays valid until the new numbers pass the old cursor."""
    before = await ts.service.start("alice")
    after = await ts.service.start("bob")
    for _ in range(3):
        await ts.service.logout(access_token=(await ts.service.start("carol")).access_token)
    await ts.service.logout(access_token=before.access_token)
    verifier, feed = flaky_verifier(ts)
    with verifier:
        await eventually(lambda: verifier.status()["revocations_last_seq"] == 4, "the first store read")
        assert outcome(verifier, after.access_token) == "ok"

        reset = MemoryStore()  # the store the service now answers from: its feed begins again at 1
        jti = jwt.decode(after.access_token, options={"verify_signature": False})["jti"]
        await reset.revoke_access_token(jti, ts.clock.now() + ts.settings.revocation_lifetime)
        feed.inner = StoreRevocations(reset, ts.clock.now)

        await eventually(lambda: outcome(verifier, after.access_token) == "token_revoked", "reset read")
        assert verifier.status()["revocations_last_seq"] == 1
        # What was read before the reset still holds: those tokens may still be in use.
        assert outcome(verifier, before.access_token) == "token_revoked"
