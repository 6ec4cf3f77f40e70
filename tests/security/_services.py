"""Real ``keyturn serve`` processes on each store backend, a resource server in front of each, the
service's own keys (as only an operator holding the master secret has them), and an attacker's web server.

Each service gets its own place in its backend (a SQLite file, a PostgreSQL schema or a Redis key
prefix, see ``tests/contract/backends.py``) and a random master secret, so its keys can be read back
from the store to sign tokens the service never issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

from keyturn.keys import KeyRing, MasterKey
from keyturn.store import open_store
from keyturn.typing import Backend, SessionRecord

from .._secrets import withheld
from ..contract.backends import isolated
from ..e2e._http import why
from ..e2e._resource import ResourceApp, launch_app, stop_app, wait_app_ready
from ..e2e._server import Cluster, Server, cluster
from ..fastapi._example import running_example

T = TypeVar("T")

EMBEDDED = "embedded-sqlite"
"""The ``service`` fixture's Keyturn installed in the example app (examples/fastapi_app), on SQLite: the
same routes as serve's, so one backend; the backends themselves are covered by keyturn serve's runs."""
RESOURCE_APP = "tests.e2e.apps.fastapi_resource"
RESOURCE_ENV = {"KEYTURN_REVOCATION_POLL_INTERVAL": "0.2"}
REVOCATION_DEADLINE = 30.0
"""How long a resource server may take to learn of a revocation before a test gives up (a slow, busy
machine; the docs promise about a second, which tests/e2e/test_resource_server.py holds it to)."""


@dataclass
class Service:
    """One ``keyturn serve`` on one backend, with user ``alice``."""

    backend: str
    store_url: str
    group: Cluster
    secret: str = field(repr=False)
    algorithm: str = "ES256"
    name_field: str = "username"
    """The login body's name field: ``username`` for ``keyturn serve``, ``email`` for the example app."""
    subject: str = "alice"
    """Alice's subject in tokens: her name in ``keyturn serve``, her user id in the example app."""

    @property
    def url(self) -> str:
        return self.group.server.url

    @property
    def username(self) -> str:
        return self.group.username

    @property
    def password(self) -> str:
        return self.group.password

    def client(self) -> httpx.Client:
        return self.group.server.client()

    def credentials(self, name: str | None = None, password: str | None = None) -> dict[str, str]:
        """A login body (default: alice's), in the fields this server's login takes."""
        return {self.name_field: name or self.username, "password": password or self.password}

    def login(self) -> dict[str, Any]:
        """A new session of alice's: the token response."""
        with self.client() as http:
            answer = http.post("/auth/login", json=self.credentials())
        assert answer.status_code == 200, why(answer)
        body: dict[str, Any] = answer.json()
        return body

    def keys(self) -> KeyRing:
        """The service's key ring, read from its store and decrypted with its master secret."""
        stored = asyncio.run(self._read(lambda store: store.list_keys()))
        return KeyRing.from_stored(stored, MasterKey(self.secret), access_alg=self.algorithm)

    def session(self, sid: str) -> SessionRecord:
        """Session ``sid`` as the store has it (its state, head and generation)."""
        found = asyncio.run(self._read(lambda store: store.get_session(sid)))
        assert found is not None, "no such session in the store"
        return found

    async def _read(self, read: Callable[[Backend], Awaitable[T]]) -> T:
        store = open_store(self.store_url)
        await store.open()
        try:
            return await read(store)
        finally:
            await store.close()


@contextlib.contextmanager
def running_service(
    backend: str, tmp_path: Path, env: Mapping[str, str] | None = None, *args: str
) -> Iterator[Service]:
    """A ``keyturn serve`` on an isolated place of ``backend``, ready, stopped (and the place removed)
    on exit."""
    secret = withheld(secrets.token_urlsafe(32))
    algorithm = (env or {}).get("KEYTURN_ACCESS_TOKEN_ALGORITHM", "ES256")
    with isolated(backend, tmp_path) as place:
        settings = {
            "KEYTURN_STORE_URL": place.url,
            "KEYTURN_SECRET_KEY": secret,
            # These tests log alice in far more often than a person would; the limits have tests of
            # their own (tests/e2e/test_rate_limits.py).
            "KEYTURN_RATE_LIMITS": "false",
            **(env or {}),
        }
        with cluster(tmp_path / "data", 1, settings, *args) as group:
            yield Service(backend, place.url, group, secret, algorithm)


@contextlib.contextmanager
def running_embedded(backend: str, tmp_path: Path, env: Mapping[str, str] | None = None) -> Iterator[Service]:
    """Keyturn installed in the example app (``examples/fastapi_app``) on an isolated place of ``backend``,
    with alice in the app's own users table (her email is ``alice``, her subject her user id)."""
    secret = withheld(secrets.token_urlsafe(32))
    with isolated(backend, tmp_path) as place:
        settings = {
            "KEYTURN_STORE_URL": place.url,
            "KEYTURN_SECRET_KEY": secret,
            "KEYTURN_RATE_LIMITS": "false",  # as for running_service
            **(env or {}),
        }
        with running_example(tmp_path / "data", settings) as app:
            group = Cluster(app.data_dir, [Server(app.url, app.process, app.data_dir, app.log)])
            user_id = app.users.add(group.username, group.password)
            yield Service(backend, place.url, group, secret, name_field="email", subject=str(user_id))


@contextlib.contextmanager
def running_resource(service: Service, log_dir: Path) -> Iterator[ResourceApp]:
    """A FastAPI resource server (``tests/e2e/apps/fastapi_resource.py``) trusting ``service``."""
    app = launch_app(RESOURCE_APP, service.url, log_dir, env=RESOURCE_ENV)
    try:
        yield wait_app_ready(app)
    finally:
        stop_app(app)


def whoami(app: ResourceApp, token: str) -> httpx.Response:
    return httpx.get(app.url + "/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30)


class Bait:
    """An attacker's web server on loopback: serves their documents and records every request it gets.

    A token header's ``jku`` or ``x5u`` points here; a validator that followed it would show up in
    :attr:`requests`.
    """

    def __init__(self, documents: Mapping[str, tuple[str, bytes]]) -> None:
        self.requests: list[str] = []
        lock = threading.Lock()
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    seen.append(self.path)
                content_type, body = documents.get(self.path, ("text/plain", b"not here"))
                self.send_response(200 if self.path in documents else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: what was asked for is in ``requests``."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="bait", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> Bait:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
