"""Issue 4's acceptance: a separate resource-server process validating Keyturn tokens offline.

A real ``keyturn serve`` and a real FastAPI resource server (``tests/e2e/apps/fastapi_resource.py``,
behind ``KeyturnMiddleware``) talk over loopback HTTP: the resource server knows the token service only
by its JWKS and its revocation feed.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import itertools
import json
import re
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from keyturn._sign import with_low_s
from keyturn.testing import make_service

from ._http import assert_error, b64url, b64url_json, bearer, jwt_parts, login, refreshed, why
from ._resource import ResourceApp, launch_app, stop_app, wait_app_ready
from ._server import Cluster, cluster, run_cli

# Measures response times (a deadline the feature promises): never beside another timing test (one
# pytest-xdist worker runs the "timing" group's tests one after another).
pytestmark = pytest.mark.xdist_group("timing")

RESOURCE = "tests.e2e.apps.fastapi_resource"
POLL_INTERVAL = 1.0
"""The verifier's default ``REVOCATION_POLL_INTERVAL``, which the ``resource`` fixture runs with."""
REVOCATION_DEADLINE = POLL_INTERVAL + 1.0
"""Issue 4, acceptance 1: a revocation reaches a resource server within this many seconds. The docs
promise "within about a second" (resource-servers.md, fastapi.md): the verifier reads the feed every
``POLL_INTERVAL``, so the read that brings a revocation is the one under way when it was committed or
the next, answered at most one interval after it was committed, plus what a read already under way and
the read itself take; the second over the interval is for those.

It is checked in feed reads, on the token service's log, rather than in seconds, which a busy machine
stretches (a CI worker at load 9 stalls a process for a second or two; with the test's servers stopped
2 s in every 5, two of these three tests failed a bound in seconds): the read that carried the revocation
must be the first or second read answered after the revocation's commit (the logout's answer), and the
poller's period (from one read's answer to the next) must be under ``PERIOD_BOUND`` in the median of
``PERIODS`` around it, which one stall does not move. A poller that reads every 2 s or more, or not at
all, or whose reads miss a revocation, fails it; the resource server must then refuse the token (within
15 s)."""
PERIOD_BOUND = POLL_INTERVAL + 0.5
"""The poller's period, in the median: its interval and a read (1.01 to 1.02 s quiet and beside two CPU
hogs)."""
PERIODS = 5
"""How many of the poller's periods the median is taken of."""
FEED_READ = re.compile(r'"GET /auth/revocations\?since=(?P<since>\d+)[^" ]* HTTP/[0-9.]+" 200')
LOG_DEADLINE = 30.0
"""How long the feed read after the one that carried the revocation may take to show in the log."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A token service that logs every request (the JWKS fetches are counted from its log)."""
    data = tmp_path_factory.mktemp("service")
    env = {"KEYTURN_KEY_RELOAD_INTERVAL": "0.5"}
    with cluster(data, 1, env, "--access-log", "--log-level", "info") as group:
        yield group


@pytest.fixture(scope="module")
def resource(service: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResourceApp]:
    """A resource server with the verifier's defaults (revocations polled every second)."""
    app = launch_app(RESOURCE, service.server.url, tmp_path_factory.mktemp("resource"))
    try:
        yield wait_app_ready(app)
    finally:
        stop_app(app)


def jwks_fetches(service: Cluster) -> int:
    """JWKS requests the token service has answered, from its access log."""
    lines = service.server.log.read_text(errors="replace").splitlines()
    return sum("GET /.well-known/jwks.json" in line for line in lines)


def whoami(app: ResourceApp, token: str) -> httpx.Response:
    return httpx.get(app.url + "/whoami", headers=bearer(token), timeout=30)


def new_session(service: Cluster) -> dict[str, Any]:
    with service.server.client() as http:
        return login(http, service.username, service.password)


def _access_log(service: Cluster) -> list[tuple[float, str]]:
    """``(epoch seconds, message)`` of each request the token service logged, in order."""
    found = []
    for line in service.server.log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("logger") == "uvicorn.access":
                found.append((datetime.fromisoformat(record["time"]).timestamp(), str(record["message"])))
    return found


@dataclass(frozen=True)
class FeedReads:
    """How the revocation feed carried a revocation to the resource server, from the service's log."""

    after: int
    """The feed reads answered after the revocation's commit, up to the one that carried it (1 or 2 when
    that read was under way at the commit or the next one; 0 if it was answered before the commit's own
    request)."""
    delay: float
    """Seconds from the commit to the answer of the read that carried it (the service's clock)."""
    periods: list[float]
    """Seconds between the answers of ``PERIODS + 1`` successive feed reads around that read."""

    @property
    def period(self) -> float:
        return statistics.median(self.periods)

    def report(self) -> str:
        return (
            f"the read that carried it was no. {self.after} answered after the commit, {self.delay:.2f}s"
            f" after it; the poller's periods {[round(p, 2) for p in self.periods]}"
        )


def feed_reads(service: Cluster, committed_by: str) -> FeedReads:
    """The feed reads from the answer of the last request whose log line holds ``committed_by`` (the
    revocation was committed before it) to the read that carried the revocation to the resource server:
    the last read from the cursor the resource server had before, once a read from a later cursor shows
    that one had moved it on; and the poller's periods around it."""
    deadline = time.monotonic() + LOG_DEADLINE
    while True:
        logged = _access_log(service)
        committed = max(at for at, message in logged if committed_by in message)
        reads = [(at, int(m["since"])) for at, message in logged if (m := FEED_READ.search(message))]
        before = [since for at, since in reads if at <= committed]
        assert before, "the resource server read no revocation feed before the revocation"
        cursor = before[-1]
        moved = [i for i, (at, since) in enumerate(reads) if since > cursor and at > committed]
        last = max(moved[0], PERIODS) if moved else len(reads)
        if last < len(reads):
            carried = moved[0] - 1
            after = sum(at > committed for at, _ in reads[: carried + 1])
            answers = [at for at, _ in reads[last - PERIODS : last + 1]]
            periods = [b - a for a, b in itertools.pairwise(answers)]
            return FeedReads(after, reads[carried][0] - committed, periods)
        assert time.monotonic() < deadline, (
            f"no revocation feed read moved past the cursor {cursor} in {LOG_DEADLINE:.0f}s after the"
            f" revocation, or fewer than {PERIODS + 1} reads (reads since:"
            f" {[(round(at - committed, 2), n) for at, n in reads[-5:]]})"
        )
        time.sleep(0.2)


def assert_carried_in_time(feed: FeedReads) -> None:
    """The revocation came with the read under way at its commit or the next, from a poller reading once
    a ``POLL_INTERVAL`` (see ``REVOCATION_DEADLINE``)."""
    assert feed.after <= 2, feed.report()
    assert feed.period < PERIOD_BOUND, feed.report()


def seconds_until_refused(app: ResourceApp, token: str, since: float, limit: float = 15.0) -> float:
    """Seconds from ``since`` until ``app`` refuses ``token`` with ``token_revoked``."""
    while time.monotonic() - since < limit:
        response = whoami(app, token)
        if response.status_code != 200:
            assert_error(response, 401, "token_revoked")
            return time.monotonic() - since
        time.sleep(0.02)
    pytest.fail(f"the resource server still accepted the token {limit}s after the revocation")


# -- 1. revocation reaches a separate process within 2 seconds ------------------------------------


def test_logout_reaches_the_resource_server_within_two_seconds(
    service: Cluster, resource: ResourceApp
) -> None:
    tokens = new_session(service)
    assert whoami(resource, tokens["access_token"]).status_code == 200

    with service.server.client() as http:
        started = time.monotonic()
        assert http.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 200

    took = seconds_until_refused(resource, tokens["access_token"], started)
    feed = feed_reads(service, '"POST /auth/logout HTTP')
    print(f"\nlogout: {feed.report()}; the resource server refused the token after {took:.2f}s")
    assert_carried_in_time(feed)


def test_logout_all_reaches_every_session_on_the_resource_server(
    service: Cluster, resource: ResourceApp
) -> None:
    sessions = [new_session(service) for _ in range(3)]
    for tokens in sessions:
        assert whoami(resource, tokens["access_token"]).status_code == 200

    with service.server.client() as http:
        started = time.monotonic()
        response = http.post("/auth/logout-all", json={"refresh_token": sessions[0]["refresh_token"]})
        assert response.status_code == 200, why(response)

    took = max(seconds_until_refused(resource, t["access_token"], started) for t in sessions)
    feed = feed_reads(service, '"POST /auth/logout-all HTTP')
    print(f"\nlogout-all: {feed.report()}; the resource server refused the token after {took:.2f}s")
    assert_carried_in_time(feed)


def test_reuse_detection_reaches_the_resource_server(
    service: Cluster, resource: ResourceApp, tmp_path: Path
) -> None:
    """A rotated refresh token replayed after the grace period revokes the session everywhere."""
    with cluster(tmp_path / "no-grace", 1, {"KEYTURN_GRACE_PERIOD": "0"}) as quick:
        app = wait_app_ready(launch_app(RESOURCE, quick.server.url, tmp_path / "logs"))
        try:
            with quick.server.client() as http:
                first = login(http, quick.username, quick.password)
                second = refreshed(http, first["refresh_token"])
                assert whoami(app, second["access_token"]).status_code == 200
                time.sleep(1.1)  # past the zero-second grace period, at whole-second resolution
                started = time.monotonic()
                assert_error(
                    http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}),
                    401,
                    "refresh_token_reused",
                )
            took = seconds_until_refused(app, second["access_token"], started)
            feed = feed_reads(quick, '"POST /auth/refresh HTTP')  # the replay: the last refresh
            print(f"\nreuse: {feed.report()}; the resource server refused the token after {took:.2f}s")
            assert_carried_in_time(feed)
        finally:
            stop_app(app)


# -- 2. key rotation without a restart ------------------------------------------------------------


def test_rotation_old_tokens_still_pass_new_tokens_carry_the_new_kid(
    service: Cluster, resource: ResourceApp
) -> None:
    kept = new_session(service)["access_token"]  # signed before the rotation, used after it
    chain = new_session(service)
    old_kid = jwt_parts(kept)[0]["kid"]
    assert whoami(resource, kept).json()["kid"] == old_kid

    rotated = run_cli(service.data_dir, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr

    # The running service signs with the new key once it has reloaded (KEY_RELOAD_INTERVAL=0.5 here).
    deadline = time.monotonic() + 15
    with service.server.client() as http:
        while jwt_parts(chain["access_token"])[0]["kid"] == old_kid and time.monotonic() < deadline:
            time.sleep(0.2)
            chain = refreshed(http, chain["refresh_token"])
    new_kid = jwt_parts(chain["access_token"])[0]["kid"]
    assert new_kid != old_kid, "the service never signed with the rotated key"

    # The resource server started before the rotation: it fetches the new key on first sight of it.
    response = whoami(resource, chain["access_token"])
    assert response.status_code == 200, why(response)
    assert response.json()["kid"] == new_kid
    # The token signed with the old key still passes until it expires.
    response = whoami(resource, kept)
    assert response.status_code == 200, why(response)
    assert response.json()["kid"] == old_kid


# -- 3. error codes, and a flood of unknown kids --------------------------------------------------


def test_expired_token_is_token_expired(tmp_path: Path) -> None:
    env = {"KEYTURN_ACCESS_TOKEN_LIFETIME": "4", "KEYTURN_LEEWAY": "0"}
    with cluster(tmp_path / "short", 1, env) as short:
        app = launch_app(RESOURCE, short.server.url, tmp_path / "logs", env={"KEYTURN_LEEWAY": "0"})
        wait_app_ready(app)
        try:
            assert whoami(app, "not-a-token").status_code == 401  # the verifier has started and has keys
            tokens = new_session(short)
            assert whoami(app, tokens["access_token"]).status_code == 200
            expires = jwt_parts(tokens["access_token"])[1]["exp"]
            time.sleep(max(0.0, expires + 1.1 - time.time()))
            assert_error(whoami(app, tokens["access_token"]), 401, "token_expired")
        finally:
            stop_app(app)


def tampered(token: str) -> str:
    """``token`` with another subject and its original signature."""
    header, _, signature = token.split(".")
    claims = {**jwt_parts(token)[1], "sub": "mallory"}
    return f"{header}.{b64url_json(claims)}.{signature}"


def flipped(token: str) -> str:
    """``token`` with one byte of its signature changed."""
    head, _, signature = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{b64url(bytes(raw))}"


async def foreign_token(kid: str) -> str:
    """A well-formed access token from another Keyturn installation's key, naming our ``kid``."""
    other = await make_service()
    key = other.tokens.keys.active_access
    claims = other.tokens.access_claims()
    token = jwt.encode(claims, key.private_key, key.alg, {"kid": kid, "typ": "at+jwt"})
    return with_low_s(token) if key.alg == "ES256" else token


@pytest.mark.anyio
async def test_tampered_foreign_and_wrong_type_tokens_are_token_invalid(
    service: Cluster, resource: ResourceApp
) -> None:
    tokens = new_session(service)
    header = jwt_parts(tokens["access_token"])[0]
    bad = {
        "tampered claims": tampered(tokens["access_token"]),
        "flipped signature": flipped(tokens["access_token"]),
        "foreign key, our kid": await foreign_token(header["kid"]),
        "refresh token": tokens["refresh_token"],
        "alg none": f"{b64url_json({**header, 'alg': 'none'})}.{tokens['access_token'].split('.')[1]}.",
        "garbage": "not-a-token",
        "huge": "a" * 20_000,
    }
    for name, token in bad.items():
        response = whoami(resource, token)
        assert response.status_code == 401, f"{name}: {why(response)}"
        assert_error(response, 401, "token_invalid")


def flood(
    resource: ResourceApp, tokens: list[str], threads: int = 20
) -> tuple[dict[tuple[int, str], int], float]:
    """Send every token once to ``/whoami`` from ``threads`` threads; count (status, error code)."""
    answers: dict[tuple[int, str], int] = {}
    lock = threading.Lock()

    def send(batch: list[str]) -> None:
        with httpx.Client(base_url=resource.url, timeout=60) as http:
            for token in batch:
                response = http.get("/whoami", headers=bearer(token))
                answer = (response.status_code, response.json().get("error", ""))
                with lock:
                    answers[answer] = answers.get(answer, 0) + 1

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, [tokens[i::threads] for i in range(threads)]))
    return answers, time.monotonic() - started


def with_random_kids(token: str, count: int, **claims: Any) -> list[str]:
    """``count`` copies of ``token``, each naming a made-up key (and carrying ``claims``)."""
    header, payload = jwt_parts(token)
    signature = token.rsplit(".", 1)[1]
    body = b64url_json({**payload, **claims})
    return [
        f"{b64url_json({**header, 'kid': secrets.token_urlsafe(12)})}.{body}.{signature}"
        for _ in range(count)
    ]


def test_a_thousand_unknown_kids_cause_a_handful_of_jwks_fetches(
    service: Cluster, resource: ResourceApp
) -> None:
    """Made-up key ids with a fresh ``iat``: a fetch starts at most once a second (key_refetch_interval);
    in between, such a token is answered at once: 401 if a fetch after its issue lacked the key, else 503
    (retryable: a genuine token signed with a brand-new key gets in on the next fetch)."""
    tokens = new_session(service)
    fetched_before = jwks_fetches(service)

    answers, took = flood(resource, with_random_kids(tokens["access_token"], 1000))

    fetches = jwks_fetches(service) - fetched_before
    assert set(answers) <= {(401, "token_invalid"), (503, "server_error")}, answers
    assert sum(answers.values()) == 1000
    assert answers.get((401, "token_invalid"), 0) >= 1  # the first fetch after the flood began lacked it
    assert fetches <= 2 + took, f"{fetches} JWKS fetches in {took:.1f}s"
    assert fetches <= 10, f"{fetches} JWKS fetches in {took:.1f}s"
    assert whoami(resource, tokens["access_token"]).status_code == 200
    print(f"\n1000 unknown kids in {took:.1f}s: {fetches} JWKS fetches, answers {answers}")


def test_unknown_kids_on_old_tokens_are_token_invalid_without_a_fetch(
    service: Cluster, resource: ResourceApp
) -> None:
    """A token issued before the last fetch cannot name a genuine key that fetch lacked."""
    tokens = new_session(service)
    whoami(resource, with_random_kids(tokens["access_token"], 1)[0])  # makes sure a fetch has happened
    old = int(time.time()) - 120
    fetched_before = jwks_fetches(service)

    answers, took = flood(resource, with_random_kids(tokens["access_token"], 300, iat=old))

    assert answers == {(401, "token_invalid"): 300}
    assert jwks_fetches(service) - fetched_before <= 2 + took
