"""The README's nginx example is a configuration nginx accepts, and it serves Keyturn as the README says."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._server import add_user, free_port, start_server, stop_server

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


def _certificate(directory: Path) -> tuple[Path, Path]:
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
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _configuration(tmp: Path, keyturn_port: int, listen_port: int) -> Path:
    """The example as written, with only the certificate paths, the ports and nginx's own files changed."""
    cert, key = _certificate(tmp)
    site = (
        _example()
        .replace("/etc/ssl/certs/auth.example.com.pem", str(cert))
        .replace("/etc/ssl/private/auth.example.com.key", str(key))
        .replace("127.0.0.1:8000", f"127.0.0.1:{keyturn_port}")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl;")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\n"
        f"{site}\n}}\n"
    )
    return conf


def test_nginx_accepts_the_readme_example_and_serves_keyturn_through_it(tmp_path: Path) -> None:
    assert NGINX is not None
    data = tmp_path / "data"
    password = add_user(data, "alice")
    server = start_server(data, {"KEYTURN_TRUSTED_PROXIES": "127.0.0.1"})
    listen = free_port()
    conf = _configuration(tmp_path, int(server.url.rsplit(":", 1)[1]), listen)
    try:
        checked = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            url = f"https://127.0.0.1:{listen}"
            trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))  # the throwaway certificate
            with httpx.Client(base_url=url, verify=trust, timeout=10) as client:
                for _ in range(100):
                    try:
                        ready = client.get("/readyz")
                        break
                    except httpx.ConnectError:
                        time.sleep(0.1)
                assert ready.status_code == 200
                login = client.post(
                    "/auth/login",
                    json={"username": "alice", "password": password},
                    headers={"X-Forwarded-For": "203.0.113.50"},  # replaced by nginx with the real address
                )
                assert login.status_code == 200, login.text
                me = client.get(
                    "/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
                )
                assert me.status_code == 200
                assert me.json()["session"]["ip"] == "127.0.0.1"  # nginx's view of the client, not the header
        finally:
            nginx.terminate()
            nginx.wait(10)
    finally:
        stop_server(server)
