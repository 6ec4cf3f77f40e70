"""The example app (``examples/fastapi_app``) as a real uvicorn process on loopback, started as the docs
start it (``python -m examples.fastapi_app serve``), and its users table, which tests change directly."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from examples.fastapi_app.users import Users

from .. import _logsweep
from .._secrets import new_password, withheld
from ..e2e._server import bound_line, free_port, keyturn_env, stop_process, wait_serving

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ExampleApp:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    users: Users

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def add_user(self, roles: list[str] | None = None) -> tuple[str, str]:
        """A new user of the app's own table: (email, password)."""
        email = f"{secrets.token_hex(6)}@example.com"
        password = new_password()
        assert self.users.add(email, password, roles or ["reader"]) is not None
        return email, password

    def login(self, http: httpx.Client, email: str, password: str) -> dict[str, Any]:
        response = http.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def launch(data_dir: Path, env: Mapping[str, str] | None = None) -> ExampleApp:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / f"example-{port}.log"
    _logsweep.watch(log, f"example app :{port}")
    settings = {"KEYTURN_SECRET_KEY": withheld(secrets.token_urlsafe(32)), **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.fastapi_app", "serve", "--port", str(port)],
            cwd=ROOT,
            env=keyturn_env(data_dir, settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ExampleApp(
        f"http://127.0.0.1:{port}", process, data_dir, log, Users(f"sqlite:///{data_dir}/users.db")
    )


def wait_ready(app: ExampleApp, timeout: float = 60) -> ExampleApp:
    """Wait until the app serves its JWKS (its store is open); kill it and raise if it never does."""
    jwks = app.url + "/.well-known/jwks.json"
    wait_serving(jwks, app.process, app.log, "the example app", timeout, bound_line(app.url))
    return app


@contextlib.contextmanager
def running_example(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[ExampleApp]:
    app = wait_ready(launch(data_dir, env))
    try:
        yield app
    finally:
        stop_process(app.process, app.log)
        app.users.close()
