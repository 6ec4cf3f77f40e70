"""The OAuth 2.0 surface's pure parts: parameters, client credentials, RFC error codes, shapes."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.clients import ClientRegistry
from keyturn.errors import (
    InvalidClient,
    InvalidDpopProof,
    InvalidRequest,
    KeyturnError,
    Overloaded,
    RateLimited,
    RefreshTokenBound,
    RefreshTokenReused,
    ServerError,
    SessionExpired,
    StoreUnavailable,
    TokenInvalid,
    UnsupportedGrantType,
    UseDpopNonce,
)
from keyturn.http import KEYTURN_ERRORS, OAUTH_ERRORS
from keyturn.oauth import (
    ClientCredentials,
    EndpointPaths,
    base_url_for,
    client_credentials,
    grant_type,
    metadata,
    oauth_error,
    origin_for,
    parameters,
)
from keyturn.store import MemoryStore
from keyturn.typing import ClientRecord

FORM = "application/x-www-form-urlencoded"


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# -- parameters --------------------------------------------------------------------------------------


def test_a_form_and_the_same_json_give_the_same_parameters() -> None:
    """OAuth clients send forms; Keyturn's own clients may send JSON: both are one request."""
    values = {"grant_type": "refresh_token", "refresh_token": "a.b.c", "client_id": "spa"}

    assert parameters(FORM, urlencode(values).encode()) == values
    assert parameters("application/json; charset=utf-8", json.dumps(values).encode()) == values


def test_a_parameter_given_twice_is_refused() -> None:
    """RFC 6749 section 3.2: which of two refresh tokens would be meant? Neither."""
    with pytest.raises(InvalidRequest):
        parameters(FORM, b"refresh_token=a&refresh_token=b")


def test_an_empty_value_counts_as_omitted() -> None:
    """RFC 6749 section 3.2: a parameter sent without a value is treated as if it were left out."""
    assert parameters(FORM, b"grant_type=refresh_token&client_id=") == {"grant_type": "refresh_token"}
    assert parameters("application/json", b'{"client_id": "", "scope": null}') == {}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[1]"),
        ("application/json", b'{"refresh_token": 7}'),
        ("application/json", b"{"),
        (FORM, b"\xff\xfe"),
        (FORM, b"no-equals-sign"),
        (FORM, "&".join(f"p{i}=v" for i in range(40)).encode()),
    ],
)
def test_a_body_that_is_neither_a_form_nor_an_object_of_strings_is_invalid_request(
    content_type: str, body: bytes
) -> None:
    with pytest.raises(InvalidRequest):
        parameters(content_type, body)


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@given(st.dictionaries(names, values, max_size=10))
def test_any_form_an_oauth_client_encodes_reads_back_exactly(params: dict[str, str]) -> None:
    """Whatever names and values (any Unicode, '&', '=', '+', '%'), a form-encoded body round-trips."""
    assert parameters(FORM, urlencode(params).encode()) == params


@given(st.binary(max_size=200), st.sampled_from([FORM, "application/json", "", "text/plain"]))
def test_any_body_gives_parameters_or_invalid_request_and_nothing_else(body: bytes, media: str) -> None:
    """Hostile bytes never raise anything but ``invalid_request`` (which the renderer answers)."""
    try:
        found = parameters(media, body)
    except InvalidRequest:
        return
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in found.items())


def test_only_the_refresh_token_grant_is_supported() -> None:
    assert grant_type({"grant_type": "refresh_token", "refresh_token": "t"}) == "t"
    with pytest.raises(UnsupportedGrantType):
        grant_type({"grant_type": "password", "refresh_token": "t"})
    with pytest.raises(InvalidRequest):
        grant_type({"refresh_token": "t"})
    with pytest.raises(InvalidRequest):
        grant_type({"grant_type": "refresh_token"})


# -- client credentials -----------------------------------------------------------------------------


def test_basic_credentials_are_form_decoded_as_rfc_6749_says() -> None:
    """Section 2.3.1: id and secret are form-encoded before base64, so ':' and '+' survive."""
    found = client_credentials(basic("my:client", "s+cr t/"), {})

    assert found == ClientCredentials("my:client", "s+cr t/", "client_secret_basic")


def test_body_credentials_are_client_secret_post_and_a_bare_id_a_public_client() -> None:
    post = client_credentials(None, {"client_id": "rs", "client_secret": "s"})
    public = client_credentials(None, {"client_id": "spa"})
    bearer = client_credentials("Bearer some.access.token", {"client_id": "spa"})

    assert post == ClientCredentials("rs", "s", "client_secret_post")
    assert public == ClientCredentials("spa")
    assert bearer == ClientCredentials("spa")  # another scheme is not client authentication


def test_two_ways_of_authenticating_at_once_are_refused() -> None:
    """RFC 6749 section 2.3: a client MUST NOT use more than one authentication method per request."""
    with pytest.raises(InvalidRequest):
        client_credentials(basic("rs", "s"), {"client_secret": "s"})


@pytest.mark.parametrize("header", ["Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()])
def test_basic_credentials_that_do_not_decode_are_invalid_client(header: str) -> None:
    with pytest.raises(InvalidClient):
        client_credentials(header, {})


def test_a_body_client_id_other_than_basics_is_invalid_client() -> None:
    with pytest.raises(InvalidClient):
        client_credentials(basic("rs", "s"), {"client_id": "other"})


async def test_public_and_confidential_clients_authenticate_as_their_kind(anyio_backend: str) -> None:
    """A public client presents no secret; a confidential one must present the right one; no id at all is
    the built-in public client ``keyturn``; an unknown id is ``invalid_client``."""
    store = MemoryStore()
    registry = ClientRegistry(store, b"k" * 32)
    await store.add_client(ClientRecord("spa", 1.0))
    added = await registry.add("rs", confidential=True)
    assert added is not None
    assert added.secret is not None

    assert (await registry.authenticate(ClientCredentials(None))).client_id == "keyturn"
    assert (await registry.authenticate(ClientCredentials("spa"))).client_id == "spa"
    assert (
        await registry.authenticate(ClientCredentials("rs", added.secret, "client_secret_post"))
    ).confidential
    for refused in (
        ClientCredentials("spa", "a secret", "client_secret_post"),
        ClientCredentials("rs"),
        ClientCredentials("rs", "wrong", "client_secret_basic"),
        ClientCredentials("nobody"),
        ClientCredentials("bad id with spaces"),
    ):
        with pytest.raises(InvalidClient):
            await registry.authenticate(refused)
    with pytest.raises(ValueError, match="built-in"):
        await registry.add("keyturn", confidential=False)


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (InvalidClient(), "invalid_client", 401),
        (UnsupportedGrantType(), "unsupported_grant_type", 400),
        (InvalidRequest(), "invalid_request", 400),
        (TokenInvalid(), "invalid_grant", 400),
        (RefreshTokenReused(), "invalid_grant", 400),
        (SessionExpired(), "invalid_grant", 400),
        (RateLimited(3), "rate_limited", 429),
        (ServerError(), "server_error", 500),
        (StoreUnavailable(), "temporarily_unavailable", 503),
        (Overloaded(1), "temporarily_unavailable", 503),
        (InvalidDpopProof(), "invalid_dpop_proof", 400),  # RFC 9449's own codes at the token endpoint
        (UseDpopNonce("n"), "use_dpop_nonce", 400),
        (RefreshTokenBound(), "invalid_grant", 400),
    ],
)
def test_each_error_has_its_rfc_6749_code_and_status(error: KeyturnError, code: str, status: int) -> None:
    """OAuth clients act on ``error``; Keyturn's own clients on ``keyturn_error``: both are there."""
    body = OAUTH_ERRORS.body(error)

    assert oauth_error(error) == (code, status)
    assert OAUTH_ERRORS.status(error) == status
    assert body["error"] == code
    assert body["keyturn_error"] == error.code
    assert body["retryable"] is error.retryable


def test_invalid_client_challenges_basic_and_invalid_grant_challenges_nothing() -> None:
    """RFC 6749 section 5.2: 401 with the scheme the client can use; a refused grant is not a bearer
    token problem, so no ``Bearer error="invalid_token"`` challenge."""
    assert OAUTH_ERRORS.headers(InvalidClient())["WWW-Authenticate"] == 'Basic realm="keyturn"'
    assert "WWW-Authenticate" not in OAUTH_ERRORS.headers(RefreshTokenReused())
    assert OAUTH_ERRORS.headers(RateLimited(2.5))["Retry-After"] == "3"
    assert OAUTH_ERRORS.headers(TokenInvalid())["Cache-Control"] == "no-store"


def test_keyturns_own_routes_keep_their_error_body() -> None:
    """The /auth/* routes are unchanged: Keyturn's code in ``error``, no ``keyturn_error``."""
    assert KEYTURN_ERRORS.body(RefreshTokenReused()) == {
        "error": "refresh_token_reused",
        "error_description": RefreshTokenReused.description,
        "retryable": False,
    }
    assert KEYTURN_ERRORS.status(RefreshTokenReused()) == 401


# -- metadata -----------------------------------------------------------------------------------------


def test_metadata_names_every_endpoint_and_dpop_only_when_on() -> None:
    document = metadata("https://auth.example", "https://auth.example")
    with_dpop = metadata("https://auth.example", "https://auth.example", dpop_algs=["ES256"])

    assert document["token_endpoint"] == "https://auth.example/oauth/token"
    assert document["revocation_endpoint"] == "https://auth.example/oauth/revoke"
    assert document["introspection_endpoint"] == "https://auth.example/oauth/introspect"
    assert document["jwks_uri"] == "https://auth.example/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["refresh_token"]
    assert "dpop_signing_alg_values_supported" not in document
    assert with_dpop["dpop_signing_alg_values_supported"] == ["ES256"]


def test_an_issuer_url_places_the_endpoints_and_a_bare_name_leaves_them_to_the_request() -> None:
    """With ``ISSUER`` the public URL, no Host header a caller sends can move the endpoints."""
    assert base_url_for("https://auth.example/", "http://evil.example/") == "https://auth.example"
    assert base_url_for("keyturn", "http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_routes_that_know_their_full_paths_take_only_the_issuers_origin() -> None:
    """A Django project's ``reverse()`` carries its script prefix: the issuer's path must not be added
    again, and a Host header cannot move the endpoints when the issuer is a URL."""
    paths = EndpointPaths("/app/oauth/token", "/app/oauth/revoke", "/app/oauth/introspect", "/app/jwks")
    base = origin_for("https://auth.example/app", "http://evil.example")
    document = metadata("https://auth.example/app", base, paths=paths)

    assert base == "https://auth.example"
    assert document["token_endpoint"] == "https://auth.example/app/oauth/token"
    assert document["jwks_uri"] == "https://auth.example/app/jwks"
    assert origin_for("keyturn", "http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)


@given(ids, st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_any_id_and_secret_survive_basic_encoding(client_id: str, secret: str) -> None:
    """What an RFC 6749 client encodes (form-encoding, then base64) decodes to exactly what it sent,
    ':' in the id included; an empty secret is a secret that will not match, not a missing one."""
    found = client_credentials(basic(client_id, secret), {})

    assert found == ClientCredentials(client_id, secret, "client_secret_basic")


def test_long_unicode_credentials_within_the_field_cap_still_decode() -> None:
    """Form-encoding a 4-byte character takes 12 characters: the cap is on the decoded fields."""
    client_id, secret = "\U0001f511" * 100, "\U0001f512" * 200

    assert client_credentials(basic(client_id, secret), {}).secret == secret
    with pytest.raises(InvalidClient):
        client_credentials(basic(client_id, "x" * 257), {})
