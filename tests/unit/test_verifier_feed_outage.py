"""``AccessTokenVerifier`` while its revocation feed cannot be read.

The last set read stays in force and the lag is reported (and exported); nothing revoked meanwhile is
lost once the feed is back; and with ``revocation_fail_closed_after`` tokens are refused with a
retryable 503 once the lag passes it, until the feed is read again.
"""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import CollectorRegistry

from keyturn.errors import VerifierUnavailable
from keyturn.middleware.metrics import VerifierCollector
from keyturn.testing import TestService

from ._verifier import POLL, eventually, flaky_verifier, outcome

pytestmark = pytest.mark.anyio


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
