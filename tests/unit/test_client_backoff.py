"""Backoff with full jitter and ``Retry-After``: the waits every retry of the client takes."""

from __future__ import annotations

import random

import pytest

from keyturn.client._endpoints import BACKOFF_CAP, backoff, retry_after


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 8])
def test_backoff_is_exponential_with_full_jitter(attempt: int) -> None:
    """Full jitter: anywhere from 0 to the ceiling (0.5 s doubling, capped at 30 s), so that many clients
    failing together do not retry together."""
    rng = random.Random(attempt)
    ceiling = min(BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))
    waits = [backoff(attempt, rng) for _ in range(2000)]
    assert all(0 <= w <= ceiling for w in waits)
    assert max(waits) > 0.95 * ceiling
    assert min(waits) < 0.05 * ceiling


def test_retry_after_wins_over_the_backoff() -> None:
    rng = random.Random(1)
    assert backoff(1, rng, retry_after=7.0) == 7.0  # above the first ceiling of 0.5 s
    assert backoff(9, rng, retry_after=0.0) == 0.0  # below a ceiling of 30 s
    assert backoff(1, rng, retry_after=-3.0) == 0.0
    assert backoff(1, rng, retry_after=10_000.0) <= 4 * BACKOFF_CAP


def test_backoff_stays_capped_in_a_long_outage() -> None:
    """Failures are counted for as long as an outage lasts; after ~1024 of them (some hours at up to
    30 s each) ``2.0 ** attempt`` overflows, and a client must not crash where it should keep waiting."""
    rng = random.Random(1)
    for attempt in (1024, 1025, 5000):
        assert 0 <= backoff(attempt, rng) <= BACKOFF_CAP


def test_retry_after_headers_are_read_as_seconds_or_a_date() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    later = retry_after({"retry-after": "Wed, 01 Jan 2098 00:00:00 GMT"})
    assert later is not None
    assert later > 365 * 86400
    assert retry_after({"retry-after": "Wed, 01 Jan 2003 00:00:00 GMT"}) == 0.0


def test_a_retry_after_date_is_counted_from_the_clients_clock() -> None:
    """The flows pass their injected clock's time, so a frozen clock gives an exact wait."""
    new_year_2098 = 4_039_372_800.0
    assert retry_after({"retry-after": "Wed, 01 Jan 2098 00:00:00 GMT"}, now=new_year_2098 - 5) == 5.0
    assert retry_after({"retry-after": "Wed, 01 Jan 2098 00:00:00 GMT"}, now=new_year_2098 + 5) == 0.0
