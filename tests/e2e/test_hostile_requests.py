"""Malformed requests over real HTTP: bodies that are not what an endpoint takes, bodies over the cap
(with and without a Content-Length), and unknown paths or methods each get the one error body, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._hostile import Hostile, assert_session_untouched
from ._http import assert_error, why

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "content", "headers"),
    [
        ("/auth/login", b"not json", JSON),
        ("/auth/login", b"{", JSON),
        ("/auth/login", b'{"username": 1, "password": []}', JSON),
        ("/auth/login", b'{"username": "alice"}', JSON),
        ("/auth/login", b'{"password": "x"}', JSON),
        ("/auth/login", b"{}", JSON),
        ("/auth/login", b"[]", JSON),
        ("/auth/login", b'{"username": "", "password": ""}', JSON),
        ("/auth/login", b"", JSON),
        ("/auth/login", b"username=alice&password=x", {"content-type": "application/x-www-form-urlencoded"}),
        ("/auth/refresh", b"not json", JSON),
        ("/auth/refresh", b'{"refresh_token": 12}', JSON),
        ("/auth/refresh", b'{"refresh_token": ["a"]}', JSON),
        ("/auth/refresh", b"{}", JSON),
        ("/auth/refresh", b'"a string"', JSON),
        ("/auth/refresh", b"\xff\xfe\xfd", JSON),
        # a body must say it is JSON, on every route (FastAPI's strict content type; refresh parses its own)
        ("/auth/refresh", b'{"refresh_token": "x"}', {"content-type": "text/plain"}),
        ("/auth/refresh", b'{"refresh_token": "x"}', {"content-type": ""}),
        ("/auth/login", b'{"username": "alice", "password": "x"}', {"content-type": "text/plain"}),
        ("/auth/login", b'{"username": "alice", "password": "x"}', {}),  # no Content-Type at all
        ("/auth/logout", b"not json", JSON),
        ("/auth/logout", b"{}", JSON),
        ("/auth/logout-all", b"{}", JSON),
        ("/auth/revoke", b"not json", JSON),
        ("/auth/revoke", b"{}", JSON),
        ("/auth/revoke", b'{"token": 5}', JSON),
        ("/auth/revoke", b"token_type_hint=x", {"content-type": "application/x-www-form-urlencoded"}),
        # JSON nested deeper than a parser recurses, well under the size cap
        ("/auth/revoke", b"[" * 100_000, JSON),
        ("/auth/refresh", b"[" * 100_000, JSON),
        ("/auth/login", b'{"username": ' + b"[" * 100_000, JSON),
    ],
)
def test_malformed_body_is_invalid_request(
    hostile: Hostile, path: str, content: bytes, headers: dict[str, str]
) -> None:
    """A body that is not what the endpoint takes is a 400 invalid_request with the error body."""
    with hostile.server.server.client() as http:
        body = assert_error(http.post(path, content=content, headers=headers), 400, "invalid_request")
        # The description says what is wrong without echoing what was sent.
        assert "alice" not in body["error_description"]


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout", "/auth/revoke"])
def test_body_over_the_cap_is_413_with_error_body(hostile: Hostile, path: str) -> None:
    """A 1 MiB body is refused before it is read whole, with 413 and the one error body."""
    with hostile.server.server.client() as http:
        answer = http.post(path, content=b"{" + b" " * (1 << 20) + b"}", headers=JSON)
        assert_error(answer, 413, "invalid_request")


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout", "/auth/revoke"])
def test_chunked_body_over_the_cap_is_refused_with_error_body(hostile: Hostile, path: str) -> None:
    """A body over the cap without a Content-Length (chunked) is refused as invalid_request, never a 500.

    docs/contract.md: 413, or 400 when the overflow happens while a JSON body is being parsed.
    """

    def chunks() -> Iterator[bytes]:
        yield b'{"refresh_token": "'
        for _ in range(128):
            yield b"a" * 8192
        yield b'"}'

    with hostile.server.server.client() as http:
        answer = http.post(path, content=chunks(), headers=JSON)
        assert "content-length" not in answer.request.headers
        assert answer.status_code in {400, 413}, why(answer)
        assert_error(answer, answer.status_code, "invalid_request")
        assert_session_untouched(hostile, http)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/auth/nope", 404),
        ("POST", "/auth", 404),
        ("GET", "/.well-known/nope", 404),
        ("GET", "/auth/login", 405),
        ("DELETE", "/auth/refresh", 405),
        ("PUT", "/auth/me", 405),
    ],
)
def test_unknown_path_or_method_has_error_body(hostile: Hostile, method: str, path: str, status: int) -> None:
    """Even a wrong URL gets the one error body, so every caller can parse every failure."""
    with hostile.server.server.client() as http:
        assert_error(http.request(method, path), status, "invalid_request")


# (method, path, the headers' values): "access" and "refresh" stand for alice's live tokens. On the routes
# that end sessions the live token comes second, after one that would be refused, so that a server that took
# either header alone would refuse, never end alice's session.
REPEATED_AUTHORIZATION = [
    ("GET", "/auth/me", ("Bearer access", "Bearer junk.junk.junk")),
    ("GET", "/auth/me", ("Bearer junk.junk.junk", "Bearer access")),
    ("GET", "/auth/me", ("Basic eA==", "Bearer access")),
    ("GET", "/auth/me", ("Bearer access", "Bearer access")),
    ("GET", "/auth/sessions", ("Bearer refresh", "Bearer junk.junk.junk")),
    ("GET", "/auth/sessions", ("Basic eA==", "Bearer refresh")),
    ("POST", "/auth/logout", ("Basic eA==", "Bearer access")),
    ("POST", "/auth/logout", ("Bearer junk.junk.junk", "Bearer access")),
    ("POST", "/auth/logout-all", ("Basic eA==", "Bearer refresh")),
    ("POST", "/auth/logout-all", ("Bearer junk.junk.junk", "Bearer refresh")),
]


@pytest.mark.parametrize(("method", "path", "values"), REPEATED_AUTHORIZATION)
def test_more_than_one_authorization_header_is_invalid_request(
    hostile: Hostile, method: str, path: str, values: tuple[str, str]
) -> None:
    """RFC 6750 section 3.1: more than one way of presenting a token is 400 ``invalid_request``, with a
    challenge naming it; the service uses neither header, so nothing is ended."""
    tokens = {"access": hostile.forge.real_access, "refresh": hostile.forge.real_refresh}
    headers = [
        ("Authorization", " ".join(tokens.get(part, part) for part in value.split())) for value in values
    ]
    with hostile.server.server.client() as http:
        response = http.request(method, path, headers=headers)
        body = assert_error(response, 400, "invalid_request")
        assert body["error_description"] == "The request carries more than one Authorization header."
        challenge = response.headers.get("www-authenticate", "")
        assert challenge.startswith('Bearer realm="keyturn", error="invalid_request"'), challenge
        assert_session_untouched(hostile, http)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/auth/logout"), ("POST", "/auth/logout-all"), ("GET", "/auth/sessions")]
)
@pytest.mark.parametrize("authorization", [None, "Basic eA==", 'Digest username="alice"'])
def test_another_scheme_is_no_refresh_token_given(
    hostile: Hostile, method: str, path: str, authorization: str | None
) -> None:
    """Where a refresh token may come as ``Authorization: Bearer``, another scheme presents none: the
    same 400 ``invalid_request`` as no header at all (docs/contract.md), no challenge."""
    headers = {} if authorization is None else {"Authorization": authorization}
    with hostile.server.server.client() as http:
        response = http.request(method, path, headers=headers)
        body = assert_error(response, 400, "invalid_request")
        assert body["error_description"] == "No refresh token was given."
        assert "www-authenticate" not in response.headers
        assert_session_untouched(hostile, http)
