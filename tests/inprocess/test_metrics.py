"""``GET /metrics``: the token service's Prometheus series move with what the service does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyturn.clock import FrozenClock
from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.testing import fast_hasher, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime(anyio_backend: str) -> AsyncIterator[Runtime]:
    settings = make_settings(grace_period=0, rate_limit_refresh_per_session="3/3600")
    rt = await open_runtime(settings, hasher=fast_hasher(), subject_check=None)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    async with (
        app.router.lifespan_context(app),  # ASGITransport does not run the lifespan itself
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keyturn.test") as client,
    ):
        yield client


async def samples(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/refresh", json={"refresh_token": token})


async def test_the_series_count_what_the_service_did(runtime: Runtime, http: httpx.AsyncClient) -> None:
    before = await samples(http)
    assert before[("keyturn_refresh_duration_seconds_count", ())] == 0

    first = await runtime.sessions.start("alice")
    second = await runtime.sessions.start("bob")
    rotated = (await refresh(http, first.refresh_token)).json()["refresh_token"]
    assert (await refresh(http, first.refresh_token)).json()["error"] == "refresh_token_reused"  # no grace
    assert (await refresh(http, rotated)).json()["error"] == "session_revoked"
    assert (await refresh(http, "not-a-token")).json()["error"] == "token_invalid"
    token = second.refresh_token
    for _ in range(3):
        token = (await refresh(http, token)).json()["refresh_token"]
    limited = await refresh(http, token)
    assert limited.status_code == 429
    logout = await http.post(
        "/auth/logout", headers={"Authorization": f"Bearer {second.access_token}"}, json={}
    )
    assert logout.status_code == 200

    after = await samples(http)
    assert after[("keyturn_sessions_started_total", ())] == 2
    assert after[("keyturn_refresh_total", (("outcome", "ok"),))] == 4
    assert after[("keyturn_refresh_total", (("outcome", "refresh_token_reused"),))] == 1
    assert after[("keyturn_refresh_total", (("outcome", "session_revoked"),))] == 1
    assert after[("keyturn_refresh_total", (("outcome", "token_invalid"),))] == 1
    assert after[("keyturn_refresh_total", (("outcome", "rate_limited"),))] == 1
    assert after[("keyturn_refresh_duration_seconds_count", ())] == 8
    assert after[("keyturn_rotations_total", ())] == 4
    assert after[("keyturn_reuse_detected_total", ())] == 1
    assert after[("keyturn_sessions_revoked_total", (("reason", "reuse"),))] == 1
    assert after[("keyturn_sessions_revoked_total", (("reason", "logout"),))] == 1
    assert after[("keyturn_rate_limit_hits_total", (("limit", "refresh_per_session"),))] == 1


async def test_no_session_subject_or_address_is_a_label(runtime: Runtime, http: httpx.AsyncClient) -> None:
    pair = await runtime.sessions.start("carol")
    await refresh(http, pair.refresh_token)
    text = (await http.get("/metrics")).text
    assert "carol" not in text
    assert pair.session_id not in text
    assert "127.0.0.1" not in text


async def test_every_replay_and_reuse_is_counted_with_its_cause(anyio_backend: str) -> None:
    """What the session knew of each token: a copy at once (concurrent), a retry later in the grace
    period, the token just before the head past it (late), one two generations behind (stale)."""
    clock = FrozenClock()
    settings = make_settings(grace_period=10)
    rt = await open_runtime(settings, clock=clock, hasher=fast_hasher(), subject_check=None)
    try:
        app = create_app(runtime=rt)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://keyturn.test") as http,
        ):
            first = (await rt.sessions.start("alice")).refresh_token
            second = (await refresh(http, first)).json()["refresh_token"]
            assert (await refresh(http, first)).json()["refresh_token"] == second  # at once: concurrent
            clock.advance(5)
            assert (await refresh(http, first)).json()["refresh_token"] == second  # later: a retry
            clock.advance(6)
            assert (await refresh(http, first)).json()["error"] == "refresh_token_reused"  # late

            older = (await rt.sessions.start("bob")).refresh_token
            token = older
            for _ in range(2):
                token = (await refresh(http, token)).json()["refresh_token"]
            clock.advance(11)
            assert (await refresh(http, older)).json()["error"] == "refresh_token_reused"  # stale

            after = await samples(http)
    finally:
        await rt.close()
    causes = {
        labels: value for (name, labels), value in after.items() if name == "keyturn_refresh_causes_total"
    }
    assert causes == {
        (("cause", "concurrent"), ("decision", "replay")): 1,
        (("cause", "retry"), ("decision", "replay")): 1,
        (("cause", "late"), ("decision", "reuse")): 1,
        (("cause", "stale"), ("decision", "reuse")): 1,
    }
    assert after[("keyturn_replays_total", ())] == 2
    assert after[("keyturn_reuse_detected_total", ())] == 2
