"""``AccessTokenVerifier`` with real parts: what a valid token gives, and what it refuses.

Tokens come from a real ``SessionService``; keys and the revocation feed are read from its memory store on
the verifier's own thread. What a resource server authorises on is the claims of a valid token, judged alike
by ``verify`` and ``averify``, with expiry judged on the injected clock; nonsense options are refused.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import TokenExpired, TokenInvalid
from keyturn.middleware import AccessTokenVerifier
from keyturn.testing import TestService

from ._verifier import verifier_on

pytestmark = pytest.mark.anyio


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


async def test_issuer_and_audience_come_from_the_environment_and_keywords_win(
    ts: TestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/resource-servers.md: ``for_store``/``for_service`` read ``ISSUER`` and ``AUDIENCE`` from the
    ``KEYTURN_*`` environment, keyword arguments win; a token for another audience or from another issuer
    is ``token_invalid`` (RFC 7519 sections 4.1.1 and 4.1.3), never accepted."""
    pair = await ts.service.start("alice")
    monkeypatch.setenv("KEYTURN_AUDIENCE", "billing-api")
    with verifier_on(ts) as verifier, pytest.raises(TokenInvalid, match="audience"):
        verifier.verify(pair.access_token)
    with verifier_on(ts, audience=ts.settings.audience) as verifier:
        assert verifier.verify(pair.access_token).sub == "alice"
    monkeypatch.delenv("KEYTURN_AUDIENCE")
    monkeypatch.setenv("KEYTURN_ISSUER", "someone-else")
    with verifier_on(ts) as verifier, pytest.raises(TokenInvalid, match="issuer") as caught:
        verifier.verify(pair.access_token)
    assert (caught.value.code, caught.value.status) == ("token_invalid", 401)
