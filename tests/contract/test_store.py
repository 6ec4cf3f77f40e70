"""The store contract, called directly, on every backend: sessions, revocations, pruning, keys, users."""

from __future__ import annotations

import dataclasses

import pytest

from keyturn.keys import MasterKey, new_access_key, new_refresh_key
from keyturn.typing import Backend, RefreshRecord, SessionRecord, UserRecord

from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
MASTER = MasterKey("a master secret for the sqlite tests")


def session(
    sid: str = "s1", sub: str = "alice", *, created: float = NOW, lifetime: float = 1000
) -> SessionRecord:
    return SessionRecord(
        sid=sid,
        sub=sub,
        created_at=created,
        absolute_expires_at=created + lifetime,
        head_jti=f"{sid}-jti0",
        gen=0,
        last_seen_at=created,
        user_agent="pytest",
        ip="192.0.2.1",
        client_id="web",
        claims={"role": "admin", "tags": ["a", "b"], "n": 1},
    )


def head_of(record: SessionRecord, *, expires_in: int = 500) -> RefreshRecord:
    return RefreshRecord(
        jti=record.head_jti,
        sid=record.sid,
        gen=0,
        kid="rk1",
        issued_at=int(record.created_at),
        expires_at=int(record.created_at) + expires_in,
    )


async def add(store: Backend, record: SessionRecord) -> SessionRecord:
    await store.create_session(record, head_of(record))
    return record


# -- sessions ----------------------------------------------------------------------------------------


async def test_created_session_reads_back_field_for_field(store: Backend) -> None:
    """Whatever the service stores (claims and client metadata included) must come back unchanged."""
    record = await add(store, session())

    assert await store.get_session("s1") == record
    assert await store.get_session("missing") is None


async def test_duplicate_session_id_is_refused_and_changes_nothing(store: Backend) -> None:
    """Two sessions with one id would share a refresh chain; the write is refused whole."""
    await add(store, session())
    clash = dataclasses.replace(session(sub="mallory"), head_jti="other-jti")

    with pytest.raises(ValueError, match="exists"):
        await store.create_session(clash, head_of(clash))

    assert (await store.get_session("s1")) == session()
    assert await store.list_sessions("mallory") == []


async def test_list_sessions_by_subject_hides_revoked_unless_asked(store: Backend) -> None:
    """A user's session list shows live sessions; audits can ask for ended ones too."""
    await add(store, session("s1", created=NOW))
    await add(store, session("s2", created=NOW + 1))
    await add(store, session("s3", sub="bob"))
    await store.revoke_session("s1", "logout", NOW + 5, NOW + 100)

    assert [s.sid for s in await store.list_sessions("alice")] == ["s2"]
    assert [s.sid for s in await store.list_sessions("alice", include_revoked=True)] == ["s1", "s2"]
    assert {s.sid for s in await store.list_all_sessions()} == {"s2", "s3"}
    assert {s.sid for s in await store.list_all_sessions(include_revoked=True)} == {"s1", "s2", "s3"}


async def test_revoke_session_marks_it_and_feeds_the_revocation_list(store: Backend) -> None:
    """Revocation must reach validators through the feed, with the reason kept for the user."""
    await add(store, session())

    assert await store.revoke_session("s1", "logout", NOW + 5, NOW + 100) is True
    assert await store.revoke_session("s1", "logout", NOW + 6, NOW + 100) is False
    assert await store.revoke_session("missing", "logout", NOW + 6, NOW + 100) is False

    revoked = await store.get_session("s1")
    assert revoked is not None
    assert (revoked.state, revoked.revoked_reason, revoked.revoked_at) == ("revoked", "logout", NOW + 5)
    feed = await store.revocations_since(0, NOW + 5)
    assert [(r.kind, r.value, r.expires_at) for r in feed] == [("sid", "s1", NOW + 100)]


async def test_revoke_subject_ends_every_active_session_of_that_subject_only(store: Backend) -> None:
    """Logout-all and password changes must not miss a session, nor touch someone else's."""
    for record in (session("s1"), session("s2"), session("s3", sub="bob")):
        await add(store, record)
    await store.revoke_session("s2", "logout", NOW, NOW + 100)

    sids = await store.revoke_subject("alice", "password_changed", NOW + 1, NOW + 100)

    assert sids == ["s1"]
    s1, s3 = await store.get_session("s1"), await store.get_session("s3")
    assert s1 is not None
    assert s3 is not None
    assert (s1.state, s1.revoked_reason) == ("revoked", "password_changed")
    assert s3.state == "active"


# -- revocations ---------------------------------------------------------------------------------------


async def test_revocations_since_is_ordered_filtered_and_limited(store: Backend) -> None:
    """Validators poll with their last sequence number; they must get each entry once, in order."""
    for sid in ("s1", "s2", "s3"):
        await add(store, session(sid))
        await store.revoke_session(sid, "revoked", NOW, NOW + 100)
    await store.revoke_access_token("jti-x", NOW + 10)

    everything = await store.revocations_since(0, NOW)
    seqs = [r.seq for r in everything]
    assert [(r.kind, r.value) for r in everything] == [
        ("sid", "s1"),
        ("sid", "s2"),
        ("sid", "s3"),
        ("jti", "jti-x"),
    ]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert [r.value for r in await store.revocations_since(seqs[1], NOW)] == ["s3", "jti-x"]
    assert [r.value for r in await store.revocations_since(0, NOW, limit=2)] == ["s1", "s2"]
    assert [r.value for r in await store.revocations_since(0, NOW + 50)] == [
        "s1",
        "s2",
        "s3",
    ]  # jti-x expired


async def test_access_token_revocation_is_recorded_once_and_expires(store: Backend) -> None:
    """A revoked access token is refused until it could no longer be valid anyway."""
    await store.revoke_access_token("jti-x", NOW + 10)
    await store.revoke_access_token("jti-x", NOW + 10)

    assert await store.is_access_token_revoked("jti-x", NOW) is True
    assert await store.is_access_token_revoked("jti-x", NOW + 10) is False
    assert await store.is_access_token_revoked("other", NOW) is False
    assert len(await store.revocations_since(0, NOW)) == 1


async def test_prune_removes_only_what_has_expired(store: Backend) -> None:
    """Nothing may grow without bound, and nothing still valid may go."""
    await add(store, session("old", lifetime=100))
    await add(store, session("live", lifetime=10_000))
    await store.revoke_session("old", "logout", NOW, NOW + 50)
    await store.revoke_access_token("jti-x", NOW + 5000)

    removed = await store.prune(NOW + 200)

    assert removed == 2  # the old session (its refresh chain within it), its revocation entry
    assert await store.get_session("old") is None
    assert await store.get_session("live") is not None
    assert [r.value for r in await store.revocations_since(0, NOW + 200)] == ["jti-x"]
    assert await store.prune(NOW + 200) == 0


# -- keys ------------------------------------------------------------------------------------------------


async def test_ensure_keys_adds_missing_keys_and_never_a_second_active_one(store: Backend) -> None:
    """Several processes starting at once must all end up on one key set, not one each."""
    first = [new_access_key("ES256", MASTER, NOW), new_refresh_key(MASTER, NOW)]
    second = [new_access_key("ES256", MASTER, NOW + 1), new_refresh_key(MASTER, NOW + 1)]

    kept = await store.ensure_keys(first)
    again = await store.ensure_keys(second)

    assert {k.kid for k in kept} == {k.kid for k in again} == {k.kid for k in first}
    assert kept == first
    assert await store.list_keys() == first


async def test_ensure_keys_adds_a_key_for_a_newly_chosen_algorithm(store: Backend) -> None:
    """Switching the access algorithm needs a key of that algorithm next to the old one."""
    es256 = new_access_key("ES256", MASTER, NOW)
    eddsa = new_access_key("EdDSA", MASTER, NOW + 1)
    await store.ensure_keys([es256, new_refresh_key(MASTER, NOW)])

    keys = await store.ensure_keys([eddsa])

    assert [(k.use, k.alg) for k in keys if k.use == "access"] == [("access", "ES256"), ("access", "EdDSA")]


# -- users -----------------------------------------------------------------------------------------------


async def test_users_add_get_update_and_list(store: Backend) -> None:
    """The built-in user store: names are unique, updates touch only what they name."""
    alice = UserRecord("alice", "hash-1", NOW)

    assert await store.add_user(alice) is True
    assert await store.add_user(UserRecord("alice", "hash-2", NOW + 1)) is False
    assert await store.get_user("alice") == alice
    assert await store.get_user("nobody") is None

    assert await store.update_user("alice", disabled=True) is True
    assert await store.get_user("alice") == dataclasses.replace(alice, disabled=True)
    assert await store.update_user("alice", password_hash="hash-3") is True
    assert await store.get_user("alice") == UserRecord("alice", "hash-3", NOW, disabled=True)
    assert await store.update_user("alice", disabled=False) is True
    assert await store.update_user("nobody", disabled=True) is False

    await store.add_user(UserRecord("aaron", "h", NOW))
    assert [u.username for u in await store.list_users()] == ["aaron", "alice"]


async def test_data_survives_closing_and_reopening(backend: BackendUnderTest) -> None:
    """A restart must find every session and user again."""
    if backend.name == "memory":
        pytest.skip("memory:// keeps nothing past its store, by design")
    first = backend.new_store()
    await first.open()
    record = await add(first, session())
    await first.add_user(UserRecord("alice", "h", NOW))
    await first.close()

    second = backend.new_store()
    await second.open()
    try:
        assert await second.get_session("s1") == record
        assert await second.get_user("alice") is not None
    finally:
        await second.close()


async def test_added_keys_are_kept_beside_the_old_ones_in_creation_order(store: Backend) -> None:
    """A rotation adds keys; the old ones must stay to verify tokens they signed."""
    first = await store.ensure_keys([new_access_key("ES256", MASTER, NOW), new_refresh_key(MASTER, NOW)])
    rotated = [new_access_key("ES256", MASTER, NOW + 10), new_refresh_key(MASTER, NOW + 10)]

    await store.add_keys(rotated)

    assert await store.list_keys() == [*first, *rotated]
    with pytest.raises(ValueError, match="exists"):
        await store.add_keys([rotated[0]])
    assert await store.list_keys() == [*first, *rotated]
