"""Hypothesis fuzzes every token decoder: only the error model may come out, and only the service's own
signature may get a token in.

The decoders: the compact-JWS reader (``keyturn._jws.split`` and a token's ``claims()``/``verify()``),
``keyturn.tokens.read_access`` (shared by the service and the resource servers), the refresh-token codec,
the service's own entry points (``authenticate``, ``refresh``, ``logout``, ``revoke_token``), the resource
servers' ``AccessTokenVerifier.verify``, and the ``Authorization`` header reader. Inputs: random text and
bytes, random base64url segments, and real tokens taken apart and mutated: random JSON headers (``alg``,
``kid``, ``typ``, ``crit``, ``jku``, ``x5u``, ``jwk``, ``b64``, ``zip`` with values of every JSON type,
nested objects and huge numbers) and claims, repeated member names, deep nesting, NaN and infinities, bytes
that are not UTF-8, signed with the service's real key, with garbage, or not at all.

Properties: a decoder returns or raises a ``keyturn.errors.KeyturnError``, nothing else (anything else
becomes a 500 in a server); and a token is accepted only if the service's own key signed it.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyturn import _jws
from keyturn.clock import FrozenClock
from keyturn.errors import KeyturnError
from keyturn.http import bearer_token
from keyturn.middleware import AccessTokenVerifier
from keyturn.sessions import TokenPair
from keyturn.testing import TestService, make_service
from keyturn.tokens import read_access

from ._forge import b64url, forge, parts, segment

T = TypeVar("T")

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis directory in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class World:
    """A service on a memory store, a started verifier on the same keys, and the event loop the
    service's coroutines run on."""

    ts: TestService
    verifier: AccessTokenVerifier
    loop: asyncio.AbstractEventLoop

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        return self.loop.run_until_complete(make())

    @property
    def now(self) -> float:
        return self.ts.clock.now()

    def session(self) -> TokenPair:
        """A new live session of alice's, whose tokens the fuzzing starts from."""
        return self.run(lambda: self.ts.service.start("alice"))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    loop = asyncio.new_event_loop()
    clock = FrozenClock()
    ts = loop.run_until_complete(make_service(clock=clock))
    pair = loop.run_until_complete(ts.service.start("alice"))
    verifier = AccessTokenVerifier.for_store(
        ts.store, clock=clock, timer=clock, key_refetch_interval=0.1, revocation_poll_interval=0.05
    )
    try:
        with verifier:
            assert verifier.verify(pair.access_token).sid == pair.session_id
            yield World(ts, verifier, loop)
    finally:
        loop.close()


# -- strategies --------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["ES256", "HS256", "none", "at+jwt", "rt+jwt", "http://127.0.0.1:9/jwks.json"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
HEADER_NAMES = ["alg", "kid", "typ", "crit", "jku", "x5u", "jwk", "x5c", "b64", "zip", "cty", "enc"]
CLAIM_NAMES = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "nbf", "gen", "client_id", "scope", "typ"]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``base`` with a few members dropped, replaced by any JSON value, or added."""
    value = dict(base)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        name = draw(st.sampled_from(names) | st.text(max_size=6))
        if draw(st.booleans()) and name in value:
            del value[name]
        else:
            value[name] = draw(json_values)
    return value


SHAPES = ["plain"] * 6 + ["repeat", "nest", "trailing", "huge-number", "latin-1", "array", "empty"]
"""Plain JSON most of the time, so that the checks after parsing are reached."""


@st.composite
def json_text(draw: st.DrawFn, value: dict[str, Any]) -> bytes:
    """``value`` written as JSON, or as JSON a careless reader might take: a repeated member, nesting,
    trailing data, NaN/Infinity literals, a 5000-digit number, or bytes that are not UTF-8."""
    text = json.dumps(value, separators=(",", ":"))
    shape = draw(st.sampled_from(SHAPES))
    if shape == "repeat" and value:
        name = draw(st.sampled_from(sorted(value)))
        text = f'{{"{name}":{json.dumps(draw(json_values))},{text[1:]}'
    elif shape == "nest":
        depth = draw(st.integers(min_value=500, max_value=2500))
        text = f'{text[:-1]}{"," if value else ""}"n":{"[" * depth}{"]" * depth}}}'
    elif shape == "trailing":
        text += draw(st.sampled_from(["x", "{}", " ", "\x00"]))
    elif shape == "huge-number":
        text = f'{text[:-1]}{"," if value else ""}"exp":{"9" * 5000}}}'
    elif shape == "latin-1":
        return text[:-1].encode() + b',"x":"\xe9\xff"}'
    elif shape == "array":
        text = f"[{text}]"
    elif shape == "empty":
        text = ""
    return text.encode()


@dataclass(frozen=True)
class Candidate:
    token: str
    genuine: bool
    """Signed here with the service's own key (for its type); only such a token may be accepted."""


@st.composite
def token_from(draw: st.DrawFn, world: World, real: str, kind: str) -> Candidate:
    """A real token of ``kind`` taken apart, its header or claims (or both) mutated, put together again
    and signed one way or another. Mutating one part at a time lets a token signed with the real key get
    past the header checks and the signature, so the claim checks are fuzzed too."""
    header, claims = parts(real)
    focus = draw(st.sampled_from(["claims", "header", "both"]))
    header_bytes = json.dumps(header).encode()
    claims_bytes = json.dumps(claims).encode()
    if focus in ("header", "both"):
        header_bytes = draw(json_text(draw(mutated(header, HEADER_NAMES))))
    if focus in ("claims", "both"):
        claims_bytes = draw(json_text(draw(mutated(claims, CLAIM_NAMES))))
    signing = draw(st.sampled_from(["real-key", "garbage", "none", "real-signature"]))
    keys = world.ts.service.keys
    if signing == "real-key":
        key = keys.active_access.private_key if kind == "access" else keys.active_refresh.secret
        alg = keys.active_access.alg if kind == "access" else "HS256"
        return Candidate(forge(header_bytes, claims_bytes, key, alg), genuine=True)
    body = f"{segment(header_bytes)}.{segment(claims_bytes)}"
    if signing == "garbage":
        return Candidate(f"{body}.{b64url(draw(st.binary(max_size=300)))}", genuine=False)
    if signing == "none":
        return Candidate(f"{body}.", genuine=False)
    # The real signature is genuine only over the real token's own bytes (no mutation, same spelling).
    signed_part, signature = real.rsplit(".", 1)
    return Candidate(f"{body}.{signature}", genuine=body == signed_part)


def shapeless() -> st.SearchStrategy[Candidate]:
    """Strings that are not tokens at all, or only look like one."""
    segments = st.lists(st.binary(max_size=200).map(b64url), min_size=1, max_size=5).map(".".join)
    texts = st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")) | segments
    return texts.map(lambda token: Candidate(token, genuine=False))


def candidates(world: World, pair: TokenPair, kind: str) -> st.SearchStrategy[Candidate]:
    """Mostly mutations of ``pair``'s token of ``kind``, a quarter shapeless strings."""
    real = pair.access_token if kind == "access" else pair.refresh_token
    mutations = token_from(world, real, kind)
    return st.one_of(shapeless(), mutations, mutations, mutations)


# -- properties --------------------------------------------------------------------------------------


def judged(decode: Callable[[], T]) -> T | KeyturnError:
    """What ``decode`` returned, or the wire error it raised; any other exception fails the test."""
    try:
        return decode()
    except KeyturnError as error:
        return error


def test_the_compact_reader_raises_only_the_error_model(world: World) -> None:
    """``split``, then ``claims()`` and ``verify()`` with every algorithm and key type, on anything."""
    pair = world.session()
    keys = world.ts.service.keys
    key_objects = [keys.active_access.public_key, keys.active_refresh.secret, b"", None, "text"]

    @FUZZ
    @given(candidates(world, pair, "access") | candidates(world, pair, "refresh"))
    def check(candidate: Candidate) -> None:
        compact = judged(lambda: _jws.split(candidate.token))
        if isinstance(compact, KeyturnError):
            return
        claims = judged(compact.claims)
        assert isinstance(claims, dict | KeyturnError)
        for alg in [*_jws.ALGORITHMS, "none", "HS512"]:
            for key in key_objects:
                assert compact.verify(alg, key) in (True, False)

    check()


def test_read_access_accepts_only_genuine_tokens_and_raises_only_the_error_model(world: World) -> None:
    """The decoder the service and every resource server share."""
    pair = world.session()
    codec = world.ts.service.codec
    accepted: list[str] = []

    @FUZZ
    @given(candidates(world, pair, "access"))
    def check(candidate: Candidate) -> None:
        result = judged(
            lambda: read_access(
                candidate.token,
                world.now,
                codec.keys.access_key,
                issuer=codec.issuer,
                audience=codec.audience,
                leeway=codec.leeway,
            )
        )
        if not isinstance(result, KeyturnError):
            assert candidate.genuine, "a token the service never signed was accepted"
            assert isinstance(result.sub, str)
            assert result.sub
            assert isinstance(result.sid, str)
            assert result.sid
            assert math.isfinite(result.exp)
            assert world.now <= result.exp + codec.leeway
            accepted.append(result.jti)

    check()
    assert accepted, "no fuzzed token got past the signature: the claim checks were not fuzzed"


def test_the_refresh_codec_accepts_only_genuine_tokens_and_raises_only_the_error_model(world: World) -> None:
    """The refresh-token parser: signature, type, issuer and the shape of every claim."""
    pair = world.session()
    codec = world.ts.service.codec
    accepted: list[str] = []

    @FUZZ
    @given(candidates(world, pair, "refresh"))
    def check(candidate: Candidate) -> None:
        result = judged(lambda: codec.decode_refresh(candidate.token, world.now))
        if not isinstance(result, KeyturnError):
            assert candidate.genuine, "a refresh token the service never signed was accepted"
            assert isinstance(result.gen, int)
            assert result.gen >= 0
            assert isinstance(result.sid, str)
            assert result.sid
            accepted.append(result.jti)

    check()
    assert accepted, "no fuzzed token got past the signature: the claim checks were not fuzzed"


def test_the_services_entry_points_raise_only_the_error_model(world: World) -> None:
    """What the HTTP routes call with a token from a request: a non-wire exception here is a 500."""
    pair = world.session()
    service = world.ts.service

    @FUZZ
    @given(candidates(world, pair, "access") | candidates(world, pair, "refresh"))
    def check(candidate: Candidate) -> None:
        token = candidate.token
        for call in (
            lambda: service.authenticate(token),
            lambda: service.logout(access_token=token),
            lambda: service.logout(refresh_token=token),
            lambda: service.logout_all(refresh_token=token),
            lambda: service.revoke_token(token),
        ):
            result = judged(lambda call=call: world.run(call))
            if not isinstance(result, KeyturnError) and result is not None and result != []:
                assert candidate.genuine, "a token the service never signed ended a session"

    check()
    # The genuine tokens above may have ended that session: refreshes are fuzzed from a new one.
    refresh_candidates = candidates(world, world.session(), "refresh")

    @FUZZ
    @given(refresh_candidates)
    def refresh_check(candidate: Candidate) -> None:
        result = judged(lambda: world.run(lambda: service.refresh(candidate.token)))
        if not isinstance(result, KeyturnError):
            assert candidate.genuine, "a refresh token the service never signed was rotated"

    refresh_check()


def test_the_resource_servers_verifier_raises_only_the_error_model(world: World) -> None:
    """``AccessTokenVerifier.verify``: the cache, the unknown-key path and the revocation check included."""
    pair = world.session()
    accepted: list[str] = []

    @FUZZ
    @given(candidates(world, pair, "access"))
    def check(candidate: Candidate) -> None:
        result = judged(lambda: world.verifier.verify(candidate.token))
        if not isinstance(result, KeyturnError):
            assert candidate.genuine, "the verifier accepted a token the service never signed"
            accepted.append(result.jti)

    check()
    assert accepted, "no fuzzed token got past the signature: the claim checks were not fuzzed"


@FUZZ
@given(st.text(max_size=200) | st.sampled_from(["Bearer", "Bearer ", "bearer x", "Basic x", " Bearer x"]))
def test_the_authorization_header_reader_raises_only_the_error_model(header: str) -> None:
    result = judged(lambda: bearer_token(header))
    assert result is None or isinstance(result, str | KeyturnError)
