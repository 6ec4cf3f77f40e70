"""Client authentication at ``/oauth/token``, ``/oauth/revoke`` and ``/oauth/introspect`` (RFC 6749
sections 2.3, 2.3.1 and 5.2, RFC 7009 section 2.1, RFC 7662 section 2.1), the same in every front end
(``_oauth_targets.FRONTS``: ``keyturn serve``, the Django app under WSGI and ASGI, a FastAPI app that
embeds Keyturn):

- more than one ``Authorization`` header is 400 ``invalid_request``, as at every other route: each front
  end used to take the first (``keyturn serve``, the FastAPI app) or fail to decode the comma-joined
  value WSGI and Django's ASGI handler make of them (the Django app, 401);
- more than one authentication method (Basic and the body's secret) is 400 ``invalid_request``;
- failed authentication through ``Authorization: Basic`` (a wrong secret, an unknown client, a public
  client with a secret, a value that is not base64 of ``id:secret``, a body ``client_id`` that is not
  Basic's) is 401 ``invalid_client`` with ``WWW-Authenticate: Basic realm="keyturn"`` (section 5.2: the
  scheme the client used); through the body, 401 ``invalid_client`` too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote_plus

import httpx
import pytest

from ._oauth_targets import FRONTS, Target, running

ENDPOINTS = ("/oauth/token", "/oauth/revoke", "/oauth/introspect")
CHALLENGE = 'Basic realm="keyturn"'


@pytest.fixture(scope="module", params=FRONTS)
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running(request.param, tmp_path_factory.mktemp(request.param)) as found:
        yield found


def basic(client_id: str, secret: str) -> str:
    """``client_secret_basic``: id and secret each form-encoded, then base64 (RFC 6749 section 2.3.1)."""
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


def call(
    http: httpx.Client, path: str, headers: list[tuple[str, str]] | None = None, /, **params: str
) -> httpx.Response:
    """``path`` with a (made-up) token: client authentication comes before any token is looked at."""
    grant = {"grant_type": "refresh_token", "refresh_token": "x"}
    token = grant if path.endswith("/token") else {"token": "x"}
    return http.post(path, data={**token, **params}, headers=headers or [])


def answer(response: httpx.Response) -> tuple[int, str | None, str | None]:
    body = response.json()
    return response.status_code, body.get("error"), body.get("keyturn_error")


def test_more_than_one_authorization_header_is_invalid_request(front: Target) -> None:
    """RFC 6749 section 5.2 (more than one mechanism, several credentials): neither header is used; the
    first used to win (and the call went through as that client), or the joined value was 401."""
    rs = basic("rs", front.secret)
    pairs = {
        "the same Basic twice": [rs, rs],
        "Basic, then Bearer": [rs, "Bearer some.access.token"],
        "Bearer, then Basic": ["Bearer some.access.token", rs],
        "Basic of two clients": [basic("spa", ""), rs],
    }
    with front.client() as http:
        found = {
            (path, name): call(http, path, [("Authorization", value) for value in values])
            for path in ENDPOINTS
            for name, values in pairs.items()
        }
    assert {key: answer(r) for key, r in found.items()} == dict.fromkeys(
        found, (400, "invalid_request", "invalid_request")
    )
    for response in found.values():
        assert "more than one Authorization header" in response.json()["error_description"]
        assert response.headers["cache-control"] == "no-store"


def test_basic_and_the_body_at_once_is_invalid_request(front: Target) -> None:
    """RFC 6749 section 2.3: a client MUST NOT use more than one authentication method in a request."""
    rs = [("Authorization", basic("rs", front.secret))]
    with front.client() as http:
        found = {
            (path, with_id): call(
                http, path, rs, client_secret=front.secret, **({"client_id": "rs"} if with_id else {})
            )
            for path in ENDPOINTS
            for with_id in (True, False)
        }
    assert {key: answer(r) for key, r in found.items()} == dict.fromkeys(
        found, (400, "invalid_request", "invalid_request")
    )


def test_failed_basic_authentication_is_invalid_client_with_a_basic_challenge(front: Target) -> None:
    """RFC 6749 section 5.2: a client that tried the Authorization header gets 401 and a challenge in its
    scheme, whether its credentials were wrong or did not even decode."""
    refused = {
        "wrong secret": [basic("rs", front.secret + "x")],
        "unknown client": [basic("nobody", front.secret)],
        "a public client's secret": [basic("spa", "s")],
        "no credentials": ["Basic"],
        "not base64": ["Basic !!!"],
        "no colon": ["Basic " + base64.b64encode(b"rs").decode()],
        "not UTF-8": ["Basic " + base64.b64encode(b"\xff:\xfe").decode()],
    }
    with front.client() as http:
        found = {
            (path, name): call(http, path, [("Authorization", value) for value in values])
            for path in ENDPOINTS
            for name, values in refused.items()
        }
        # The body naming another client than Basic's: refused, whichever is the real one.
        for path in ENDPOINTS:
            found[path, "another body client_id"] = call(
                http, path, [("Authorization", basic("rs", front.secret))], client_id="spa"
            )
    assert {key: answer(r) for key, r in found.items()} == dict.fromkeys(
        found, (401, "invalid_client", "invalid_credentials")
    )
    assert {key: r.headers.get("www-authenticate") for key, r in found.items()} == dict.fromkeys(
        found, CHALLENGE
    )


def test_failed_body_authentication_is_invalid_client(front: Target) -> None:
    """RFC 6749 section 5.2: 401 ``invalid_client``; the challenge is optional here, and names the scheme
    the service prefers."""
    refused = {
        "wrong secret": {"client_id": "rs", "client_secret": front.secret + "x"},
        "unknown client": {"client_id": "nobody", "client_secret": front.secret},
        "a public client's secret": {"client_id": "spa", "client_secret": "s"},
    }
    with front.client() as http:
        found = {
            (path, name): call(http, path, None, **params)
            for path in ENDPOINTS
            for name, params in refused.items()
        }
    assert {key: answer(r) for key, r in found.items()} == dict.fromkeys(
        found, (401, "invalid_client", "invalid_credentials")
    )
    assert {r.headers.get("www-authenticate") for r in found.values()} == {CHALLENGE}


def test_one_method_with_a_matching_client_id_is_accepted(front: Target) -> None:
    """What is allowed stays allowed: Basic with the same ``client_id`` in the body (RFC 6749 section
    3.2.1), the body's id and secret, and a Bearer token beside a public client's ``client_id`` (not
    client authentication at all)."""
    rs = [("Authorization", basic("rs", front.secret))]
    with front.client() as http:
        for path in ("/oauth/revoke", "/oauth/introspect"):
            same_id = call(http, path, rs, client_id="rs")
            post = call(http, path, client_id="rs", client_secret=front.secret)
            assert (same_id.status_code, post.status_code) == (200, 200), (same_id.text, post.text)
        bearer = call(http, "/oauth/revoke", [("Authorization", "Bearer some.access.token")], client_id="spa")
        assert bearer.status_code == 200, bearer.text
        token = call(http, "/oauth/token", rs, client_id="rs")
    assert answer(token) == (400, "invalid_grant", "token_invalid")  # authenticated; the token is bad
