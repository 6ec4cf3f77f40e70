"""The error model against DESIGN section 3, and the one renderer that puts it on the wire."""

from __future__ import annotations

import inspect
import json
import re
import typing

import pytest

from keyturn import errors
from keyturn.errors import (
    ERRORS_BY_CODE,
    ConfigError,
    DpopError,
    ErrorCode,
    InsufficientScope,
    InvalidCredentials,
    KeyturnError,
    RateLimited,
    RequestError,
    ServerError,
    SessionError,
    StoreUnavailable,
    TokenError,
    TokenInvalid,
    TokenMissing,
    UseDpopNonce,
    VerifierUnavailable,
)
from keyturn.server.errors import render

# DESIGN section 3, as data: code -> (status, retryable). "Retryable" is the last column's "retry" for an
# unchanged call (wait Retry-After / back off); every other code needs the client to change something.
DESIGN_TABLE: dict[str, tuple[int, bool]] = {
    "invalid_request": (400, False),
    "invalid_credentials": (401, False),
    "token_invalid": (401, False),
    "token_expired": (401, False),
    "token_revoked": (401, False),
    "refresh_token_expired": (401, False),
    "refresh_token_reused": (401, False),
    "session_revoked": (401, False),
    "session_expired": (401, False),
    "rate_limited": (429, True),
    "server_error": (500, True),
    # Not in DESIGN: resource servers answer a valid token without the scope a call needs with RFC 6750's
    # insufficient_scope (docs/contract.md, departures).
    "insufficient_scope": (403, False),
    # Not in DESIGN: DPoP (RFC 9449, issue 17); docs/oauth.md#dpop.
    "refresh_token_bound": (401, False),
    "invalid_dpop_proof": (400, False),
    "use_dpop_nonce": (400, True),
}

GROUPS: dict[str, type[KeyturnError]] = {
    "invalid_request": RequestError,
    "invalid_credentials": RequestError,
    "insufficient_scope": RequestError,
    "rate_limited": RequestError,
    "token_invalid": TokenError,
    "token_expired": TokenError,
    "token_revoked": TokenError,
    "refresh_token_expired": TokenError,
    "refresh_token_reused": TokenError,
    "session_revoked": SessionError,
    "session_expired": SessionError,
    "server_error": ServerError,
    "refresh_token_bound": TokenError,
    "invalid_dpop_proof": DpopError,
    "use_dpop_nonce": DpopError,
}

# Codes whose 401 means "this bearer token cannot be used" (RFC 6750 error="invalid_token").
TOKEN_OR_SESSION_CODES = {code for code, group in GROUPS.items() if group in (TokenError, SessionError)}


def instance(cls: type[KeyturnError], description: str | None = None) -> KeyturnError:
    if cls is UseDpopNonce:
        return UseDpopNonce("n0nce", description)
    return RateLimited(2.5, description) if cls is RateLimited else cls(description)


ALL_ERRORS = [*ERRORS_BY_CODE.values(), StoreUnavailable, VerifierUnavailable]


# -- the classes -----------------------------------------------------------------------------------


def test_every_design_code_has_exactly_one_class() -> None:
    """Clients map codes back to names; a code without a class (or with two) breaks that mapping."""
    assert set(ERRORS_BY_CODE) == set(DESIGN_TABLE)
    assert len(set(ERRORS_BY_CODE.values())) == len(ERRORS_BY_CODE)


@pytest.mark.parametrize("code", DESIGN_TABLE)
def test_class_has_the_status_and_retryable_flag_of_the_design_table(code: str) -> None:
    """Status and retryable are the wire contract every client acts on."""
    cls = ERRORS_BY_CODE[typing.cast("ErrorCode", code)]

    assert cls.code == code
    assert (cls.status, cls.retryable) == DESIGN_TABLE[code]
    assert issubclass(cls, GROUPS[code])
    assert cls.description


def test_store_unavailable_is_a_retryable_server_error_with_503() -> None:
    """A store outage must look temporary to clients, or they would end sessions over it."""
    assert issubclass(StoreUnavailable, ServerError)
    assert (StoreUnavailable.code, StoreUnavailable.status, StoreUnavailable.retryable) == (
        "server_error",
        503,
        True,
    )


def test_wire_codes_are_unique_among_the_error_classes() -> None:
    """Each class that declares a code declares a different one (StoreUnavailable only inherits)."""
    declared = [
        cls.__dict__["code"]
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, KeyturnError) and "code" in cls.__dict__ and cls is not KeyturnError
    ]

    assert sorted(declared) == sorted(DESIGN_TABLE)


def test_error_code_literal_lists_exactly_the_design_codes() -> None:
    """The ``ErrorCode`` type is what typed callers match on; it must not drift from the table."""
    codes = typing.get_args(ErrorCode)

    assert len(codes) == len(set(codes))
    assert set(codes) == set(DESIGN_TABLE)


def test_description_defaults_and_can_be_overridden() -> None:
    """Specific descriptions help users; the default keeps every error readable."""
    assert str(TokenInvalid()) == TokenInvalid.description == TokenInvalid().detail
    assert TokenInvalid("The token is too large.").detail == "The token is too large."


def test_config_error_is_a_value_error_and_no_wire_error() -> None:
    """Bad settings fail at start-up; they must never be rendered as a wire code."""
    assert issubclass(ConfigError, ValueError)
    assert not issubclass(ConfigError, KeyturnError)


# -- the renderer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_render_gives_the_one_body_shape_and_status(cls: type[KeyturnError]) -> None:
    """Every error reaches clients as {error, error_description, retryable} with its own status."""
    response = render(instance(cls, "Something specific."))

    assert response.status_code == cls.status
    assert json.loads(response.body) == {
        "error": cls.code,
        "error_description": "Something specific.",
        "retryable": cls.retryable,
    }
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("code", sorted(TOKEN_OR_SESSION_CODES))
def test_render_401_token_errors_carry_an_invalid_token_challenge(code: str) -> None:
    """RFC 6750: a refused bearer token gets ``error="invalid_token"``, with the Keyturn code for clients."""
    cls = ERRORS_BY_CODE[typing.cast("ErrorCode", code)]

    challenge = render(instance(cls)).headers["www-authenticate"]

    params = parse_bearer_challenge(challenge)
    assert params["realm"] == "keyturn"
    assert params["error"] == "invalid_token"
    assert params["error_description"].startswith(f"{code}: ")


def test_render_a_missing_token_has_the_realm_only_and_the_token_invalid_body() -> None:
    """RFC 6750 section 3.1: a request without credentials gets no error code in its challenge; the body
    keeps the documented ``token_invalid`` for clients that read it."""
    response = render(TokenMissing())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="keyturn"'
    assert json.loads(bytes(response.body)) == {
        "error": "token_invalid",
        "error_description": "No access token was given.",
        "retryable": False,
    }
    assert issubclass(TokenMissing, TokenInvalid)  # whoever catches token_invalid catches it


def test_render_invalid_credentials_challenge_has_the_realm_only() -> None:
    """A failed login is not a bad token: no ``error`` parameter, just the realm."""
    response = render(InvalidCredentials())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="keyturn"'


@pytest.mark.parametrize(
    "cls", [c for c in ALL_ERRORS if c.status not in (401, 403)], ids=lambda c: c.__name__
)
def test_render_non_401_errors_have_no_challenge(cls: type[KeyturnError]) -> None:
    """WWW-Authenticate belongs to 401 (RFC 9110), and to RFC 6750's 403 insufficient_scope."""
    assert "www-authenticate" not in render(instance(cls)).headers


@pytest.mark.parametrize(("retry_after", "header"), [(2.5, "3"), (0.2, "1"), (0, "1"), (60, "60")])
def test_render_rate_limited_has_retry_after_in_whole_seconds(retry_after: float, header: str) -> None:
    """Clients wait Retry-After; rounding up and at least 1 s keeps them from coming back too early."""
    response = render(RateLimited(retry_after))

    assert response.status_code == 429
    assert response.headers["retry-after"] == header


@pytest.mark.parametrize("cls", [c for c in ALL_ERRORS if c is not RateLimited], ids=lambda c: c.__name__)
def test_render_only_rate_limited_has_retry_after(cls: type[KeyturnError]) -> None:
    """A stray Retry-After would make clients wait for no reason."""
    assert "retry-after" not in render(instance(cls)).headers


def test_render_keeps_the_challenge_well_formed_whatever_the_description() -> None:
    """Quotes or backslashes in a description must not break (or inject into) the header."""
    challenge = render(TokenInvalid('bad "kid" \\" , error="none"')).headers["www-authenticate"]

    params = parse_bearer_challenge(challenge)
    assert params["error"] == "invalid_token"
    assert set(params) == {"realm", "error", "error_description"}


def parse_bearer_challenge(header: str) -> dict[str, str]:
    """A strict parser for ``Bearer k="v", k="v"`` (RFC 9110 auth-params, quoted strings only)."""
    scheme, _, rest = header.partition(" ")
    assert scheme == ("DPoP" if "refresh_token_bound" in rest else "Bearer")
    param = re.compile(r'\s*([A-Za-z_]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = param.match(rest, position)
        assert match, f"malformed challenge at {rest[position:]!r}"
        assert match.group(1) not in params, f"duplicate parameter {match.group(1)}"
        params[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
        position = match.end()
    return params


def test_insufficient_scope_is_a_403_with_the_rfc_6750_challenge() -> None:
    response = render(InsufficientScope("The access token lacks the scope orders:read."))

    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer realm="keyturn", error="insufficient_scope"'
    assert json.loads(bytes(response.body))["error"] == "insufficient_scope"
