"""``AccessTokenVerifier`` with real parts: tokens from a real ``SessionService``, keys and the revocation
feed read from its memory store on the verifier's own thread.

What a resource server relies on: a valid token gives its claims, the validated-token cache never lets an
expired or revoked token through, revocations (sessions and single access tokens) arrive by the feed and
leave again once they cannot matter, and an unreadable feed is reported and, when asked, fails closed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import jwt
import pytest
from prometheus_client import CollectorRegistry

from keyturn.clock import FrozenClock
from keyturn.errors import KeyturnError, TokenExpired, TokenRevoked, VerifierUnavailable
from keyturn.middleware import AccessTokenVerifier, StoreKeys, StoreRevocations
from keyturn.middleware.metrics import VerifierCollector
from keyturn.revocation import FEED_BATCH, FeedPage, RevocationSet, RevocationSource
from keyturn.store.memory import MemoryStore
from keyturn.testing import TestService
from keyturn.typing import Revocation

pytestmark = pytest.mark.anyio

POLL = 0.05
"""The feed is polled this often (seconds) in these tests."""
PATIENCE = 10.0
"""How long (seconds) a test waits for the verifier's thread to catch up before it gives up."""


class FlakyFeed:
    """A real revocation source that records what it was asked and fails while ``failing`` is set."""

    def __init__(self, inner: RevocationSource) -> None:
        self.inner = inner
        self.failing = False
        self.asked: list[int] = []
        self.closes = 0

    async def since(self, seq: int) -> FeedPage:
        self.asked.append(seq)
        if self.failing:
            raise OSError("the revocation feed is out of reach (injected)")
        return await self.inner.since(seq)

    async def close(self) -> None:
        self.closes += 1
        await self.inner.close()


def verifier_on(ts: TestService, **options: Any) -> AccessTokenVerifier:
    """A verifier reading ``ts``'s store, on ``ts``'s clock, polling the feed every ``POLL`` seconds."""
    settings: dict[str, Any] = {"revocation_poll_interval": POLL, "key_refetch_interval": 0.2}
    settings.update(options)
    return AccessTokenVerifier.for_store(ts.store, clock=ts.clock, **settings)


def flaky_verifier(ts: TestService, **options: Any) -> tuple[AccessTokenVerifier, FlakyFeed]:
    """Like :func:`verifier_on`, with the feed wrapped in a :class:`FlakyFeed`."""
    feed = FlakyFeed(StoreRevocations(ts.store, ts.clock.now))
    settings: dict[str, Any] = {"revocation_poll_interval": POLL, "key_refetch_interval": 0.2}
    settings.update(options)
    verifier = AccessTokenVerifier(StoreKeys(ts.store), feed, clock=ts.clock, **settings)
    return verifier, feed


def outcome(verifier: AccessTokenVerifier, token: str) -> str:
    """``"ok"`` or the wire code the verifier answers ``token`` with."""
    try:
        verifier.verify(token)
    except KeyturnError as exc:
        return exc.code
    return "ok"


async def eventually(check: Callable[[], bool], what: str, patience: float = PATIENCE) -> None:
    """Wait until ``check()`` holds; fail (saying ``what`` was awaited) after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {patience}s in vain until {what}")
        await anyio.sleep(0.02)


def verifier_threads() -> int:
    return sum(t.name == "keyturn-verifier" and t.is_alive() for t in threading.enumerate())


# -- a valid token ---------------------------------------------------------------------------------


async def test_a_valid_token_gives_its_claims(ts: TestService) -> None:
    """What a resource server authorises on: the subject, the session, the token id, the key, the client
    and the application's own claims, exactly as the service issued them."""
    pair = await ts.service.start("alice", {"role": "admin", "tenant": "acme"}, client_id="mobile")
    issued = jwt.decode(pair.access_token, options={"verify_signature": False})

    with verifier_on(ts) as verifier:
        claims = verifier.verify(pair.access_token)

    assert (claims.sub, claims.sid, claims.jti) == ("alice", pair.session_id, issued["jti"])
    assert claims.kid == ts.service.keys.active_access.kid
    assert claims.client_id == "mobile"
    assert claims.exp == pair.access_expires_at
    assert claims.iat == int(ts.clock.now())
    assert claims.claims["role"] == "admin"
    assert claims.claims["tenant"] == "acme"
    assert claims.claims["aud"] == ts.settings.audience


async def test_averify_gives_the_same_claims_without_blocking_the_loop(ts: TestService) -> None:
    """Async frameworks call ``averify``; it must judge a token exactly as ``verify`` does."""
    pair = await ts.service.start("bob", {"plan": "pro"})

    async with verifier_on(ts) as verifier:
        claims = await verifier.averify(pair.access_token)
        again = verifier.verify(pair.access_token)

    assert (claims.sub, claims.sid, claims.client_id) == ("bob", pair.session_id, "keyturn")
    assert claims.claims["plan"] == "pro"
    assert again == claims


async def test_the_verifier_starts_on_first_use(ts: TestService) -> None:
    """A framework integration may never call ``start``: the first ``verify`` must do it."""
    pair = await ts.service.start("alice")
    verifier = verifier_on(ts)
    try:
        assert verifier.status()["keys"] == 0
        assert verifier.verify(pair.access_token).sid == pair.session_id
        assert verifier.status()["keys"] == 1
        assert verifier.status()["healthy"] is True
    finally:
        verifier.close()


async def test_an_expired_token_is_token_expired(ts: TestService, clock: FrozenClock) -> None:
    """Expiry is judged on the injected clock, with the leeway and not a second more."""
    pair = await ts.service.start("alice")
    with verifier_on(ts) as verifier:
        clock.set(pair.access_expires_at + verifier.leeway + 1)
        with pytest.raises(TokenExpired) as caught:
            verifier.verify(pair.access_token)
    assert (caught.value.code, caught.value.status) == ("token_expired", 401)


@pytest.mark.parametrize(
    "options",
    [
        {"cache_size": -1},
        {"revocation_poll_interval": 0},
        {"key_refetch_interval": -1.0},
        {"timeout": 0},
    ],
    ids=["negative-cache", "zero-poll", "negative-refetch", "zero-timeout"],
)
async def test_nonsense_options_are_refused_at_construction(ts: TestService, options: dict[str, Any]) -> None:
    """A zero poll interval would spin the verifier's thread; better to refuse it up front."""
    with pytest.raises(ValueError, match="positive"):
        AccessTokenVerifier.for_store(ts.store, **options)


# -- the validated-token cache ---------------------------------------------------------------------


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


# -- revocations ----------------------------------------------------------------------------------


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


# -- an unreadable feed ----------------------------------------------------------------------------


async def test_an_unreadable_feed_keeps_the_last_set_and_reports_a_growing_lag(ts: TestService) -> None:
    """Without ``revocation_fail_closed_after`` an outage of the feed must not stop the resource server:
    revocations already read stay in force, tokens keep verifying, and the lag says how stale it is."""
    revoked = await ts.service.start("alice")
    alive = await ts.service.start("bob")
    verifier, feed = flaky_verifier(ts)
    with verifier:
        await ts.service.logout(access_token=revoked.access_token)
        await eventually(lambda: outcome(verifier, revoked.access_token) == "token_revoked", "logout read")
        assert verifier.revocation_lag() < 5.0

        feed.failing = True
        failed_from = len(feed.asked)
        await eventually(lambda: len(feed.asked) > failed_from, "a failed read")
        earlier = verifier.revocation_lag()
        await eventually(lambda: verifier.revocation_lag() > earlier + 0.5, "the lag grows")

        assert outcome(verifier, revoked.access_token) == "token_revoked"  # the last set, kept
        assert verifier.verify(alive.access_token).sub == "bob"
        status = verifier.status()
        assert status["healthy"] is True  # nothing asked it to fail closed
        lag = status["revocation_lag_seconds"]
        assert isinstance(lag, float)
        assert lag > 0.5
        registry = CollectorRegistry()
        registry.register(VerifierCollector(verifier))
        exported = registry.get_sample_value("keyturn_revocation_feed_lag_seconds")
        assert exported is not None
        assert exported >= lag  # the same lag, read at the scrape
        assert registry.get_sample_value("keyturn_revocations_held") == 1

        feed.failing = False
        await eventually(lambda: verifier.revocation_lag() < 0.5, "the feed is read again")
        assert outcome(verifier, revoked.access_token) == "token_revoked"


async def test_a_revocation_made_during_an_outage_applies_once_the_feed_is_back(ts: TestService) -> None:
    """Nothing is lost while the feed is out: the verifier resumes where it stopped."""
    pair = await ts.service.start("alice")
    verifier, feed = flaky_verifier(ts)
    with verifier:
        feed.failing = True
        failed_from = len(feed.asked)
        await eventually(lambda: len(feed.asked) > failed_from, "a failed read")

        await ts.service.logout(access_token=pair.access_token)
        await anyio.sleep(4 * POLL)
        assert verifier.verify(pair.access_token).sid == pair.session_id  # not known yet: fails open

        feed.failing = False
        await eventually(lambda: outcome(verifier, pair.access_token) == "token_revoked", "logout read")


async def test_with_fail_closed_after_tokens_are_refused_once_the_lag_passes_it(ts: TestService) -> None:
    """A deployment that prefers downtime to honouring revoked tokens gets a retryable 503, and the
    service comes back by itself when the feed does."""
    pair = await ts.service.start("alice")
    verifier, feed = flaky_verifier(ts, revocation_fail_closed_after=1.0)
    with verifier:
        assert verifier.verify(pair.access_token).sid == pair.session_id
        assert verifier.status()["healthy"] is True

        feed.failing = True
        await eventually(lambda: outcome(verifier, pair.access_token) != "ok", "the verifier fails closed")
        assert verifier.revocation_lag() > 1.0
        with pytest.raises(VerifierUnavailable) as caught:
            verifier.verify(pair.access_token)
        with pytest.raises(VerifierUnavailable):
            await verifier.averify(pair.access_token)
        assert verifier.status()["healthy"] is False

        feed.failing = False
        await eventually(lambda: outcome(verifier, pair.access_token) == "ok", "the verifier recovers")
        assert verifier.status()["healthy"] is True

    error = caught.value
    assert (error.code, error.status, error.retryable) == ("server_error", 503, True)


async def test_with_fail_closed_after_a_feed_never_read_counts_from_the_start(ts: TestService) -> None:
    """A verifier that could never read the feed knows nothing about revocations: it must not be
    healthy for longer than the allowed lag."""
    pair = await ts.service.start("alice")
    verifier, feed = flaky_verifier(ts, revocation_fail_closed_after=0.5)
    feed.failing = True
    with verifier:
        await eventually(lambda: outcome(verifier, pair.access_token) == "server_error", "fails closed")
        assert verifier.status()["revocations_last_seq"] == 0


# -- lifecycle -------------------------------------------------------------------------------------


async def test_close_is_idempotent_and_stops_the_thread_and_the_sources(ts: TestService) -> None:
    """A framework may close on shutdown and again in a finaliser; neither may fail or leak a thread."""
    before = verifier_threads()
    verifier, feed = flaky_verifier(ts)
    verifier.start()
    assert verifier_threads() == before + 1

    verifier.close()
    verifier.close()
    await verifier.aclose()

    assert verifier_threads() == before
    assert feed.closes == 1


async def test_a_closed_verifier_starts_again_when_used_and_closes_again(ts: TestService) -> None:
    """An app's lifespan closes the verifier at shutdown; a second lifespan (tests run several) must find
    it working again, not answer 500s. Each start is matched by a close: no thread is left behind."""
    pair = await ts.service.start("alice")
    before = verifier_threads()
    verifier = verifier_on(ts)
    with verifier:
        verifier.verify(pair.access_token)
    assert verifier_threads() == before

    assert verifier.verify(pair.access_token).sid == pair.session_id
    assert (await verifier.averify(pair.access_token)).sid == pair.session_id
    assert verifier_threads() == before + 1
    await ts.service.logout(access_token=pair.access_token)
    await eventually(lambda: verifier.status()["revocations"] == 1, "the restarted verifier polls the feed")
    with pytest.raises(TokenRevoked):
        verifier.verify(pair.access_token)
    verifier.close()
    assert verifier_threads() == before
