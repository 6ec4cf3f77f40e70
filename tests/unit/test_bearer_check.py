"""``BearerCheck``: which token a request carries, decided one way for every middleware adapter.

ASGI, WSGI and FastAPI refuse another scheme and (by default) a request without a token; Django and DRF
let both pass to other authentication. Exempt paths pass whatever their headers say.
"""

from __future__ import annotations

import pytest

from keyturn.errors import TokenInvalid, TokenMissing
from keyturn.middleware import AccessTokenVerifier
from keyturn.middleware._bearer import BearerCheck, BearerRequest
from keyturn.testing import TestService

STRICT = {"required": True}
OPTIONAL = {"required": False}
DJANGO = {"required": False, "other_schemes_pass": True}


def no_verifier() -> AccessTokenVerifier:
    raise AssertionError("the verifier was asked for a request without a bearer token")


@pytest.mark.parametrize(
    ("options", "authorization", "expected"),
    [
        (STRICT, "Bearer abc.def.ghi", "abc.def.ghi"),
        (STRICT, "bearer  abc.def.ghi ", "abc.def.ghi"),
        (STRICT, None, TokenMissing),
        (STRICT, "Basic dXNlcjpwYXNz", TokenMissing),
        (STRICT, "", TokenMissing),
        (STRICT, "Bearer ", TokenInvalid),
        (STRICT, "DPoP ", TokenInvalid),
        (OPTIONAL, None, None),
        (OPTIONAL, "Basic dXNlcjpwYXNz", TokenMissing),
        (OPTIONAL, "Bearer abc", "abc"),
        (DJANGO, None, None),
        (DJANGO, "Basic dXNlcjpwYXNz", None),
        (DJANGO, "Bearer abc", "abc"),
        (DJANGO, "Bearer", TokenInvalid),
    ],
)
def test_the_token_a_request_carries(
    options: dict[str, bool], authorization: str | None, expected: str | type[Exception] | None
) -> None:
    """Every adapter must judge a header the same way its documentation says: a token, none, or a refusal:
    ``TokenMissing`` (no bearer credentials: the bare challenge) or ``TokenInvalid`` (a broken one)."""
    check = BearerCheck(no_verifier, **options)

    if isinstance(expected, type):
        with pytest.raises(TokenInvalid) as refused:
            check.token(authorization)
        assert type(refused.value) is expected
    else:
        assert check.token(authorization) == expected


@pytest.mark.parametrize("path", ["/health", "/health/db"])
def test_an_exempt_path_passes_whatever_its_header(path: str) -> None:
    """Health checks and public pages pass without a token, and a malformed header there is not refused."""
    check = BearerCheck(no_verifier, exempt=["/health"])

    assert check.token("Basic dXNlcjpwYXNz", path) is None
    assert check.verify(BearerRequest(None, path)) is None
    with pytest.raises(TokenInvalid):
        check.token(None, "/healthz")


@pytest.mark.anyio
async def test_the_verifier_is_asked_only_for_a_token(ts: TestService) -> None:
    """DRF builds the process's verifier lazily: a request without a bearer token must not build it, one
    with a token gets the verifier's answer from the sync and the async shell alike."""
    pair = await ts.service.start("alice", {})
    asked: list[AccessTokenVerifier] = []
    verifier = AccessTokenVerifier.for_store(ts.store, clock=ts.clock)

    def lazily() -> AccessTokenVerifier:
        asked.append(verifier)
        return verifier

    check = BearerCheck(lazily, **DJANGO)
    try:
        assert check.verify(BearerRequest(None)) is None
        assert await check.averify(BearerRequest("Basic dXNlcjpwYXNz")) is None
        assert asked == []

        claims = check.verify(BearerRequest(f"Bearer {pair.access_token}"))
        again = await check.averify(BearerRequest(f"Bearer {pair.access_token}"))
    finally:
        verifier.close()

    assert claims is not None
    assert claims.sub == "alice"
    assert again == claims
    assert len(asked) == 2
