"""What a new user meets in the first hour with the ``keyturn`` command and a running server."""

from __future__ import annotations

from pathlib import Path

import httpx

from ._server import Cluster, run_cli


def test_users_add_with_piped_input_and_no_password_stdin_says_how(tmp_path: Path) -> None:
    """Without a terminal the password cannot be asked for: a clear error naming the flag, no traceback."""
    done = run_cli(tmp_path, "users", "add", "alice", stdin="correct horse battery\n")

    assert done.returncode == 2
    assert "--password-stdin" in done.stderr
    assert "Traceback" not in done.stderr
    assert "alice" not in run_cli(tmp_path, "users", "list").stdout


def test_a_bad_setting_names_the_variable_the_user_set(tmp_path: Path) -> None:
    """``KEYTURN_ACCESS_TOKEN_LIFETIME=abc`` is reported by that name and value, not as a pydantic dump."""
    done = run_cli(tmp_path, "users", "list", env={"KEYTURN_ACCESS_TOKEN_LIFETIME": "abc"})

    assert done.returncode == 2
    assert "KEYTURN_ACCESS_TOKEN_LIFETIME" in done.stderr
    assert "'abc'" in done.stderr
    assert "validation error for Settings" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_misspelt_variable_is_named_with_its_likely_meaning(tmp_path: Path) -> None:
    """A ``KEYTURN_*`` variable that is no setting is warned about, not silently ignored."""
    done = run_cli(tmp_path, "users", "list", env={"KEYTURN_ACCES_TOKEN_LIFETIME": "60"})

    assert done.returncode == 0
    assert "KEYTURN_ACCES_TOKEN_LIFETIME is not a Keyturn setting" in done.stderr
    assert "did you mean KEYTURN_ACCESS_TOKEN_LIFETIME?" in done.stderr


def test_head_answers_on_health_checks_and_the_jwks(one_server: Cluster) -> None:
    """``curl -I`` and load balancers' HEAD probes get the GET's status and headers, without a body."""
    base = one_server.server.url
    for path in ("/healthz", "/readyz", "/.well-known/jwks.json"):
        head = httpx.head(base + path, timeout=10)
        get = httpx.get(base + path, timeout=10)

        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    assert "max-age" in httpx.head(base + "/.well-known/jwks.json", timeout=10).headers["cache-control"]


def test_keyturn_serve_refuses_a_cors_wildcard_at_start(tmp_path: Path) -> None:
    """``KEYTURN_CORS_ORIGINS=*`` would let any site use a visitor's cookie session: refused, and why."""
    done = run_cli(tmp_path, "serve", "--port", "1", env={"KEYTURN_CORS_ORIGINS": "*"})
    assert done.returncode == 2, done.stderr
    assert "KEYTURN_CORS_ORIGINS" in done.stderr
    assert "credentials" in done.stderr
    assert "Traceback" not in done.stderr
