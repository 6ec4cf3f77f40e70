"""The Python client with a DPoP key (RFC 9449) against the real service: its sessions are bound to the key,
refresh with proofs, follow the service's nonces; a copy of the refresh token without the key is refused
(``refresh_token_bound``) every time and the real session goes on."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keyturn.client import DpopKey, FileTokenStore, KeyturnAuth, TokenManager

from ._client_live import Harness, LiveService, live_service

LIFETIME = 900  # the service's access-token lifetime: past it, the next access_token() refreshes


def bound_key(live: LiveService, manager: TokenManager) -> str | None:
    tokens = manager.tokens
    assert tokens is not None
    assert tokens.session_id is not None
    session = live.call(lambda rt: rt.store.get_session(tokens.session_id or ""))
    assert session is not None
    assert session.state == "active"
    return session.jkt


def refresh_by_hand(live: LiveService, token: str, proof: str | None = None) -> httpx.Response:
    headers = {} if proof is None else {"DPoP": proof}
    return live.raw("POST", "/auth/refresh", json={"refresh_token": token}, headers=headers)


def test_a_session_started_with_a_key_is_bound_and_refreshes_with_proofs(h: Harness) -> None:
    key = DpopKey.generate()
    manager = h.manager(dpop=key)
    first = h.login(manager)
    assert bound_key(h.live, manager) == key.thumbprint
    for _ in range(3):
        h.advance(LIFETIME)
        manager.access_token()
    tokens = manager.tokens
    assert tokens is not None
    assert tokens.refresh_token != first.refresh_token
    assert h.live.refreshes() == 3
    assert h.ended == []


def test_a_session_started_without_a_key_is_not_bound(h: Harness) -> None:
    manager = h.manager()
    h.login(manager)
    assert bound_key(h.live, manager) is None


def test_a_copied_refresh_token_without_the_key_is_refused_and_the_session_goes_on(h: Harness) -> None:
    manager = h.manager(dpop=True)
    h.login(manager)
    for round_ in range(3):
        tokens = manager.tokens
        assert tokens is not None
        stolen = tokens.refresh_token
        thief = DpopKey.generate()
        url = h.live.url + "/auth/refresh"
        for answer in (
            refresh_by_hand(h.live, stolen),
            refresh_by_hand(h.live, stolen, thief.proof("POST", url, now=h.clock.now())),
            refresh_by_hand(h.live, stolen, thief.proof("POST", url, now=h.clock.now())),
        ):
            assert answer.status_code == 401, round_
            assert answer.json()["error"] == "refresh_token_bound"
            assert answer.headers["www-authenticate"].startswith("DPoP ")
        h.advance(LIFETIME)
        manager.access_token()  # the real client refreshes: its session was neither rotated nor revoked
        assert manager.tokens is not None
        assert manager.tokens.refresh_token != stolen
    assert h.ended == []
    assert manager.state == "active"


def test_a_rotated_copy_without_the_key_is_not_judged_reuse(h: Harness) -> None:
    """Reuse detection would end the real user's session: a copy without the key must not reach it."""
    manager = h.manager(dpop=True)
    old = h.login(manager).refresh_token
    h.advance(LIFETIME)
    manager.access_token()
    h.advance(120)  # past the grace period: the old token is reuse if it gets that far
    answer = refresh_by_hand(h.live, old)
    assert (answer.status_code, answer.json()["error"]) == (401, "refresh_token_bound")
    h.advance(LIFETIME)
    manager.access_token()
    assert h.ended == []


def test_a_replayed_proof_is_refused(h: Harness) -> None:
    key = DpopKey.generate()
    manager = h.manager(dpop=key)
    h.login(manager)
    assert manager.tokens is not None
    proof = key.proof("POST", h.live.url + "/auth/refresh", now=h.clock.now())
    first = refresh_by_hand(h.live, manager.tokens.refresh_token, proof)
    assert first.status_code == 200
    again = refresh_by_hand(h.live, first.json()["refresh_token"], proof)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_dpop_proof")


def test_the_key_file_is_0600_beside_the_token_file_and_survives_a_restart(
    h: Harness, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    manager = h.manager(dpop=True, store=store)
    h.login(manager)
    key_file = tmp_path / "tokens.json.dpop.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert bound_key(h.live, manager) == DpopKey.from_file(key_file).thumbprint
    again = h.manager(dpop=True, store=FileTokenStore(tmp_path / "tokens.json"))  # a new process
    h.advance(LIFETIME)
    again.access_token()
    assert again.state == "active"
    assert h.ended == []


async def test_the_async_client_refreshes_a_bound_session(ah: Harness) -> None:
    manager = ah.manager(asynchronous=True, dpop=True)
    await manager.alogin(ah.live.username, ah.live.password)
    ah.advance(LIFETIME)
    await manager.aaccess_token()
    assert ah.live.refreshes() == 1
    assert ah.ended == []


@pytest.fixture(scope="module")
def strict() -> Iterator[LiveService]:
    with live_service(dpop="required", dpop_nonces=True) as live:
        yield live


def test_nonces_are_followed_and_required_mode_refuses_calls_without_proofs(strict: LiveService) -> None:
    h = Harness.on(strict)
    try:
        plain = strict.raw(
            "POST", "/auth/login", json={"username": strict.username, "password": strict.password}
        )
        assert (plain.status_code, plain.json()["error"]) == (400, "invalid_dpop_proof")
        manager = h.manager(dpop=True)
        h.login(manager)  # asked for the nonce once, then sent it
        assert strict.ctl.count("POST", "/auth/login") == 3  # the plain one, then without and with the nonce
        assert bound_key(strict, manager) is not None
        for _ in range(2):
            h.advance(LIFETIME)  # past the nonce's windows: the refresh is asked for a new one
            manager.access_token()
        assert h.ended == []
        assert strict.refreshes() == 4
        assert manager.tokens is not None
        no_nonce = DpopKey.generate().proof("POST", strict.url + "/auth/refresh", now=h.clock.now())
        answer = refresh_by_hand(strict, manager.tokens.refresh_token, no_nonce)
        assert (answer.status_code, answer.json()["error"]) == (400, "use_dpop_nonce")
        assert answer.headers["dpop-nonce"]
        bare = refresh_by_hand(strict, manager.tokens.refresh_token)
        assert (bare.status_code, bare.json()["error"]) == (400, "invalid_dpop_proof")
    finally:
        h.close()


@pytest.fixture(scope="module")
def no_leeway() -> Iterator[LiveService]:
    """Nonces asked for, ``LEEWAY=0``: a proof's iat may be ahead of the service's clock by its 5 s only."""
    with live_service(dpop="required", dpop_nonces=True, leeway=0) as live:
        yield live


def _iat(proof: str) -> int:
    payload = proof.split(".")[1]
    iat: int = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"]
    return iat


def test_a_proofs_iat_is_never_ahead_of_the_service_however_the_measuring_call_went(
    no_leeway: LiveService,
) -> None:
    """The login's proof with the nonce takes 13 s to reach the service (a queue, a busy machine) and its
    answer comes at once: the service read its clock for ``server_time`` at the end of the call, but the
    call's midpoint puts that 6.5 s earlier, so the measured offset runs 6.5 s ahead. Proofs dated by it
    were refused as from the future (past the service's 5 s here; with any allowance, some were: ``int()``
    of a time ahead). They take the least offset the call allows."""
    h = Harness.on(no_leeway)
    try:
        seen: list[tuple[str, int, float]] = []  # (path, the proof's iat, the service's time on arrival)
        manager = h.manager(dpop=True, max_wait=2.0)

        def on_the_way(request: httpx.Request) -> None:
            if request.url.path == "/auth/login" and len(seen) == 1:  # the second: with the nonce
                h.advance(13)  # both clocks: the true offset stays 0
            seen.append((request.url.path, _iat(request.headers["DPoP"]), no_leeway.clock.now()))

        h.faults.before_send = on_the_way
        h.login(manager)
        assert manager.clock_offset == pytest.approx(6.5)  # the midpoint, for scheduling
        for _ in range(2):
            h.advance(LIFETIME)  # past the nonce's windows too: each refresh is asked for a new one
            manager.access_token()
        assert no_leeway.refreshes() == 4
        assert h.ended == []
        assert manager.state == "active"
        assert [path for path, _, _ in seen].count("/auth/refresh") == 4
        assert all(iat <= now for _, iat, now in seen), seen
    finally:
        h.close()


def test_the_clock_offset_is_measured_on_the_call_that_brought_the_tokens_not_the_nonce_round_trip(
    no_leeway: LiveService,
) -> None:
    """The login's first proof, without a nonce, is answered ``use_dpop_nonce`` after 13 s, the second at
    once. The offset is measured on the second call alone (timed from when it left, its proof made): it
    stays 0, where timing from before the first call put it 6.5 s ahead (the service's time read at the
    end, the midpoint 6.5 s earlier), and refreshes would have been scheduled 6.5 s early."""
    h = Harness.on(no_leeway)
    try:
        logins: list[float] = []
        manager = h.manager(dpop=True, max_wait=2.0)

        def on_the_way(request: httpx.Request) -> None:
            if request.url.path == "/auth/login":
                if not logins:
                    h.advance(13)  # both clocks: the true offset stays 0
                logins.append(no_leeway.clock.now())

        h.faults.before_send = on_the_way
        h.login(manager)
        assert len(logins) == 2  # asked for the nonce, then sent it
        assert manager.clock_offset == pytest.approx(0, abs=0.5)
        assert h.ended == []
    finally:
        h.close()


@pytest.fixture(scope="module")
def bound_access() -> Iterator[LiveService]:
    with live_service(dpop_bind_access_tokens=True) as live:
        yield live


def test_bound_access_tokens_reach_auth_me_with_proofs_only(bound_access: LiveService) -> None:
    """The service's own /auth/me takes a bound token as ``DPoP`` with a proof, and refuses it as Bearer."""
    h = Harness.on(bound_access)
    try:
        manager = h.manager(dpop=True)
        h.login(manager)
        with httpx.Client(base_url=bound_access.url, auth=KeyturnAuth(manager), timeout=30) as http:
            me = http.get("/auth/me")
        assert me.status_code == 200, me.text
        assert me.request.headers["Authorization"].startswith("DPoP ")
        assert manager.tokens is not None
        token = manager.tokens.access_token
        as_bearer = bound_access.raw("GET", "/auth/me", headers={"Authorization": f"Bearer {token}"})
        replayed = bound_access.raw(
            "GET", "/auth/me", headers={"Authorization": f"DPoP {token}", "DPoP": me.request.headers["DPoP"]}
        )
        for refused in (as_bearer, replayed):
            assert (refused.status_code, refused.json()["error"]) == (401, "invalid_dpop_proof")
    finally:
        h.close()


def test_with_dpop_off_a_session_started_with_a_proof_is_not_bound() -> None:
    with live_service(dpop="off") as off:
        h = Harness.on(off)
        try:
            manager = h.manager(dpop=True)
            h.login(manager)
            assert bound_key(off, manager) is None
            h.advance(LIFETIME)
            manager.access_token()
            assert h.ended == []
        finally:
            h.close()
