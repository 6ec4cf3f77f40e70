"""The server of the ``test_api_*`` modules: ``keyturn serve``, or Keyturn embedded in the example app,
with a known set of users (:class:`Api`, :func:`api_server`; the ``api`` fixture of ``conftest.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .._secrets import new_password
from ..fastapi._example import running_example
from ._http import why
from ._server import add_user, cluster


@dataclass(repr=False)
class Api:
    """The session contract's server: ``keyturn serve``, or Keyturn installed in the example app
    (``examples/fastapi_app``: its own users table, logins by email, numeric subjects)."""

    kind: str
    url: str
    passwords: dict[str, str]
    subjects: dict[str, str]
    name_field: str = "username"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def credentials(self, name: str, password: str) -> dict[str, str]:
        """A login body, in the fields this server's login takes."""
        return {self.name_field: name, "password": password}

    def login(self, http: httpx.Client, name: str = "alice") -> dict[str, Any]:
        response = http.post("/auth/login", json=self.credentials(name, self.passwords[name]))
        assert response.status_code == 200, why(response)
        body: dict[str, Any] = response.json()
        return body

    def subject(self, name: str) -> str:
        return self.subjects[name]

    def serve_only(self, what: str) -> None:
        if self.kind != "serve":
            pytest.skip(f"{what}: keyturn serve's own, not part of what an app embeds")


USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank")


@contextlib.contextmanager
def api_server(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server of ``kind`` (``serve`` or ``embedded``) with the users of :data:`USERS`: alice is shared;
    each other user belongs to one test."""
    if kind == "embedded":
        with running_example(tmp_path_factory.mktemp("api-embedded")) as app:
            passwords = {name: new_password() for name in USERS}
            subjects = {name: str(app.users.add(name, passwords[name])) for name in USERS}
            yield Api("embedded", app.url, passwords, subjects, name_field="email")
        return
    with cluster(tmp_path_factory.mktemp("api"), 1, {"KEYTURN_DOCS": "on"}) as group:
        passwords = {group.username: group.password}
        for name in USERS[1:]:
            passwords[name] = add_user(group.data_dir, name)
        yield Api("serve", group.server.url, passwords, {name: name for name in USERS})
