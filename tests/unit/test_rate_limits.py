"""Rate limits on /auth/refresh and /auth/login (DESIGN section 5), through the app, on a frozen clock.

A refused call is a 429 ``rate_limited`` with ``Retry-After`` and changes nothing else: no rotation, no
revocation, no password hash. Forged refresh tokens count against their address only.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.ratelimit import RateLimit, RateLimitPolicy
from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.testing import make_settings

from .._hashers import CountingHasher
from .test_architecture import PACKAGE_DIR, imported_modules, violations

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KEYTURN_"):
            monkeypatch.delenv(name)


class Service:
    """An app on a memory store with user ``alice``, called from any client address."""

    def __init__(self, rt: Runtime, clock: FrozenClock, hasher: CountingHasher) -> None:
        self.rt, self.clock, self.hasher = rt, clock, hasher
        self.app = create_app(runtime=rt)

    async def call(
        self, path: str, body: dict[str, Any], ip: str = "192.0.2.1", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keyturn.test") as http:
            return await http.post(path, json=body, headers=headers)

    async def login(self, username: str = "alice", password: str = PASSWORD, **kw: Any) -> httpx.Response:
        return await self.call("/auth/login", {"username": username, "password": password}, **kw)

    async def refresh(self, token: str, **kw: Any) -> httpx.Response:
        return await self.call("/auth/refresh", {"refresh_token": token}, **kw)

    async def tokens(self) -> dict[str, Any]:
        answer = await self.login(ip="198.51.100.250")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@asynccontextmanager
async def service(**settings: Any) -> AsyncIterator[Service]:
    clock, hasher = FrozenClock(), CountingHasher()
    rt = await open_runtime(make_settings(**settings), clock=clock, hasher=hasher)
    app_service = Service(rt, clock, hasher)
    try:
        async with app_service.app.router.lifespan_context(app_service.app):
            await rt.users.add("alice", PASSWORD)
            await rt.users.add("bob", PASSWORD)
            hasher.verified = 0
            yield app_service
    finally:
        await rt.close()


def assert_limited(answer: httpx.Response, retry_after: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == str(retry_after)
    body = answer.json()
    assert (body["error"], body["retryable"]) == ("rate_limited", True)
    assert answer.headers["cache-control"] == "no-store"


class Events(logging.Handler):
    """Collects the ``ratelimit.hit`` events as they are logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.hits: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "keyturn", {})
        if fields.get("event") == "ratelimit.hit":
            self.hits.append({**fields, "level": record.levelname})


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """The ``ratelimit.hit`` events logged during the test."""
    logger = logging.getLogger("keyturn.events")
    handler, level = Events(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.hits
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- refresh -------------------------------------------------------------------------------------------


async def test_refresh_per_address_refuses_before_anything_and_says_when_to_retry() -> None:
    """The address's limit comes first: the refused call leaves the session exactly as it was."""
    async with service(rate_limit_refresh_per_ip="2/60") as s:
        pair = await s.tokens()
        first = await s.refresh(pair["refresh_token"])
        assert first.status_code == 200
        assert (await s.refresh("not even a token")).status_code == 401  # counts: garbage costs a take too
        before = await s.rt.store.get_session(pair["session_id"])

        limited = await s.refresh(first.json()["refresh_token"])

        assert_limited(limited, 30)  # one call per 30 s
        assert await s.rt.store.get_session(pair["session_id"]) == before
        # Other addresses are not affected; this address may go on once its wait is over.
        assert (await s.refresh(first.json()["refresh_token"], ip="192.0.2.2")).status_code == 200
        s.clock.advance(30)
        assert (await s.refresh(first.json()["refresh_token"])).status_code == 200


async def test_refresh_per_session_counts_only_tokens_whose_signature_verifies() -> None:
    """Forged tokens naming a victim's session must not spend that session's budget."""
    async with service(rate_limit_refresh_per_session="2/60") as s:
        pair = await s.tokens()
        header, claims, _ = pair["refresh_token"].split(".")
        forged = f"{header}.{claims}.{'A' * 43}"
        for _ in range(10):
            answer = await s.refresh(forged, ip="203.0.113.66")
            assert answer.json()["error"] == "token_invalid"

        chain = pair["refresh_token"]
        for _ in range(2):
            answer = await s.refresh(chain)
            assert answer.status_code == 200, answer.text
            chain = answer.json()["refresh_token"]
        before = await s.rt.store.get_session(pair["session_id"])

        limited = await s.refresh(chain, ip="192.0.2.99")  # a new address does not help

        assert_limited(limited, 30)
        assert await s.rt.store.get_session(pair["session_id"]) == before


async def test_a_rate_limited_reuse_revokes_nothing() -> None:
    """An old token outside the grace period is a reuse; refused by a limit first, it changes nothing."""
    async with service(rate_limit_refresh_per_session="1/600") as s:
        pair = await s.tokens()
        assert (await s.refresh(pair["refresh_token"])).status_code == 200
        s.clock.advance(s.rt.settings.grace_period + 1)

        assert_limited(await s.refresh(pair["refresh_token"]), 600 - s.rt.settings.grace_period - 1)

        session = await s.rt.store.get_session(pair["session_id"])
        assert session is not None
        assert (session.state, session.gen) == ("active", 1)
        assert await s.rt.store.revocations_since(0, s.clock.now()) == []


async def test_the_subject_check_is_not_asked_for_a_limited_refresh() -> None:
    """A disabled user's session is revoked by a refresh; a refused refresh must not do even that."""
    async with service(rate_limit_refresh_per_session="1/600") as s:
        pair = await s.tokens()
        chain = (await s.refresh(pair["refresh_token"])).json()["refresh_token"]
        await s.rt.store.update_user("alice", disabled=True)  # the store only: no revocation yet

        assert (await s.refresh(chain)).status_code == 429

        session = await s.rt.store.get_session(pair["session_id"])
        assert session is not None
        assert session.state == "active"


async def test_an_address_over_its_limit_is_refused_without_a_store_call_until_its_wait_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal says exactly when the bucket takes a call again; until then a flood costs the store
    nothing (per process), valid tokens included, and the answer's Retry-After counts down."""
    async with service(rate_limit_refresh_per_ip="1/60") as s:
        pair = await s.tokens()
        calls: Counter[str] = Counter()
        store = s.rt.store
        for name in ("rate_limit_take", "refresh", "get_user"):
            original = getattr(store, name)

            async def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                calls[_name] += 1
                return await _original(*args, **kw)

            monkeypatch.setattr(store, name, counted)

        assert (await s.refresh("garbage")).status_code == 401  # takes the address's only call
        assert_limited(await s.refresh("garbage"), 60)  # refused by the store
        assert calls == {"rate_limit_take": 2}
        s.clock.advance(15)
        for _ in range(50):
            assert_limited(await s.refresh(pair["refresh_token"]), 45)
        assert calls == {"rate_limit_take": 2}

        s.clock.advance(45)
        assert (await s.refresh(pair["refresh_token"])).status_code == 200
        # The subject check is the store's own (built-in users): answered in the refresh step, no get_user.
        assert calls == {"rate_limit_take": 2, "refresh": 1}


# -- login ---------------------------------------------------------------------------------------------


async def test_login_per_username_and_address_refuses_before_the_password_hash() -> None:
    """Password guessing against one account from one address stops before argon2 runs."""
    async with service(rate_limit_login_per_username_ip="3/60") as s:
        for _ in range(3):
            assert (await s.login(password="wrong")).status_code == 401
        assert s.hasher.verified == 3

        assert_limited(await s.login(), 20)
        assert s.hasher.verified == 3
        assert await s.rt.store.list_sessions("alice") == []
        # Another user, or the same one from elsewhere, is not held back.
        assert (await s.login("bob")).status_code == 200
        assert (await s.login(ip="192.0.2.2")).status_code == 200


async def test_login_per_address_holds_back_many_usernames_from_one_address() -> None:
    """One address cannot make the service hash passwords for one username after another."""
    async with service(rate_limit_login_per_ip="5/60") as s:
        for n in range(5):
            assert (await s.login(f"user{n}")).status_code == 401
        verified = s.hasher.verified

        assert_limited(await s.login("alice"), 12)
        assert s.hasher.verified == verified
        assert (await s.login("alice", ip="192.0.2.2")).status_code == 200


async def test_usernames_in_buckets_and_logs_are_keyed_hashes(events: list[dict[str, Any]]) -> None:
    """A password typed into the username field must not reach the store or a log line."""
    secretish = "hunter2-typed-into-the-username-field"
    async with service(rate_limit_login_per_username_ip="1/60") as s:
        await s.login(secretish)
        assert (await s.login(secretish)).status_code == 429
        user = s.rt.limiter.username_hash(secretish)
        other = await open_runtime(s.rt.settings.model_copy(update={"store_url": "memory://"}))
        try:  # the same master secret, another process: the same hash, so the same bucket
            assert other.limiter.username_hash(secretish) == user
        finally:
            await other.close()
    assert len(user) == 32
    assert secretish not in user
    assert events == [
        {
            "event": "ratelimit.hit",
            "limit": "login_per_username_ip",
            "ip": "192.0.2.1",
            "user": user,
            "retry_after": 60,
            "suppressed": 0,
            "level": "WARNING",
        }
    ]


# -- logs, switches, proxies ----------------------------------------------------------------------------


async def test_a_flood_is_a_warning_once_per_bucket_every_ten_seconds(events: list[dict[str, Any]]) -> None:
    """Each refusal is an event (metrics count them all), but a flood must not copy itself into the log at
    the default level: a warning per bucket every 10 s, saying how many refusals it stands for."""
    async with service(rate_limit_refresh_per_ip="1/60") as s:
        for _ in range(21):
            await s.refresh("x")
        s.clock.advance(10)
        await s.refresh("x")
        await s.refresh("x", ip="192.0.2.2")
        await s.refresh("x", ip="192.0.2.2")
    assert len(events) == 20 + 1 + 1
    assert {e["limit"] for e in events} == {"refresh_per_ip"}
    warnings = [(e["ip"], e["retry_after"], e["suppressed"]) for e in events if e["level"] == "WARNING"]
    assert warnings == [("192.0.2.1", 60, 0), ("192.0.2.1", 50, 19), ("192.0.2.2", 60, 0)]
    assert {e["level"] for e in events} == {"WARNING", "DEBUG"}


async def test_rate_limits_off_turns_every_limit_off() -> None:
    """Load tests and deployments with their own limiter switch Keyturn's off."""
    tight = {f"rate_limit_{name}": "1/3600" for name in RateLimitPolicy.__dataclass_fields__}
    async with service(rate_limits=False, **tight) as s:
        pair = await s.tokens()
        chain = pair["refresh_token"]
        for _ in range(5):
            answer = await s.refresh(chain)
            assert answer.status_code == 200
            chain = answer.json()["refresh_token"]
            assert (await s.login()).status_code == 200
    assert RateLimitPolicy.from_settings(make_settings(rate_limits=False)) == RateLimitPolicy()


async def test_each_limit_can_be_turned_off_alone() -> None:
    async with service(rate_limit_refresh_per_ip="off", rate_limit_refresh_per_session="2/60") as s:
        policy = s.rt.limiter.policy
        assert policy.refresh_per_ip is None
        assert policy.refresh_per_session == RateLimit(2, 60)


async def test_forwarded_for_is_honoured_from_a_trusted_proxy_only() -> None:
    """Behind the configured proxy each client has its own bucket; a client cannot pick its own."""
    async with service(rate_limit_login_per_ip="2/60", trusted_proxies="10.0.0.1") as s:
        via_proxy = {"ip": "10.0.0.1"}
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(2):
            assert (await s.login(**via_proxy, headers=forwarded)).status_code == 200
        assert (await s.login(**via_proxy, headers=forwarded)).status_code == 429
        answer = await s.login(**via_proxy, headers={"X-Forwarded-For": "203.0.113.10"})
        assert answer.status_code == 200
        session = await s.rt.store.get_session(answer.json()["session_id"])
        assert session is not None
        assert session.ip == "203.0.113.10"

        # From an untrusted peer the header is ignored: its own address is spent, whatever it claims.
        for n in range(2):
            fake = {"X-Forwarded-For": f"198.51.100.{n}"}
            assert (await s.login(ip="192.0.2.5", headers=fake)).status_code == 200
        assert (await s.login(ip="192.0.2.5", headers={"X-Forwarded-For": "198.51.100.9"})).status_code == 429


# -- settings and layering --------------------------------------------------------------------------------


def test_defaults_are_generous_and_documented_values() -> None:
    """A correct client never meets a default: see docs/contract.md, Rate limits."""
    settings = Settings()
    assert settings.rate_limits is True
    assert RateLimitPolicy.from_settings(settings) == RateLimitPolicy(
        refresh_per_ip=RateLimit(1200, 60),
        refresh_per_session=RateLimit(120, 60),
        login_per_ip=RateLimit(300, 60),
        login_per_username_ip=RateLimit(30, 900),
        login_global=RateLimit(600, 60),
    )
    assert settings.trusted_proxies == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120/60", RateLimit(120, 60)),
        (" 3 / 1.5 ", RateLimit(3, 1.5)),
        ("off", None),
        ("OFF", None),
        ("0", None),
    ],
)
def test_rate_limit_settings_read_count_slash_seconds(
    text: str, expected: RateLimit | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_RATE_LIMIT_REFRESH_PER_SESSION", text)
    assert Settings().rate_limit_refresh_per_session == expected
    assert Settings(rate_limit_refresh_per_session=text).rate_limit_refresh_per_session == expected


@pytest.mark.parametrize("text", ["120", "120/0", "0/60", "-1/60", "1e3/60", "120 per minute", "/60"])
def test_a_malformed_rate_limit_is_refused_at_start_up(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit_login_per_ip=text)


def test_gcra_takes_the_burst_then_one_per_interval_and_refusals_change_nothing() -> None:
    """The arithmetic every backend repeats (in SQL and Lua), in integer microseconds."""
    limit = RateLimit(3, 3)  # burst 3, one per second
    assert (limit.interval_us, limit.tolerance_us) == (1_000_000, 3_000_000)
    tat = None
    for _ in range(3):
        allowed, tat = limit.take(tat, 0)
        assert allowed
    assert tat == 3_000_000
    assert limit.take(tat, 0) == (False, 1_000_000)
    assert limit.take(tat, 400_000) == (False, 600_000)
    assert limit.take(tat, 1_000_000) == (True, 4_000_000)
    assert limit.wait_us(None, 0) == 0


def test_rate_limits_keep_their_old_import_path() -> None:
    """RateLimit and micros moved to keyturn.ratelimit; code importing them from keyturn.typing runs on."""
    import keyturn.typing
    from keyturn import ratelimit

    assert keyturn.typing.RateLimit is ratelimit.RateLimit
    assert keyturn.typing.micros is ratelimit.micros
    with pytest.raises(AttributeError):
        _ = keyturn.typing.NoSuchName  # type: ignore[attr-defined]


def test_the_rate_limiter_stays_in_the_core() -> None:
    """It depends on the store protocol, never on a backend, the server or a framework."""
    module = PACKAGE_DIR / "ratelimit.py"
    assert violations(imported_modules(module.read_text(), "keyturn.ratelimit")) == set()
