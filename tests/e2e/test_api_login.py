"""Login over real HTTP: the documented token response, failures that tell nothing, and usernames that
only look alike (normalised to one name, or refused when they mix scripts).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from .._secrets import new_password
from ._api import Api
from ._http import TOKEN_KEYS, assert_error, jwt_parts, login, why
from ._server import cluster, run_cli


def test_login_answers_the_documented_token_response(api: Api) -> None:
    """Clients rely on every field of the token response and on it never being cached."""
    with api.client() as http:
        before = time.time()
        answer = http.post("/auth/login", json=api.credentials("alice", api.passwords["alice"]))
        after = time.time()
    assert answer.status_code == 200, why(answer)
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= 900
    assert isinstance(body["refresh_expires_in"], int)
    assert 900 < body["refresh_expires_in"] <= 1_209_600
    assert isinstance(body["server_time"], float)
    # Same host, same clock: the server's time lies between the moments the call left and came back.
    assert before - 1 <= body["server_time"] <= after + 1
    access_header, access_claims = jwt_parts(body["access_token"])
    refresh_header, refresh_claims = jwt_parts(body["refresh_token"])
    assert (access_header["typ"], access_header["alg"]) == ("at+jwt", "ES256")
    assert (refresh_header["typ"], refresh_header["alg"]) == ("rt+jwt", "HS256")
    assert access_claims["sid"] == refresh_claims["sid"] == body["session_id"]
    assert access_claims["sub"] == refresh_claims["sub"] == api.subject("alice")
    assert (access_claims["iss"], access_claims["aud"]) == ("keyturn", "keyturn-api")
    assert access_claims["exp"] - access_claims["iat"] == 900


def test_wrong_password_and_unknown_user_are_indistinguishable(api: Api) -> None:
    """A login failure must not tell whether the name exists: same status, body and challenge."""
    with api.client() as http:
        wrong = http.post("/auth/login", json=api.credentials("alice", "not-the-password"))
        unknown = http.post("/auth/login", json=api.credentials("nobody-here", "whatever"))
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong.headers.get("cache-control") == unknown.headers.get("cache-control")


def test_login_is_case_sensitive_about_the_password(api: Api) -> None:
    """A password that differs only in case is a wrong password."""
    password = api.passwords["alice"]
    changed = password.swapcase() if password.swapcase() != password else password + "x"
    with api.client() as http:
        answer = http.post("/auth/login", json=api.credentials("alice", changed))
    assert_error(answer, 401, "invalid_credentials")


def test_usernames_that_only_look_alike_are_one_name(tmp_path: Path) -> None:
    """Usernames are normalised (NFKC, case folded): a fullwidth or upper-case spelling of an existing
    user cannot be added, and logs in as that user; a user stored before names were normalised (with
    capitals) still logs in, as it was typed then."""
    with cluster(tmp_path / "data", 1) as group:
        lookalike = run_cli(group.data_dir, "users", "add", "\uff21LICE", "--password-stdin", stdin="x" * 16)
        assert lookalike.returncode != 0, lookalike.stdout
        assert "already exists" in lookalike.stderr
        bob = new_password()
        added = run_cli(group.data_dir, "users", "add", "BOB", "--password-stdin", stdin=bob + "\n")
        assert added.returncode == 0, added.stderr
        with contextlib.closing(sqlite3.connect(group.data_dir / "keyturn.db")) as db, db:
            db.execute("UPDATE users SET username = 'Alice' WHERE username = 'alice'")  # stored long ago
        with group.server.client() as http:
            for typed in ("bob", "Bob", "\uff42\uff4f\uff42"):
                assert jwt_parts(login(http, typed, bob)["access_token"])[1]["sub"] == "bob", typed
            assert jwt_parts(login(http, "Alice", group.password)["access_token"])[1]["sub"] == "Alice"


def test_a_lookalike_that_mixes_scripts_cannot_be_added_and_a_name_in_one_script_can(tmp_path: Path) -> None:
    """``alice`` with a Cyrillic U+0430 for its ``a`` survives normalisation as another name: it is refused
    as a mixed-script name; a name written all in Cyrillic is added and logs in."""
    with cluster(tmp_path / "data", 1) as group:
        lookalike = run_cli(group.data_dir, "users", "add", "\u0430lice", "--password-stdin", stdin="x" * 16)
        assert lookalike.returncode != 0, lookalike.stdout
        assert "Cyrillic and Latin" in lookalike.stderr
        cyrillic, password = "\u0430\u043b\u0438\u0441\u0430", new_password()
        added = run_cli(group.data_dir, "users", "add", cyrillic, "--password-stdin", stdin=password + "\n")
        assert added.returncode == 0, added.stderr
        listed = run_cli(group.data_dir, "users", "list").stdout
        assert "\u0430lice" not in listed
        with group.server.client() as http:
            assert jwt_parts(login(http, cyrillic, password)["access_token"])[1]["sub"] == cyrillic
