"""``server.token_reply``: the login and refresh answer, decided once for ``keyturn serve`` and Django."""

from __future__ import annotations

import pytest

from keyturn.server.token_reply import NO_STORE, token_reply
from keyturn.sessions import TokenPair
from keyturn.testing import make_settings

NOW = 1_800_000_000.0
PAIR = TokenPair("access.jwt.sig", "refresh.jwt.sig", "sid-1", int(NOW) + 900, int(NOW) + 86_400, NOW)


def test_without_cookie_mode_the_refresh_token_is_in_the_body() -> None:
    """A client that asked for no cookie keeps its refresh token itself: nothing may set a cookie."""
    reply = token_reply(PAIR, make_settings(), csrf_header=False, routes_path="/auth", headers={"X-A": "1"})

    assert reply.body["refresh_token"] == "refresh.jwt.sig"
    assert (reply.body["expires_in"], reply.body["refresh_expires_in"]) == (900, 86_400)
    assert reply.headers == {**NO_STORE, "X-A": "1"}
    assert reply.cookie is None


@pytest.mark.parametrize(
    ("cookie_mode", "csrf_header"), [(True, False), (False, True), (True, True)], ids=str
)
def test_in_cookie_mode_the_refresh_token_is_only_in_the_cookie(cookie_mode: bool, csrf_header: bool) -> None:
    """``COOKIE_MODE`` or the CSRF header: the body must not carry the token script could read."""
    settings = make_settings(cookie_mode=cookie_mode)
    reply = token_reply(PAIR, settings, csrf_header=csrf_header, routes_path="/api/auth")

    assert "refresh_token" not in reply.body
    assert reply.body["access_token"] == "access.jwt.sig"
    assert reply.headers == NO_STORE
    assert reply.cookie is not None
    assert reply.cookie.morsel().OutputString() == (
        "keyturn_refresh=refresh.jwt.sig; HttpOnly; Max-Age=86400; Path=/api/auth; SameSite=Strict; Secure"
    )


def test_with_the_host_prefix_the_cookie_is_host_only_at_the_root() -> None:
    """``COOKIE_HOST_PREFIX``: browsers keep a ``__Host-`` cookie only at ``Path=/``."""
    settings = make_settings(cookie_mode=True, cookie_host_prefix=True)
    reply = token_reply(PAIR, settings, csrf_header=False, routes_path="/api/auth")

    assert reply.cookie is not None
    assert (reply.cookie.name, reply.cookie.path) == ("__Host-keyturn_refresh", "/")
    assert reply.cookie.morsel().OutputString().startswith("__Host-keyturn_refresh=refresh.jwt.sig; ")


def test_the_refresh_token_is_not_in_the_cookies_repr() -> None:
    """A logged reply must not carry the token."""
    reply = token_reply(PAIR, make_settings(cookie_mode=True), csrf_header=False, routes_path="/auth")

    assert "refresh.jwt.sig" not in repr(reply.cookie)


def test_no_reply_can_alter_the_shared_no_store_headers() -> None:
    """``NO_STORE`` is shared by every answer: a caller that adds a header to one reply must not add it
    to all (the reply without extra headers is handed the shared value itself)."""
    reply = token_reply(PAIR, make_settings(), csrf_header=False, routes_path="/auth")

    with pytest.raises(TypeError):
        reply.headers["Set-Cookie"] = "x=1"  # type: ignore[index]
    with pytest.raises(TypeError):
        NO_STORE["Cache-Control"] = "public"  # type: ignore[index]
    assert dict(NO_STORE) == {"Cache-Control": "no-store", "Pragma": "no-cache"}


def test_lifetimes_are_whole_seconds_left_rounded_down() -> None:
    """A client takes the token's expiry as ``server_time + expires_in``: rounded down, that is never after
    the token's real ``exp`` (a whole second), so no client sends a token it believes live after it died;
    a fresh 900 s token made 0.75 s into its second says 899."""
    late = NOW + 0.75
    pair = TokenPair("a.b.c", "r.s.t", "sid-1", int(late) + 900, int(late) + 86_400, late)

    assert (pair.expires_in, pair.refresh_expires_in) == (899, 86_399)
    assert late + pair.expires_in <= pair.access_expires_at
    assert late + pair.refresh_expires_in <= pair.refresh_expires_at
