"""``BearerCheck``: which token a request carries, decided one way for every middleware adapter.

ASGI, WSGI and FastAPI refuse another scheme and (by default) a request without a token; Django and DRF
let both pass to other authentication. Exempt paths pass whatever their headers say.
"""

from __future__ import annotations

import pytest

from keyturn.errors import AuthorizationRepeated, TokenInvalid, TokenMissing
from keyturn.http import KEYTURN_ERRORS, joined_authorizations, one_authorization
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


@pytest.mark.parametrize("options", [STRICT, OPTIONAL, DJANGO])
def test_a_repeated_authorization_is_invalid_request_except_on_an_exempt_path(
    options: dict[str, bool],
) -> None:
    check = BearerCheck(no_verifier, exempt=["/status"], **options)
    with pytest.raises(AuthorizationRepeated) as refused:
        check.presented(BearerRequest("Bearer abc", "/api", repeated=True))
    assert (refused.value.code, refused.value.status) == ("invalid_request", 400)
    challenge = KEYTURN_ERRORS.headers(refused.value)["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="keyturn", error="invalid_request", error_description="')
    assert check.presented(BearerRequest("Bearer abc", "/status", repeated=True)) is None


def test_one_authorization_takes_one_and_refuses_more() -> None:
    assert one_authorization([]) is None
    assert one_authorization(["Bearer a"]) == "Bearer a"
    with pytest.raises(AuthorizationRepeated):
        one_authorization(["Bearer a", "Bearer a"])


@pytest.mark.parametrize(
    ("value", "joined"),
    [
        (None, False),
        ("Bearer abc.def.ghi", False),
        ("Basic dXNlcjpwYXNz", False),
        ('Digest username="a", realm="b", nonce="c"', False),  # one header whose parameters have commas
        ("Bearer a,Bearer b", True),  # werkzeug, wsgiref, gunicorn and Django's ASGI handler join so
        ("Bearer a, Bearer b", True),
        ("Bearer a,junk", True),  # a token has no comma
        ("DPoP a,DPoP b", True),
        ("Basic eA==,Bearer a", True),
        ("Basic eA==, dpop a", True),
        ("Basic eA==,Basic eA==", True),  # two client_secret_basic headers at an OAuth route
        ("basic eA==, Basic eA==", True),
        ("Basic eA==,junk", True),  # base64 has no comma
    ],
)
def test_joined_authorizations(value: str | None, joined: bool) -> None:
    assert joined_authorizations(value) is joined
