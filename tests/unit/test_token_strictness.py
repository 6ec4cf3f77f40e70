"""One access token, one spelling: canonical base64url and low-S ECDSA only, on the service and the verifier.

A base64url segment whose length leaves 2 or 4 spare bits in its last character decodes to the same
bytes whatever those bits are; an ECDSA signature ``(r, s)`` verifies as ``(r, n - s)`` too. Either would
let one token be spelled several ways (about 32 for an ES256 access token), each a new cache entry and
a new "token" for anything that counts them. Both are refused; Keyturn signs with the low ``s``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from keyturn.errors import TokenInvalid
from keyturn.middleware import AccessTokenVerifier
from keyturn.testing import TestService, make_service

pytestmark = pytest.mark.anyio

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The order of P-256's group: an ECDSA signature's s is "low" when it is at most half of it.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture
async def ts(anyio_backend: str) -> TestService:
    return await make_service()


def _unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decoded(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def padding_variants(token: str) -> Iterator[str]:
    """Every spelling of ``token`` that differs only in the spare bits of a segment's last character."""
    parts = token.split(".")
    for i, segment in enumerate(parts):
        spare = {2: 4, 3: 2}.get(len(segment) % 4, 0)
        if not spare:
            continue
        last = _ALPHABET.index(segment[-1])
        for bits in range(1, 1 << spare):
            respelled = segment[:-1] + _ALPHABET[last | bits]
            assert _decoded(respelled) == _decoded(segment)  # the same bytes: a lenient reader's view
            yield ".".join([*parts[:i], respelled, *parts[i + 1 :]])


def high_s(token: str) -> str:
    """``token`` with its ES256 signature's ``s`` replaced by ``n - s``: as valid to a lenient verifier."""
    head, payload, signature = token.split(".")
    raw = _decoded(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return f"{head}.{payload}.{_unpadded(r + (_P256_ORDER - s).to_bytes(32, 'big'))}"


def _low_s(token: str) -> bool:
    s = int.from_bytes(_decoded(token.split(".")[2])[32:], "big")
    return s <= _P256_ORDER // 2


async def _tokens(ts: TestService, count: int) -> list[str]:
    return [(await ts.service.start(f"user{i}")).access_token for i in range(count)]


async def test_keyturn_signs_access_tokens_with_a_low_s(ts: TestService) -> None:
    """cryptography's ECDSA gives a high ``s`` about half the time; the signer must normalise it."""
    tokens = await _tokens(ts, 40)
    assert all(_low_s(token) for token in tokens)


async def test_padding_bit_variants_are_refused_by_the_service(ts: TestService) -> None:
    token = (await ts.service.start("alice")).access_token
    variants = list(padding_variants(token))
    assert variants, "the token has no segment with spare bits: the test proves nothing"
    assert (await ts.service.authenticate(token)).claims.sub == "alice"

    for variant in variants:
        with pytest.raises(TokenInvalid):
            await ts.service.authenticate(variant)


async def test_padding_bit_variants_of_a_refresh_token_are_refused(ts: TestService) -> None:
    pair = await ts.service.start("alice")
    variants = list(padding_variants(pair.refresh_token))
    assert variants

    for variant in variants:
        with pytest.raises(TokenInvalid):
            ts.service.codec.decode_refresh(variant, ts.clock.now())


async def test_the_high_s_variant_is_refused_by_the_service(ts: TestService) -> None:
    for token in await _tokens(ts, 4):
        assert (await ts.service.authenticate(token)).claims.sid
        with pytest.raises(TokenInvalid):
            await ts.service.authenticate(high_s(token))


async def test_padding_bit_and_high_s_variants_are_refused_by_the_verifier(ts: TestService) -> None:
    tokens = await _tokens(ts, 4)
    with AccessTokenVerifier.for_store(ts.store, clock=ts.clock) as verifier:
        for token in tokens:
            assert verifier.verify(token).sub.startswith("user")
            variants = [*padding_variants(token), high_s(token)]
            for variant in variants:
                with pytest.raises(TokenInvalid):
                    verifier.verify(variant)
                with pytest.raises(TokenInvalid):
                    await verifier.averify(variant)
