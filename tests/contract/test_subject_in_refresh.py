"""The built-in users' subject check made by the store in its refresh step (``refresh(..., user=)``), on every
backend: it reads the user with the session, refuses a user that is gone or disabled before anything is
decided, and comes after the rate-limit takes."""

from __future__ import annotations

import asyncio

import pytest

from keyturn import testing
from keyturn.errors import SessionRevoked
from keyturn.ratelimit import RateLimit
from keyturn.store import MemoryStore
from keyturn.typing import (
    Backend,
    Limited,
    RateLimitTake,
    RefreshDecision,
    RefreshRecord,
    Reject,
    Replay,
    Rotate,
    SessionRecord,
    SubjectRefused,
    UserRecord,
)
from keyturn.users import UserDirectory

from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0


async def _started(store: Backend, sid: str = "s1", sub: str = "alice") -> RefreshRecord:
    head = RefreshRecord(f"{sid}-h0", sid, 0, "rk", int(NOW), int(NOW) + 1000)
    await store.create_session(SessionRecord(sid, sub, NOW, NOW + 5000, head.jti, 0, NOW), head)
    return head


def _rotate(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
    assert session is not None
    if presented is not None and presented.jti == session.head_jti:
        new = RefreshRecord(f"{session.sid}-g{session.gen + 1}", session.sid, session.gen + 1, "rk", 1, 2)
        return Rotate(new, NOW + session.gen + 1)
    return Replay(NOW)


def _never(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
    raise AssertionError("a refused subject must not be decided on")


async def test_an_enabled_user_refreshes_as_without_the_check(store: Backend) -> None:
    """The check passes for a user of the store that is not disabled: the refresh is what it is without."""
    head = await _started(store)
    await store.add_user(UserRecord("alice", "hash", NOW))
    outcome = await store.refresh("s1", head.jti, _rotate, user="alice")
    assert isinstance(outcome.decision, Rotate)
    assert outcome.session is not None
    assert outcome.session.head_jti == "s1-g1"
    replay = await store.refresh("s1", head.jti, _rotate, user="alice")
    assert isinstance(replay.decision, Replay)


@pytest.mark.parametrize("user", ["nobody", "carol"])
async def test_a_user_gone_or_disabled_is_refused_before_any_decision(store: Backend, user: str) -> None:
    """A user the store does not hold, or holds disabled, is refused; the session is left as it was."""
    head = await _started(store, sub=user)
    await store.add_user(UserRecord("carol", "hash", NOW, disabled=True))
    await store.add_user(UserRecord("alice", "hash", NOW))  # another user is no answer for this one
    before = await store.get_session("s1")
    outcome = await store.refresh("s1", head.jti, _never, user=user)
    assert outcome.decision == SubjectRefused(user)
    assert (outcome.session, outcome.head) == (None, None)
    assert await store.get_session("s1") == before


async def test_disabling_and_enabling_reach_the_next_refresh(store: Backend) -> None:
    """The check reads the user as it is at the refresh: no answer is kept from an earlier one."""
    head = await _started(store)
    await store.add_user(UserRecord("alice", "hash", NOW))
    await store.update_user("alice", disabled=True)
    assert isinstance((await store.refresh("s1", head.jti, _never, user="alice")).decision, SubjectRefused)
    await store.update_user("alice", disabled=False)
    assert isinstance((await store.refresh("s1", head.jti, _rotate, user="alice")).decision, Rotate)


async def test_a_missing_session_is_decided_whatever_the_user(store: Backend) -> None:
    """No session: ``decide`` answers (``session_revoked``), as without the check; there is nothing to end."""
    seen: list[SessionRecord | None] = []

    def decide(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
        seen.append(session)
        return Replay(NOW)

    outcome = await store.refresh("missing", "j", decide, user="nobody")
    assert outcome.decision == Replay(NOW)
    assert seen == [None]


async def test_the_takes_come_before_the_check(store: Backend) -> None:
    """A refused take stops the refresh before the user is read; a take that passes stands when the user is
    then refused (the caller revokes: a refusal never revokes)."""
    head = await _started(store, sub="nobody")
    limit = RateLimit(1, 600)
    take = RateLimitTake("refresh_per_session:s1", limit, NOW)
    outcome = await store.refresh("s1", head.jti, _never, [take], user="nobody")
    assert outcome.decision == SubjectRefused("nobody")
    assert not (await store.rate_limit_take(take.key, limit, NOW)).allowed  # it was taken
    limited = await store.refresh("s1", head.jti, _never, [take], user="nobody")
    assert isinstance(limited.decision, Limited)


async def test_concurrent_refreshes_with_the_check_converge(backend: BackendUnderTest) -> None:
    """Many refreshes of one token with the check, from several stores at once: one rotation, the rest
    replays (the check changes nothing of the race)."""
    stores = [backend.new_store() for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        head = await _started(stores[0])
        await stores[0].add_user(UserRecord("alice", "hash", NOW))
        outcomes = await asyncio.gather(
            *(stores[i % 4].refresh("s1", head.jti, _rotate, user="alice") for i in range(40))
        )
        kinds = [type(o.decision) for o in outcomes]
        assert kinds.count(Rotate) == 1
        assert kinds.count(Replay) == 39
        assert not any(isinstance(o.decision, (Reject, SubjectRefused)) for o in outcomes)
    finally:
        for store in stores:
            await store.close()


async def test_the_service_lets_its_own_store_check_the_built_in_users(
    store: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the built-in users of its own store as the subject check, a refresh asks the store once (no
    ``get_user`` of its own); a user disabled behind the directory's back loses the session at its next
    refresh (``subject_disabled``), and a subject check elsewhere is still asked on its own."""
    t = await testing.make_service(store=store, check_subjects=True)
    await t.users.add("alice", "correct horse")
    pair = await t.service.start("alice")
    asked: list[str] = []
    get_user = store.get_user

    async def counted(username: str) -> UserRecord | None:
        asked.append(username)
        return await get_user(username)

    monkeypatch.setattr(store, "get_user", counted)
    pair = await t.service.refresh(pair.refresh_token)
    assert asked == []
    await store.update_user("alice", disabled=True)  # not set_disabled: that would end the session itself
    with pytest.raises(SessionRevoked, match="subject may no longer hold"):
        await t.service.refresh(pair.refresh_token)
    session = await store.get_session(pair.session_id)
    assert session is not None
    assert (session.state, session.revoked_reason) == ("revoked", "subject_disabled")
    assert asked == []

    # A directory over another store: asked on its own, as any application's check is.
    elsewhere = MemoryStore()
    monkeypatch.setattr(elsewhere, "get_user", counted)  # answers from this store's users
    t.service.subject_check = UserDirectory(elsewhere, hasher=testing.fast_hasher())
    await store.update_user("alice", disabled=False)
    second = await t.service.start("alice")
    assert (await t.service.refresh(second.refresh_token)).session_id == second.session_id
    assert asked == ["alice"]
