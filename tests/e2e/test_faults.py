"""The fault-injecting proxy (``_faults.py``) before a real ``keyturn serve``: each fault does what it says.

Whether a refresh reached the server is read from the server itself: ``last_seen_at`` of the session
(``GET /auth/me``, asked directly, not through the proxy) moves on a rotation and on nothing else.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._faults import Faults, HttpFaultProxy, http_fault_proxy
from ._http import assert_error, fp, jwt_parts, login, me, refresh, refreshed, why
from ._server import Cluster, cluster, start_server, stop_server

REFRESH = ("/auth/refresh",)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("faults") / "data", 1) as group:
        yield group


@pytest.fixture
def proxy(service: Cluster) -> Iterator[HttpFaultProxy]:
    with http_fault_proxy(service.server.url) as started:
        yield started


@pytest.fixture
def direct(service: Cluster) -> Iterator[httpx.Client]:
    """A client that talks to the server itself, to look behind the proxy."""
    with service.server.client() as http:
        yield http


@pytest.fixture
def via(proxy: HttpFaultProxy) -> Iterator[httpx.Client]:
    """A keep-alive client that talks to the server through the proxy."""
    with httpx.Client(base_url=proxy.url, timeout=30) as http:
        yield http


def last_seen(direct: httpx.Client, access_token: str) -> float:
    """When the session last rotated (or started), as the server has it."""
    answer = me(direct, access_token)
    assert answer.status_code == 200, why(answer)
    seen: float = answer.json()["session"]["last_seen_at"]
    return seen


def gen(refresh_token: str) -> int:
    generation: int = jwt_parts(refresh_token)[1]["gen"]
    return generation


def test_passes_requests_and_answers_through_on_one_connection(
    service: Cluster, proxy: HttpFaultProxy, via: httpx.Client
) -> None:
    pair = login(via, service.username, service.password)
    assert me(via, pair["access_token"]).json()["subject"] == service.username
    new = refreshed(via, pair["refresh_token"])
    assert_error(via.get("/auth/nowhere"), 404, "invalid_request")

    assert gen(new["refresh_token"]) == 1
    assert proxy.counts() == Counter(connections=1, requests=4, forwarded=4)
    assert [path for _, path, _ in proxy.history()] == [
        "/auth/login",
        "/auth/me",
        "/auth/refresh",
        "/auth/nowhere",
    ]


def test_drop_before_never_reaches_the_server(
    service: Cluster, proxy: HttpFaultProxy, via: httpx.Client, direct: httpx.Client
) -> None:
    pair = login(direct, service.username, service.password)
    started = last_seen(direct, pair["access_token"])
    proxy.inject("drop_before", paths=REFRESH)

    assert me(via, pair["access_token"]).status_code == 200  # not on the path: forwarded
    with pytest.raises(httpx.TransportError):
        refresh(via, pair["refresh_token"])
    assert last_seen(direct, pair["access_token"]) == started  # no rotation happened

    new = refreshed(via, pair["refresh_token"])  # the injection is spent: the same token now rotates
    assert gen(new["refresh_token"]) == 1
    assert last_seen(direct, pair["access_token"]) > started
    assert proxy.history()[-2:] == [
        ("POST", "/auth/refresh", "drop_before"),
        ("POST", "/auth/refresh", "forwarded"),
    ]
    assert proxy.counts()["drop_before"] == 1


def test_drop_after_loses_the_response_of_a_refresh_that_happened(
    service: Cluster, proxy: HttpFaultProxy, via: httpx.Client, direct: httpx.Client
) -> None:
    pair = login(direct, service.username, service.password)
    started = last_seen(direct, pair["access_token"])
    proxy.inject("drop_after", paths=REFRESH)

    with pytest.raises(httpx.TransportError):
        refresh(via, pair["refresh_token"])
    rotated = last_seen(direct, pair["access_token"])
    assert rotated > started  # the server rotated the token; the client never saw the new one

    # The old token is now answered from the grace period with that same new token, byte for byte.
    first = refreshed(direct, pair["refresh_token"])
    again = refreshed(via, pair["refresh_token"])
    assert gen(first["refresh_token"]) == 1
    assert fp(again["refresh_token"]) == fp(first["refresh_token"])
    assert last_seen(direct, pair["access_token"]) == rotated  # replays, no second rotation
    assert gen(refreshed(via, first["refresh_token"])["refresh_token"]) == 2
    assert proxy.counts()["drop_after"] == 1


def test_status_bursts_answer_without_forwarding(
    service: Cluster, proxy: HttpFaultProxy, via: httpx.Client, direct: httpx.Client
) -> None:
    pair = login(direct, service.username, service.password)
    started = last_seen(direct, pair["access_token"])
    proxy.inject("status_503", times=3, paths=REFRESH)
    proxy.inject("status_429", times=2, paths=REFRESH)

    for _ in range(3):
        assert_error(refresh(via, pair["refresh_token"]), 503, "server_error")
    for _ in range(2):
        answer = refresh(via, pair["refresh_token"])
        assert_error(answer, 429, "rate_limited")
        assert answer.headers["retry-after"] == "1"
    assert last_seen(direct, pair["access_token"]) == started  # none reached the server

    assert gen(refreshed(via, pair["refresh_token"])["refresh_token"]) == 1
    counts = proxy.counts()
    assert (counts["status_503"], counts["status_429"], counts["forwarded"]) == (3, 2, 1)
    assert counts["connections"] == 1  # an injected answer keeps the connection alive


def test_delay_holds_back_an_answer_the_server_already_gave(
    service: Cluster, proxy: HttpFaultProxy, direct: httpx.Client
) -> None:
    pair = login(direct, service.username, service.password)
    started = last_seen(direct, pair["access_token"])
    proxy.inject("delay", paths=REFRESH, delay_seconds=3)

    with httpx.Client(base_url=proxy.url, timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        refresh(impatient, pair["refresh_token"])
    wait_for(lambda: last_seen(direct, pair["access_token"]) > started, "the server to rotate all the same")

    proxy.inject("delay", paths=REFRESH, delay_seconds=1.5)
    with httpx.Client(base_url=proxy.url, timeout=30) as patient:
        began = time.monotonic()
        replayed = refreshed(patient, pair["refresh_token"])
        assert time.monotonic() - began >= 1.5
    assert gen(replayed["refresh_token"]) == 1
    assert proxy.counts()["delay"] == 2


def outcomes(proxy: HttpFaultProxy, calls: int) -> list[str]:
    """Call ``/healthz`` through ``proxy`` ``calls`` times; what each call met."""
    seen: list[str] = []
    with httpx.Client(base_url=proxy.url, timeout=30) as http:
        for _ in range(calls):
            try:
                seen.append(str(http.get("/healthz").status_code))
            except httpx.TransportError:
                seen.append("closed")
    return seen


def test_probabilistic_faults_follow_the_seed_and_the_path_filter(service: Cluster) -> None:
    faults = Faults(drop_before=0.2, drop_after=0.1, status_503=0.2, status_429=0.1, paths=("/healthz",))
    runs: list[list[str]] = []
    for _ in range(2):
        with http_fault_proxy(service.server.url, faults, seed=7) as proxy:
            runs.append(outcomes(proxy, 60))
            with httpx.Client(base_url=proxy.url, timeout=30) as http:  # another path: untouched
                assert all(http.get("/readyz").status_code == 200 for _ in range(10))
            counts = proxy.counts()
        seen = Counter(runs[-1])
        assert seen["503"] == counts["status_503"] > 0
        assert seen["429"] == counts["status_429"] > 0
        assert seen["closed"] == counts["drop_before"] + counts["drop_after"]
        assert counts["drop_before"] > 0
        assert counts["drop_after"] > 0
        assert seen["200"] == counts["forwarded"] - 10 > 0
    assert runs[0] == runs[1]


def test_hold_lines_up_concurrent_refreshes(
    service: Cluster, proxy: HttpFaultProxy, direct: httpx.Client
) -> None:
    pair = login(direct, service.username, service.password)
    answers: list[httpx.Response] = []

    def tab() -> None:
        with httpx.Client(base_url=proxy.url, timeout=30) as http:
            answers.append(refresh(http, pair["refresh_token"]))

    proxy.hold()
    tabs = [threading.Thread(target=tab) for _ in range(2)]
    for thread in tabs:
        thread.start()
    wait_for(lambda: proxy.counts()["held"] == 2, "both refreshes held at the proxy")
    assert not answers
    proxy.release()
    for thread in tabs:
        thread.join(30)

    assert [answer.status_code for answer in answers] == [200, 200], [why(a) for a in answers]
    assert len({fp(answer.json()["refresh_token"]) for answer in answers}) == 1  # one rotation, one replay


def test_down_refuses_then_a_restarted_server_takes_over(tmp_path: Path) -> None:
    with cluster(tmp_path / "data", 1) as group, http_fault_proxy(group.server.url) as proxy:
        http = httpx.Client(base_url=proxy.url, timeout=30)
        with http:
            pair = login(http, group.username, group.password)
            proxy.down()  # the restart window begins: connections close, new requests are refused
            with pytest.raises(httpx.TransportError):
                refresh(http, pair["refresh_token"])
            stop_server(group.server)
            proxy.up()
            with pytest.raises(httpx.TransportError):  # the old upstream is gone
                refresh(http, pair["refresh_token"])

            group.servers.append(start_server(group.data_dir))  # stopped by cluster() on the way out
            proxy.set_upstream(group.servers[-1].url)
            new = refreshed(http, pair["refresh_token"])
            assert gen(new["refresh_token"]) == 1
        counts = proxy.counts()
        assert (counts["refused"], counts["upstream_error"], counts["forwarded"]) == (1, 1, 2)


def test_refuses_chunked_requests(proxy: HttpFaultProxy) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"refresh_token": "x"}'

    with httpx.Client(base_url=proxy.url, timeout=30) as http:
        answer = http.post("/auth/refresh", content=body(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 411
    assert proxy.counts()["requests"] == 0


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.05)
