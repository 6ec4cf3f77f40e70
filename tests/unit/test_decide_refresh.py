"""keyturn.sessions.decide_refresh: the pure rotate / replay / reuse / reject decision."""

from __future__ import annotations

import dataclasses

import pytest

from keyturn.errors import RefreshTokenExpired, SessionExpired, SessionRevoked, TokenInvalid
from keyturn.sessions import RefreshPolicy, decide_refresh
from keyturn.tokens import RefreshClaims
from keyturn.typing import RefreshDecision, RefreshRecord, Reject, Replay, Reuse, Rotate, SessionRecord

NOW = 1_800_000_000.0
START = 1_799_000_000
ROTATED_AT = NOW - 10
POLICY = RefreshPolicy(refresh_idle_lifetime=1000, grace_period=30, leeway=30, revocation_lifetime=930)

SESSION = SessionRecord(
    sid="sid-1",
    sub="alice",
    created_at=START,
    absolute_expires_at=START + 2_000_000,
    head_jti="jti-head",
    gen=3,
    last_seen_at=START,
)
HEAD = RefreshRecord(
    jti="jti-head", sid="sid-1", gen=3, kid="k1", issued_at=int(NOW) - 10, expires_at=int(NOW) + 990
)
OLD = RefreshRecord(
    jti="jti-old",
    sid="sid-1",
    gen=2,
    kid="k1",
    issued_at=int(NOW) - 100,
    expires_at=int(NOW) + 900,
    rotated_at=ROTATED_AT,
)


def claims_of(record: RefreshRecord, sub: str = "alice") -> RefreshClaims:
    return RefreshClaims(
        sub, record.sid, record.jti, record.gen, record.issued_at, record.expires_at, record.kid
    )


def decide(
    session: SessionRecord | None,
    presented: RefreshRecord | None,
    claims: RefreshClaims,
    now: float = NOW,
) -> RefreshDecision:
    return decide_refresh(session, presented, claims, now, POLICY, new_jti="jti-new", new_kid="k2")


def test_head_token_rotates_to_a_new_head_one_generation_on() -> None:
    """Presenting the head must produce exactly the successor the store will make current."""
    decision = decide(SESSION, HEAD, claims_of(HEAD))

    assert decision == Rotate(
        new_head=RefreshRecord(
            jti="jti-new", sid="sid-1", gen=4, kid="k2", issued_at=int(NOW), expires_at=int(NOW) + 1000
        ),
        now=NOW,
    )


def test_rotation_caps_the_new_expiry_at_the_absolute_end() -> None:
    """Sliding expiry must never carry a token past the session's absolute lifetime."""
    near_end = SESSION.absolute_expires_at - 10.0
    head = dataclasses.replace(HEAD, expires_at=int(near_end) + 500)

    decision = decide(SESSION, head, claims_of(head), now=near_end)

    assert isinstance(decision, Rotate)
    assert decision.new_head.expires_at == SESSION.absolute_expires_at


def test_rotated_token_inside_grace_replays() -> None:
    """An earlier token rotated moments ago is a retry or a second tab, not a theft."""
    assert decide(SESSION, OLD, claims_of(OLD)) == Replay(now=NOW)


def test_rotated_token_at_exactly_the_grace_period_replays() -> None:
    """The grace boundary is inclusive."""
    now = ROTATED_AT + 30

    assert decide(SESSION, OLD, claims_of(OLD), now=now) == Replay(now=now)


def test_rotated_token_past_grace_is_reuse_with_a_revocation_expiry() -> None:
    """Past the grace period an old token means two parties hold the chain: revoke."""
    now = ROTATED_AT + 31

    assert decide(SESSION, OLD, claims_of(OLD), now=now) == Reuse(now=now, revocation_expires_at=now + 930)


@pytest.mark.parametrize(
    "presented",
    [
        None,
        dataclasses.replace(OLD, rotated_at=None),
        dataclasses.replace(OLD, sid="another-session"),
    ],
    ids=["unknown-jti", "never-rotated", "record-of-another-session"],
)
def test_non_head_token_without_a_fresh_rotation_of_this_session_is_reuse(
    presented: RefreshRecord | None,
) -> None:
    """Only a genuine earlier generation of this very session may replay; anything else is reuse."""
    decision = decide(SESSION, presented, claims_of(OLD))

    assert decision == Reuse(now=NOW, revocation_expires_at=NOW + 930)


@pytest.mark.parametrize(
    "session",
    [None, dataclasses.replace(SESSION, state="revoked", revoked_reason="logout", revoked_at=NOW - 5)],
    ids=["missing", "revoked"],
)
def test_missing_or_revoked_session_rejects_with_session_revoked(session: SessionRecord | None) -> None:
    """A session that is gone stays gone, whichever token is shown."""
    decision = decide(session, HEAD, claims_of(HEAD))

    assert isinstance(decision, Reject)
    assert type(decision.error) is SessionRevoked


def test_token_of_another_subject_is_rejected_as_invalid() -> None:
    """A token whose subject differs from its session's is forged or corrupt, never honoured."""
    decision = decide(SESSION, HEAD, claims_of(HEAD, sub="mallory"))

    assert isinstance(decision, Reject)
    assert type(decision.error) is TokenInvalid


def test_past_the_absolute_end_rejects_with_session_expired() -> None:
    """The absolute end has no leeway and beats every other branch, the head included."""
    decision = decide(SESSION, HEAD, claims_of(HEAD), now=SESSION.absolute_expires_at)

    assert isinstance(decision, Reject)
    assert type(decision.error) is SessionExpired


def test_expired_token_rejects_with_refresh_token_expired_and_changes_nothing() -> None:
    """An idle token is refused before any rotate/replay/reuse branch can act on it."""
    for record in (HEAD, OLD):
        decision = decide(SESSION, record, claims_of(record), now=record.expires_at + 31)

        assert isinstance(decision, Reject)
        assert type(decision.error) is RefreshTokenExpired


def test_expired_token_within_leeway_still_rotates() -> None:
    """Leeway applies to the refresh token's own expiry."""
    decision = decide(SESSION, HEAD, claims_of(HEAD), now=HEAD.expires_at + 30)

    assert isinstance(decision, Rotate)


def test_decision_is_a_pure_value() -> None:
    """Same inputs, same decision: the stores may call it inside a retried transaction."""
    first = decide(SESSION, HEAD, claims_of(HEAD))
    second = decide(SESSION, HEAD, claims_of(HEAD))

    assert first == second


# -- DPoP (RFC 9449): a session bound to a key --------------------------------------------------------

BOUND = dataclasses.replace(SESSION, jkt="thumb-1")


def decide_with(
    session: SessionRecord, presented: RefreshRecord | None, claims: RefreshClaims, jkt: str | None
) -> RefreshDecision:
    return decide_refresh(session, presented, claims, NOW, POLICY, new_jti="jti-new", new_kid="k2", jkt=jkt)


@pytest.mark.parametrize("jkt", [None, "thumb-2"])
@pytest.mark.parametrize(
    ("presented", "now"),
    [(HEAD, NOW), (OLD, NOW), (OLD, ROTATED_AT + 3600), (None, NOW)],
    ids=["head", "old in grace", "old past grace", "unknown"],
)
def test_a_bound_session_refuses_any_token_without_its_key_and_changes_nothing(
    presented: RefreshRecord | None, now: float, jkt: str | None
) -> None:
    """Neither a rotation nor a reuse: a copy without the key must not move or end the real session."""
    claims = claims_of(presented or dataclasses.replace(HEAD, jti="jti-made-up"))
    decision = decide_refresh(BOUND, presented, claims, now, POLICY, new_jti="jti-new", new_kid="k2", jkt=jkt)
    assert isinstance(decision, Reject)
    assert decision.error.code == "refresh_token_bound"


def test_a_bound_session_rotates_with_a_proof_of_its_key() -> None:
    assert isinstance(decide_with(BOUND, HEAD, claims_of(HEAD), "thumb-1"), Rotate)
    assert isinstance(decide_with(BOUND, OLD, claims_of(OLD), "thumb-1"), Replay)


def test_an_unbound_session_ignores_a_proofs_key() -> None:
    assert isinstance(decide_with(SESSION, HEAD, claims_of(HEAD), "thumb-1"), Rotate)
