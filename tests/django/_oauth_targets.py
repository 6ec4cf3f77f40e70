"""The servers the OAuth 2.0 contract (``test_oauth_contract.py``) runs against, each a real process:

- ``serve``: ``keyturn serve`` (``/auth/*``, clients added with ``keyturn clients``);
- ``django-wsgi-sqlite``: the example project on ``keyturn.django`` under gunicorn's sync workers, SQLite;
- ``django-asgi-postgresql``: the same under uvicorn, PostgreSQL;
- ``fastapi``: the FastAPI example app (``keyturn.fastapi.install``, ``python -m examples.fastapi_app
  serve``), clients added with ``keyturn clients`` on its store; not in :data:`TARGETS` (its login takes
  ``email``), but in :data:`FRONTS`, which the client authentication tests (``test_oauth_client_auth.py``)
  run against.

The Django project routes ``path("oauth/", include("keyturn.django.oauth_urls"))`` and the metadata at its
root, so the OAuth URLs are the service's; only the session API's prefix differs (``/api/auth``) and the
clients are added with ``manage.py keyturn_clients``. Each has one user, a public client ``spa`` and a
confidential ``rs``; access tokens live 5 s, ``LEEWAY`` 0, no grace period.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .. import _logsweep
from .._secrets import withheld
from ..e2e._server import cluster, run_cli
from ..fastapi._example import running_example
from ._project import EXAMPLE, ExampleProject
from .conftest import database_url

LIFETIME = 5
SERVICE_ENV = {
    "KEYTURN_ACCESS_TOKEN_LIFETIME": str(LIFETIME),
    "KEYTURN_LEEWAY": "0",
    "KEYTURN_GRACE_PERIOD": "0",
}
DJANGO_ENV = {"ACCESS_LIFETIME": str(LIFETIME), "LEEWAY": "0", "GRACE_PERIOD": "0"}
TARGETS = ("serve", "django-wsgi-sqlite", "django-asgi-postgresql")
FRONTS = (*TARGETS, "fastapi")
"""Every front end that serves the OAuth routes: ``keyturn serve``, the Django app (WSGI and ASGI) and a
FastAPI app that embeds Keyturn."""


@dataclass
class Target:
    """One running server and how to reach its users and clients."""

    name: str
    url: str
    auth: str
    """The session API's prefix: ``/auth`` (``keyturn serve``) or ``/api/auth`` (the example project)."""
    username: str
    password: str = field(repr=False)
    clients: Callable[..., subprocess.CompletedProcess[str]] = field(repr=False)
    """``keyturn clients ARGS`` or ``manage.py keyturn_clients ARGS``; does not raise on a non-zero exit."""
    secret: str = field(default="", repr=False)
    """The confidential client ``rs``'s secret."""
    subject: str = ""
    login_field: str = "username"
    """The login body's name for :attr:`username` (the FastAPI example app's is ``email``)."""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def login(self, headers: dict[str, str] | None = None, **extra: str) -> dict[str, Any]:
        with self.client() as http:
            response = http.post(
                self.auth + "/login",
                json={self.login_field: self.username, "password": self.password, **extra},
                headers=headers or {},
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _registered(target: Target) -> Target:
    added = target.clients("add", "rs", "--confidential")
    assert added.returncode == 0, added.stderr
    target.secret = added.stdout.split("client_secret: ", 1)[1].strip()
    assert target.clients("add", "spa").returncode == 0
    pair = target.login()
    with target.client() as http:
        target.subject = http.get(
            target.auth + "/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).json()["subject"]
    return target


@contextlib.contextmanager
def running(name: str, tmp_path: Path, settings: Mapping[str, str] | None = None) -> Iterator[Target]:
    """``name`` running; ``settings``: more of them, by the names of ``settings.KEYTURN`` (``KEYTURN_*``
    for ``keyturn serve``, the example project's environment for Django: those its settings.py reads)."""
    more = dict(settings or {})
    if name == "serve":
        data_dir = tmp_path / "data"
        env = {**SERVICE_ENV, **{f"KEYTURN_{k}": v for k, v in more.items()}}
        with cluster(data_dir, 1, env) as group:

            def keyturn_clients(*args: str) -> subprocess.CompletedProcess[str]:
                return run_cli(data_dir, "clients", *args, env=env)

            yield _registered(
                Target(name, group.server.url, "/auth", group.username, group.password, keyturn_clients)
            )
        return
    if name == "fastapi":
        data_dir = tmp_path / "data"
        env = {
            "KEYTURN_SECRET_KEY": withheld(secrets.token_urlsafe(32)),  # the CLI's too: it hashes secrets
            **SERVICE_ENV,
            **{f"KEYTURN_{k}": v for k, v in more.items()},
        }
        with running_example(data_dir, env) as app:
            email, password = app.add_user()

            def example_clients(*args: str) -> subprocess.CompletedProcess[str]:
                return run_cli(data_dir, "clients", *args, env=env)

            found = Target(name, app.url, "/auth", email, password, example_clients, login_field="email")
            yield _registered(found)
        return
    _, _, kind = name.split("-")
    with database_url(kind, tmp_path) as database:
        project = ExampleProject(tmp_path, database, env={**DJANGO_ENV, **more})
        project.manage("migrate")
        (user,) = project.add_users(1)

        def manage_clients(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [sys.executable, "manage.py", "keyturn_clients", *args],
                cwd=EXAMPLE,
                env=project.environment("keyturn"),
                text=True,
                capture_output=True,
                timeout=120,
                check=False,
            )
            _logsweep.record_output(f"manage.py keyturn_clients {args[0]}", done.stdout, done.stderr)
            return done

        server = "gunicorn" if "wsgi" in name else "uvicorn"
        with project.serve("keyturn", server=server) as url:
            yield _registered(Target(name, url, "/api/auth", user.username, user.password, manage_clients))
