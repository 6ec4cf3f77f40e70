"""Pruning keeps what a token needs as long as it can still be accepted (``exp + leeway``)."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenExpired
from keyturn.testing import TestService

pytestmark = pytest.mark.anyio


async def test_prune_keeps_records_until_their_leeway_has_passed(ts: TestService, clock: FrozenClock) -> None:
    """A token still accepted within the leeway whose record was pruned would look like a reuse."""
    pair = await ts.service.start("alice")
    exp = ts.service.codec.decode_refresh(pair.refresh_token, clock.now()).exp
    leeway = ts.settings.leeway

    clock.set(exp + leeway - 1)  # expired by the clock, still accepted thanks to the leeway
    await ts.service.prune()
    rotated = await ts.service.refresh(pair.refresh_token)
    assert rotated.session_id == pair.session_id

    clock.set(exp + leeway + 1)
    removed = await ts.service.prune()
    assert removed == 0  # no record per token (issue 21): the session, its head within it, lives on
    with pytest.raises(RefreshTokenExpired):
        await ts.service.refresh(pair.refresh_token)
    assert (await ts.service.refresh(rotated.refresh_token)).session_id == pair.session_id
