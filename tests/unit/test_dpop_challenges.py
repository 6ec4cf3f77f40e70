"""RFC 9449 sections 7.1 and 7.2 in the one renderer: a resource that takes DPoP-bound tokens challenges in
both schemes (``KEYTURN_ERRORS.at_resource(algs)``), in one ``WWW-Authenticate`` field, ``Bearer`` first.

Where DPoP is off (no algorithms) and on the routes that are no resource, nothing changes.
"""

from __future__ import annotations

import pytest

from keyturn.dpop import ALGORITHMS
from keyturn.errors import (
    AuthorizationRepeated,
    InsufficientScope,
    InvalidClient,
    InvalidCredentials,
    InvalidDpopProofAtResource,
    KeyturnError,
    RateLimited,
    RefreshTokenBound,
    SessionRevoked,
    StoreUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    UseDpopNonce,
    UseDpopNonceAtResource,
)
from keyturn.http import KEYTURN_ERRORS, OAUTH_ERRORS, ErrorForm, error_response
from keyturn.oauth import dpop_signing_algs
from keyturn.testing import make_settings

from .._challenges import ALGS, BARE, BARE_BEARER, challenges

RESOURCE = KEYTURN_ERRORS.at_resource(ALGORITHMS)
DPOP = ("DPoP", {"realm": "keyturn", "algs": ALGS})


def challenge_of(error: KeyturnError, form: ErrorForm = RESOURCE) -> str:
    return form.headers(error)["WWW-Authenticate"]


def test_no_token_at_a_dpop_resource_gets_both_bare_challenges() -> None:
    """RFC 9449 section 7.2's first example: no credentials, so no error in either challenge; the DPoP one
    names the proof algorithms (section 7.1, ``algs``)."""
    header = challenge_of(TokenMissing())

    assert header == BARE
    assert challenges(header) == [("Bearer", {"realm": "keyturn"}), DPOP]


def test_the_algorithms_are_the_metadatas() -> None:
    """``algs`` is the list ``dpop_signing_alg_values_supported`` advertises, and nothing while it is off."""
    assert ALGS.split() == list(dpop_signing_algs(make_settings())) == list(ALGORITHMS)
    assert dpop_signing_algs(make_settings(dpop="off")) == ()
    assert KEYTURN_ERRORS.at_resource(()) == KEYTURN_ERRORS


@pytest.mark.parametrize("error", [TokenInvalid(), TokenExpired(), TokenRevoked(), SessionRevoked()])
def test_a_refused_bearer_token_keeps_its_error_in_bearer_and_adds_the_dpop_challenge(
    error: KeyturnError,
) -> None:
    """RFC 9449 section 7.2's second example: the error in the Bearer challenge (first, where Keyturn's
    clients look for ``error_description``), then ``DPoP`` with ``algs`` alone."""
    (scheme, params), *rest = challenges(challenge_of(error))

    assert scheme == "Bearer"
    assert params["error"] == "invalid_token"
    assert params["error_description"].startswith(f"{error.code}: ")
    assert rest == [DPOP]


def test_repeated_authorization_names_the_error_in_both_challenges() -> None:
    """RFC 9449 section 7.2's third example: which scheme was meant is unknown, so both say why (400)."""
    status, headers, _ = error_response(AuthorizationRepeated(), form=RESOURCE)

    assert status == 400
    named = {"error": "invalid_request", "error_description": AuthorizationRepeated.description}
    assert challenges(dict(headers)["WWW-Authenticate"]) == [
        ("Bearer", {"realm": "keyturn", **named}),
        ("DPoP", {"realm": "keyturn", "algs": ALGS, **named}),
    ]


@pytest.mark.parametrize("error", [InvalidDpopProofAtResource(), RefreshTokenBound()])
def test_a_refused_dpop_proof_stays_a_dpop_challenge_alone(error: KeyturnError) -> None:
    """The scheme is known: the DPoP challenge carries the error (section 7.2's second rule), as before."""
    ((scheme, params),) = challenges(challenge_of(error))

    assert scheme == "DPoP"
    assert params["algs"] == ALGS
    assert "error" in params


@pytest.mark.parametrize(
    "error", [TokenInvalid(), TokenExpired(), TokenRevoked(), SessionRevoked(), InvalidDpopProofAtResource()]
)
@pytest.mark.parametrize("form", [RESOURCE, KEYTURN_ERRORS], ids=["dpop-on", "dpop-off"])
def test_a_token_presented_as_dpop_is_refused_in_the_dpop_challenge_alone(
    error: KeyturnError, form: ErrorForm
) -> None:
    """RFC 9449 section 7.1's example (``DPoP error="invalid_token", error_description=..., algs=...``):
    the request used the DPoP scheme, so that challenge carries the error; Bearer is not offered again, as
    for a refused proof. With DPoP off the token was still checked with its proof: Keyturn's algorithms."""
    ((scheme, params),) = challenges(challenge_of(error, form.presented("DPoP some.token")))

    assert scheme == "DPoP"
    assert params["error"] == (
        "invalid_dpop_proof" if error.code == "invalid_dpop_proof" else "invalid_token"
    )
    assert params["error_description"].startswith(f"{error.code}: ")
    assert (params["realm"], params["algs"]) == ("keyturn", ALGS)


def test_only_the_dpop_scheme_changes_the_form() -> None:
    """Bearer, another scheme, no header: the form as it was (a request without a token stays bare)."""
    for authorization in (None, "Bearer x", "Basic eA==", "DPoPx y"):
        assert RESOURCE.presented(authorization) == RESOURCE
    assert RESOURCE.presented("dpop x").scheme == "dpop"
    assert challenge_of(TokenMissing(), RESOURCE.presented("DPoP x")) == BARE


def test_insufficient_scope_is_challenged_in_the_scheme_used() -> None:
    """403 ``insufficient_scope`` in DPoP for a token presented so, in Bearer otherwise (as before)."""
    assert challenges(challenge_of(InsufficientScope(), RESOURCE.presented("DPoP x"))) == [
        ("DPoP", {"realm": "keyturn", "error": "insufficient_scope", "algs": ALGS})
    ]
    assert challenge_of(InsufficientScope()) == 'Bearer realm="keyturn", error="insufficient_scope"'


def test_a_resource_asks_for_its_nonce_with_a_401_dpop_challenge() -> None:
    """RFC 9449 section 9: 401, ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` and ``DPoP-Nonce``;
    the token endpoint's ``use_dpop_nonce`` stays 400 without a challenge (section 8)."""
    status, headers, body = error_response(UseDpopNonceAtResource("n0nce"), form=RESOURCE)
    found = dict(headers)

    assert (status, found["DPoP-Nonce"]) == (401, "n0nce")
    ((scheme, params),) = challenges(found["WWW-Authenticate"])
    assert (scheme, params["error"], params["algs"]) == ("DPoP", "use_dpop_nonce", ALGS)
    assert b'"error":"use_dpop_nonce"' in body
    status, headers, _ = error_response(UseDpopNonce("n0nce"), form=RESOURCE)
    assert status == 400
    assert "WWW-Authenticate" not in dict(headers)


@pytest.mark.parametrize("error", [InvalidCredentials(), InsufficientScope()])
def test_what_is_no_token_refusal_gets_no_dpop_challenge(error: KeyturnError) -> None:
    """A failed login is not a refused token; a 403 for a missing scope of a Bearer token challenges
    nothing new."""
    assert challenge_of(error) == challenge_of(error, KEYTURN_ERRORS)
    assert "DPoP" not in challenge_of(error)


@pytest.mark.parametrize("error", [RateLimited(1.0), StoreUnavailable()])
def test_errors_without_a_challenge_still_have_none(error: KeyturnError) -> None:
    assert "WWW-Authenticate" not in RESOURCE.headers(error)


@pytest.mark.parametrize(
    "error",
    [
        TokenMissing(),
        TokenExpired(),
        AuthorizationRepeated(),
        InvalidCredentials(),
        InvalidDpopProofAtResource(),
    ],
)
def test_without_dpop_nothing_changes(error: KeyturnError) -> None:
    """DPoP off (no algorithms), or a route that is no resource: the Bearer challenge as RFC 6750 has it."""
    header = KEYTURN_ERRORS.headers(error).get("WWW-Authenticate", "")

    assert KEYTURN_ERRORS.at_resource(()).headers(error) == KEYTURN_ERRORS.headers(error)
    if not isinstance(error, InvalidDpopProofAtResource):
        assert "DPoP" not in header
    if isinstance(error, TokenMissing | InvalidCredentials):
        assert header == BARE_BEARER


def test_the_oauth_form_keeps_its_basic_challenge() -> None:
    """RFC 6749's form challenges ``Basic`` for a client that failed to authenticate, and nothing else."""
    form = OAUTH_ERRORS.at_resource(ALGORITHMS)

    assert form.headers(InvalidClient())["WWW-Authenticate"] == 'Basic realm="keyturn"'
    assert "WWW-Authenticate" not in form.headers(TokenMissing())


def test_a_resource_reading_bearer_tokens_under_another_scheme_challenges_in_it() -> None:
    """``keyturn.django``'s API under SimpleJWT's ``AUTH_HEADER_TYPES = ("JWT",)``: the bearer side of
    every challenge names ``JWT`` (RFC 9110 section 11.6.1: a scheme the resource acts on), ``DPoP`` after
    it; a token presented as ``DPoP`` keeps the ``DPoP`` challenge alone. Before: ``Bearer`` always."""
    jwt = KEYTURN_ERRORS.at_resource(ALGORITHMS, "JWT")

    assert challenge_of(TokenMissing(), jwt) == BARE.replace("Bearer", "JWT")
    for error, code in [
        (TokenExpired(), "invalid_token"),
        (AuthorizationRepeated(), "invalid_request"),
        (InsufficientScope(), "insufficient_scope"),
    ]:
        (scheme, params), *rest = challenges(challenge_of(error, jwt))
        assert (scheme, params["realm"], params["error"]) == ("JWT", "keyturn", code)
        assert [s for s, _ in rest] == ([] if code == "insufficient_scope" else ["DPoP"])
    (scheme, params), *rest = challenges(challenge_of(TokenExpired(), jwt.presented_in("dpop")))
    assert (scheme, params["error"], rest) == ("DPoP", "invalid_token", [])
    assert challenge_of(TokenMissing(), KEYTURN_ERRORS.at_resource(())) == BARE_BEARER
