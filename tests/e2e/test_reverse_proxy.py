"""The README's nginx example is a configuration nginx accepts, and it serves Keyturn as the README says."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .. import _logsweep
from ._server import (
    PORT_ATTEMPTS,
    PortTaken,
    Server,
    add_user,
    free_port,
    start_server,
    stop_process,
    stop_server,
    wait_serving,
)

README = Path(__file__).resolve().parents[2] / "README.md"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

# make test installs it; by hand, a missing nginx skips the test, but CI must run it.
pytestmark = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"),
    reason="nginx is not installed (make nginx, or apt-get install nginx-light)",
)


def _example() -> str:
    section = README.read_text().split("### Facing the internet", 1)[1]
    found = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's nginx example is gone"
    return found.group(1)


def _certificate(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


NGINX_BOUND = "start worker processes"
"""What nginx logs (at ``notice``) once it holds its port: it binds every ``listen`` before it starts its
workers, and exits if one is taken (after five tries, half a second apart)."""


def _configuration(tmp: Path, keyturn_port: int, listen_port: int, log: Path) -> Path:
    """The example as written, with only the certificate paths, the ports and nginx's own files changed."""
    site = (
        _example()
        .replace("/etc/ssl/certs/auth.example.com.pem", str(tmp / "cert.pem"))
        .replace("/etc/ssl/private/auth.example.com.key", str(tmp / "key.pem"))
        .replace("127.0.0.1:8000", f"127.0.0.1:{keyturn_port}")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl;")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {log} notice;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\n"
        f"{site}\n}}\n"
    )
    return conf


def _start_nginx(
    tmp: Path, keyturn: Server, ports: Iterable[int] = ()
) -> tuple[subprocess.Popen[bytes], Path, int]:
    """nginx with the example in front of ``keyturn``, once its own log says it holds its port and Keyturn's
    ``/readyz`` answers through it; on another port if its first was taken (``ports`` first, then free ones).
    The process, its log and its port."""
    assert NGINX is not None
    _certificate(tmp)
    trust = ssl.create_default_context(cafile=str(tmp / "cert.pem"))  # the throwaway certificate
    given = iter(ports)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = next(given, None) or free_port()
        log = tmp / f"nginx-{port}.log"
        conf = _configuration(tmp, int(keyturn.url.rsplit(":", 1)[1]), port, log)
        checked = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)  # as its log says
        try:
            url = f"https://127.0.0.1:{port}/readyz"
            wait_serving(url, nginx, log, "nginx", bound=NGINX_BOUND, verify=trust)
        except PortTaken:  # nginx wrote "bind() to 127.0.0.1:PORT failed (98: Address already in use)"
            _logsweep.collect(log)
            if attempt == PORT_ATTEMPTS:
                raise
        else:
            return nginx, log, port
    raise AssertionError("unreachable")


@pytest.fixture
def keyturn(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """``keyturn serve`` trusting a proxy on loopback, with a user ``alice``: the server, her password."""
    data = tmp_path / "data"
    password = add_user(data, "alice")
    server = start_server(data, {"KEYTURN_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        yield server, password
    finally:
        stop_server(server)


def test_nginx_accepts_the_readme_example_and_serves_keyturn_through_it(
    tmp_path: Path, keyturn: tuple[Server, str]
) -> None:
    server, password = keyturn
    nginx, log, listen = _start_nginx(tmp_path, server)
    try:
        trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        with httpx.Client(base_url=f"https://127.0.0.1:{listen}", verify=trust, timeout=10) as client:
            login = client.post(
                "/auth/login",
                json={"username": "alice", "password": password},
                headers={"X-Forwarded-For": "203.0.113.50"},  # replaced by nginx with the real address
            )
            assert login.status_code == 200, login.text
            me = client.get("/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
            assert me.status_code == 200
            assert me.json()["session"]["ip"] == "127.0.0.1"  # nginx's view of the client, not the header
    finally:
        stop_process(nginx, log)


def test_nginx_whose_port_was_taken_starts_on_another(tmp_path: Path, keyturn: tuple[Server, str]) -> None:
    """The harness's own check: a port another socket holds (as another test worker's server would, between
    ``free_port`` and nginx's bind) is given up for the next, and what answers is this nginx."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        nginx, log, port = _start_nginx(tmp_path, keyturn[0], [taken])
        try:
            assert port != taken
            assert "(98: Address already in use)" in (tmp_path / f"nginx-{taken}.log").read_text()
            assert NGINX_BOUND in log.read_text()
        finally:
            stop_process(nginx, log)
