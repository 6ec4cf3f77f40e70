"""``AccessTokenVerifier`` and its keys: rotation, unknown and made-up key ids, withdrawn keys and key
sources out of reach (reading a JWKS is ``test_verifier_jwks.py``).

A resource server must let in a token signed with a key the token service started using a moment ago
(at once, or on the client's retry after a 503), refuse forged key ids without letting them hammer the
token service, and tell "this token is bad" (401) apart from "I cannot judge tokens right now" (503).

Most tests here run the verifier on the frozen clock of ``ts``: the key reloader allows a fetch once per
``key_refetch_interval`` of that clock, so a test moves the clock to say "the interval has passed" instead
of sleeping.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import anyio
import pytest

from keyturn.clock import FrozenClock, MonotonicClock
from keyturn.errors import KeyturnError, TokenInvalid, VerifierUnavailable
from keyturn.keys import KeyRing, MasterKey, new_access_key
from keyturn.middleware import AccessTokenVerifier, KeySource, StaticKeys, StoreKeys
from keyturn.middleware._sources import Keys
from keyturn.testing import TestService, TokenFactory, make_service
from keyturn.typing import AccessAlgorithm

from ._verifier import outcome

pytestmark = pytest.mark.anyio

REFETCH = 0.2
"""``key_refetch_interval`` in these tests (seconds)."""


class CountingKeys:
    """A real key source (``inner``, which a test may swap) that counts its fetches and fails them
    while ``failing`` is set."""

    def __init__(self, inner: KeySource) -> None:
        self.inner = inner
        self.failing = False
        self.fetches = 0
        self.closes = 0

    async def fetch(self) -> Keys:
        self.fetches += 1
        if self.failing:
            raise OSError("the key source is out of reach (injected)")
        return await self.inner.fetch()

    async def close(self) -> None:
        self.closes += 1
        await self.inner.close()


def counting_verifier(ts: TestService, **options: Any) -> tuple[AccessTokenVerifier, CountingKeys]:
    """A verifier on ``ts``'s clock whose keys come from ``ts``'s store through :class:`CountingKeys`;
    no revocation feed."""
    source = CountingKeys(StoreKeys(ts.store))
    settings: dict[str, Any] = {"key_refetch_interval": REFETCH, "clock": ts.clock, "timer": ts.clock}
    settings.update(options)
    return AccessTokenVerifier(source, None, **settings), source


def let_a_fetch_begin(clock: FrozenClock) -> None:
    """Move the frozen clock past the refetch interval: the next unknown key id may fetch the keys."""
    clock.advance(REFETCH * 1.5)


def master_of(ts: TestService) -> MasterKey:
    assert ts.settings.secret_key is not None
    return MasterKey(ts.settings.secret_key.get_secret_value())


async def rotate(ts: TestService, alg: AccessAlgorithm = "ES256") -> TokenFactory:
    """Add a new access key to the store, as ``keyturn keys rotate`` in another process would, and
    return a factory that signs with it (the key ring of the process that rotated)."""
    master = master_of(ts)
    newest = max(k.created_at for k in await ts.store.list_keys())
    key = new_access_key(alg, master, newest + 1)
    await ts.store.add_keys([key])
    ring = KeyRing.from_stored(await ts.store.list_keys(), master)
    assert ring.active_access.kid == key.kid
    return TokenFactory(ring, ts.settings, ts.clock)


async def judge(verifier: AccessTokenVerifier, token: str, mode: str) -> str:
    """:func:`outcome` by ``verify`` or by ``averify``."""
    try:
        if mode == "verify":
            verifier.verify(token)
        else:
            await verifier.averify(token)
    except KeyturnError as exc:
        return exc.code
    return "ok"


# -- unknown key ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["verify", "averify"])
async def test_a_token_signed_with_a_key_added_later_is_accepted_after_a_refetch(
    ts: TestService, clock: FrozenClock, mode: str
) -> None:
    """Right after a rotation the service signs with a key this verifier has never seen; refusing those
    tokens would log every user out at every resource server."""
    old = await ts.service.start("alice")
    verifier, source = counting_verifier(ts)
    with verifier:
        assert source.fetches == 1
        factory = await rotate(ts, "EdDSA" if mode == "averify" else "ES256")
        let_a_fetch_begin(clock)
        token = factory.access_token()

        assert await judge(verifier, token, mode) == "ok"
        assert verifier.verify(token).kid == factory.keys.active_access.kid
        assert source.fetches == 2
        assert verifier.status()["keys"] == 2
        assert verifier.status()["key_fetches"] == 2
        assert verifier.verify(old.access_token).sid == old.session_id  # the old key still verifies
        assert source.fetches == 2


async def test_a_new_key_inside_the_refetch_interval_is_a_retryable_503_then_accepted(
    ts: TestService, clock: FrozenClock
) -> None:
    """A genuine token signed by a brand-new key, arriving less than an interval after the last fetch,
    must never be called invalid (the client would drop it): it gets a retryable 503 at once, without a
    fetch, and gets in on the retry."""
    verifier, source = counting_verifier(ts)
    with verifier:
        factory = await rotate(ts)
        token = factory.access_token()

        with pytest.raises(VerifierUnavailable) as caught:
            verifier.verify(token)
        with pytest.raises(VerifierUnavailable):
            await verifier.averify(token)
        assert source.fetches == 1

        let_a_fetch_begin(clock)
        assert verifier.verify(token).kid == factory.keys.active_access.kid
        assert source.fetches == 2

    error = caught.value
    assert (error.code, error.status, error.retryable) == ("server_error", 503, True)


@pytest.mark.parametrize("mode", ["verify", "averify"])
async def test_a_made_up_key_id_is_token_invalid_after_a_fetch(
    ts: TestService, clock: FrozenClock, mode: str
) -> None:
    """A key id that a fetch begun after the token arrived did not list is a forgery (401), not an
    outage (503)."""
    forged = ts.tokens.access_token(headers={"kid": "no-such-key"})
    verifier, source = counting_verifier(ts)
    with verifier:
        let_a_fetch_begin(clock)
        assert await judge(verifier, forged, mode) == "token_invalid"
        assert source.fetches == 2
        with pytest.raises(TokenInvalid) as caught:
            verifier.verify(forged)

    assert (caught.value.code, caught.value.status) == ("token_invalid", 401)


async def test_inside_the_interval_the_tokens_issue_time_decides(ts: TestService, clock: FrozenClock) -> None:
    """Without a fetch to ask, a token issued well before the last fetch (the leeway and iat's whole
    second included) naming a key that fetch lacked is forged; one issued later may be genuine."""
    verifier, source = counting_verifier(ts)
    with verifier:
        started = clock.now()  # the first fetch began at this frozen instant
        cutoff = int(started - verifier.leeway - 1)
        assert cutoff + 1 + verifier.leeway == started

        def forged(kid: str, iat: int) -> str:
            return ts.tokens.access_token(ts.tokens.access_claims(iat=iat), {"kid": kid})

        assert outcome(verifier, forged("old-enough", cutoff)) == "token_invalid"
        assert outcome(verifier, forged("too-recent", cutoff + 1)) == "server_error"
        assert source.fetches == 1  # answered at once: none of them fetched


async def test_a_key_id_found_missing_is_refused_at_once_without_a_fetch(
    ts: TestService, clock: FrozenClock
) -> None:
    """Replaying one forged token must cost the token service nothing after the first time, even when
    the interval would allow another fetch."""
    forged = ts.tokens.access_token(headers={"kid": "no-such-key"})
    verifier, source = counting_verifier(ts)
    with verifier:
        let_a_fetch_begin(clock)
        assert outcome(verifier, forged) == "token_invalid"
        assert source.fetches == 2

        answers = []
        for _ in range(10):
            let_a_fetch_begin(clock)
            answers.append(outcome(verifier, forged))

        assert answers == ["token_invalid"] * 10
        assert source.fetches == 2


async def test_a_flood_of_made_up_key_ids_costs_only_a_few_fetches(live: TestService) -> None:
    """Tokens with random key ids from many threads at once must not turn into a fetch each: fetches
    start at most once per ``key_refetch_interval``, and every answer is a refusal (401 or 503)."""
    forged = [live.tokens.access_token(headers={"kid": f"made-up-{i}"}) for i in range(300)]
    verifier, source = counting_verifier(live)
    began = time.monotonic()
    with verifier, ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(partial(outcome, verifier), forged))
        answers += pool.map(partial(outcome, verifier), forged)  # and the same again
        elapsed = time.monotonic() - began
        fetches = source.fetches

    assert set(answers) <= {"token_invalid", "server_error"}
    assert len(answers) == 2 * len(forged)
    # The first fetch (at start) and then at most one per interval: the bound is set by elapsed time,
    # not by a guess at how fast this machine is.
    assert fetches <= elapsed / REFETCH + 2
    assert fetches < len(forged) // 10


async def test_an_unknown_key_while_keys_cannot_be_fetched_is_unavailable_not_invalid(
    ts: TestService, clock: FrozenClock
) -> None:
    """If the key source is out of reach a token with a new key may well be genuine: the answer must be
    a retryable 503, and the key must be looked for again once the source is back."""
    known = await ts.service.start("alice")
    verifier, source = counting_verifier(ts)
    with verifier:
        factory = await rotate(ts)
        token = factory.access_token()
        source.failing = True

        let_a_fetch_begin(clock)
        with pytest.raises(VerifierUnavailable) as caught:
            verifier.verify(token)
        assert source.fetches == 2  # it did try
        let_a_fetch_begin(clock)
        with pytest.raises(VerifierUnavailable):
            await verifier.averify(token)
        assert verifier.verify(known.access_token).sid == known.session_id  # known keys still work

        source.failing = False
        let_a_fetch_begin(clock)
        assert verifier.verify(token).kid == factory.keys.active_access.kid

    error = caught.value
    assert (error.code, error.status, error.retryable) == ("server_error", 503, True)


async def test_keys_out_of_reach_at_start_give_unavailable_until_they_are_back(
    ts: TestService, clock: FrozenClock
) -> None:
    """A resource server that starts while the token service is down answers 503, then recovers by
    itself: no restart needed."""
    pair = await ts.service.start("alice")
    verifier, source = counting_verifier(ts)
    source.failing = True
    with verifier:
        assert verifier.status()["healthy"] is False
        assert outcome(verifier, pair.access_token) == "server_error"
        let_a_fetch_begin(clock)
        assert outcome(verifier, pair.access_token) == "server_error"

        source.failing = False
        let_a_fetch_begin(clock)
        assert verifier.verify(pair.access_token).sid == pair.session_id
        assert verifier.status()["healthy"] is True


async def test_keys_out_of_reach_never_make_an_older_genuine_token_invalid(
    ts: TestService, clock: FrozenClock
) -> None:
    """The same outage, with a token issued a minute before the resource server started: a fetch that
    failed listed nothing, so it proves nothing about the token's key. Calling the token invalid (401)
    would make clients throw away good tokens, or log users out, because the token service was down."""
    pair = await ts.service.start("alice")
    clock.advance(60)
    verifier, source = counting_verifier(ts)
    source.failing = True
    with verifier:
        answers = [outcome(verifier, pair.access_token) for _ in range(3)]

    assert source.fetches >= 1
    assert answers == ["server_error"] * 3


async def test_a_withdrawn_key_empties_the_cache_and_its_tokens_are_refused(
    ts: TestService, clock: FrozenClock
) -> None:
    """A key taken out of the JWKS (compromised, or pruned) must stop verifying even the tokens that
    were validated, and cached, while it was still listed."""
    old_kid = ts.service.keys.active_access.kid
    pair = await ts.service.start("alice")
    verifier, _ = counting_verifier(ts)
    with verifier:
        first = verifier.verify(pair.access_token)
        assert verifier.verify(pair.access_token) is first  # cached
        factory = await rotate(ts)
        assert await ts.store.delete_keys([old_kid]) == 1

        let_a_fetch_begin(clock)
        fresh = factory.access_token()
        assert verifier.verify(fresh).kid == factory.keys.active_access.kid  # this fetch drops the old key
        assert verifier.status()["keys"] == 1

        assert outcome(verifier, pair.access_token) in {"server_error", "token_invalid"}
        let_a_fetch_begin(clock)
        assert outcome(verifier, pair.access_token) == "token_invalid"
        assert verifier.verify(fresh).kid == factory.keys.active_access.kid


@pytest.mark.parametrize(("cache_size", "expected"), [(100, "ok"), (0, "token_invalid")])
async def test_a_cache_hit_does_not_check_the_signature_again(
    ts: TestService, clock: FrozenClock, cache_size: int, expected: str
) -> None:
    """The point of the cache: a token already validated is not verified again. Proved by putting other
    key material under the token's key id: a token the service signs now fails its signature check, while
    the cached one is still answered (and, with the cache off, fails too)."""
    kid = ts.service.keys.active_access.kid
    impostor = await make_service(clock=clock)
    swapped = {**impostor.service.keys.active_access.jwk, "kid": kid}
    source = CountingKeys(StaticKeys(ts.service.keys.jwks()))
    pair = await ts.service.start("alice")
    options: dict[str, Any] = {
        "key_refetch_interval": REFETCH,
        "cache_size": cache_size,
        "clock": clock,
        "timer": clock,
    }
    with AccessTokenVerifier(source, None, **options) as verifier:
        verifier.verify(pair.access_token)
        source.inner = StaticKeys([swapped])
        let_a_fetch_begin(clock)
        made_up = ts.tokens.access_token(headers={"kid": "made-up"})
        assert outcome(verifier, made_up) == "token_invalid"  # which makes the verifier fetch the keys
        assert source.fetches == 2
        later = await ts.service.start("alice")
        assert outcome(verifier, later.access_token) == "token_invalid"  # the key really changed

        assert outcome(verifier, pair.access_token) == expected


async def test_a_wall_clock_stepped_back_does_not_make_a_new_key_look_forged(
    ts: TestService, clock: FrozenClock
) -> None:
    """The wall clock may be stepped back (NTP, a VM resumed): the limit on key refetches is about how
    often, and must not turn a step of an hour into an hour in which a new key cannot be fetched. A
    client retrying a genuine token with a new key must get in within a few intervals. Refetches are
    paced by a monotonic timer (the real one here), token times by the wall clock."""
    verifier, source = counting_verifier(ts, timer=MonotonicClock())
    with verifier:
        clock.advance(-3600)  # the clock ``ts`` and the verifier share
        factory = await rotate(ts)
        token = factory.access_token()

        answers = [outcome(verifier, token)]
        deadline = time.monotonic() + 20 * REFETCH
        while answers[-1] != "ok" and time.monotonic() < deadline:
            await anyio.sleep(REFETCH / 2)  # the client retries; time passes, for real and on the clock
            clock.advance(REFETCH / 2)
            answers.append(outcome(verifier, token))

    assert "token_invalid" not in answers  # a genuine token, never called forged
    assert answers[-1] == "ok"
    assert source.fetches == 2
