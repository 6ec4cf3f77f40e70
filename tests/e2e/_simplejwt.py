"""A SimpleJWT token server process (``tests/e2e/apps/simplejwt_server.py``) on loopback, for client tests.

::

    with simplejwt_server(tmp_path, access_lifetime=1) as server:
        pair = httpx.post(server.url + "/api/token/", json=server.credentials()).json()
        ...
        assert server.stats()["refresh_200"] == 1

It is launched from the repository's root like the resource apps (:mod:`._resource`), with the test's
environment minus ``KEYTURN_*``, and its output goes to ``<tmp_dir>/simplejwt/simplejwt-<port>.log``.
With ``client_bundle`` (the browser client's built ``keyturn.js``) it also serves the test page
``/client/`` and the bundle, same-origin with the API.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .. import _logsweep
from .._secrets import new_password
from ._resource import ROOT, ResourceApp, resource_env, stop_app, wait_app_ready
from ._server import free_port
from .apps._listening import LISTENING

MODULE = "tests.e2e.apps.simplejwt_server"


@dataclass
class SimpleJWTServer:
    """One running SimpleJWT server and the user it was started with."""

    app: ResourceApp
    data_dir: Path
    username: str
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        return self.app.url

    def credentials(self) -> dict[str, str]:
        """The body of ``POST /api/token/``."""
        return {"username": self.username, "password": self.password}

    def client(self, **kwargs: object) -> httpx.Client:
        return self.app.client(**kwargs)

    def stats(self) -> dict[str, int]:
        """How the server answered refresh calls: ``refresh_200``, ``refresh_401``, ``refresh_other``."""
        response = httpx.get(self.url + "/api/stats/", timeout=30)
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        return counts


def launch_simplejwt(
    data_dir: Path,
    username: str,
    password: str,
    access_lifetime: float,
    refresh_lifetime: float,
    client_bundle: Path | None = None,
) -> ResourceApp:
    """Start the server process without waiting for it (see :func:`._resource.wait_app_ready`)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / f"simplejwt-{port}.log"
    _logsweep.watch(log, f"simplejwt :{port}")
    args = ["--port", str(port), "--data-dir", str(data_dir)]
    args += ["--access-lifetime", str(access_lifetime), "--refresh-lifetime", str(refresh_lifetime)]
    if client_bundle is not None:
        args += ["--client-bundle", str(client_bundle.resolve())]
    env = resource_env({"SIMPLEJWT_USER": username, "SIMPLEJWT_PASSWORD": password})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ResourceApp("simplejwt", f"http://127.0.0.1:{port}", process, log, LISTENING.format(port=port))


@contextlib.contextmanager
def simplejwt_server(
    tmp_dir: Path,
    access_lifetime: float = 300,
    refresh_lifetime: float = 86400,
    username: str = "alice",
    client_bundle: Path | None = None,
) -> Iterator[SimpleJWTServer]:
    """A SimpleJWT server with its data in ``tmp_dir/simplejwt``, ready, stopped on exit.

    Starting another one on the same ``tmp_dir`` (after or during this one) shares its database and its
    signing key: tokens issued by one are good at the other, as after a restart. Each start sets a new
    random password for ``username``. ``client_bundle``: serve ``/client/`` and ``/client/keyturn.js``.
    """
    password = new_password()
    app = launch_simplejwt(
        tmp_dir / "simplejwt", username, password, access_lifetime, refresh_lifetime, client_bundle
    )
    try:
        wait_app_ready(app, path="/api/status/")
        yield SimpleJWTServer(app, tmp_dir / "simplejwt", username, password)
    finally:
        stop_app(app)
