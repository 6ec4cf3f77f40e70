"""The server the hostile tests attack: one ``keyturn serve`` with a live session of alice's, what is
needed to forge tokens against it (:class:`~tests.e2e._forge.Forge`), and the check that nothing hostile
ended or rotated that session.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from keyturn.keys import MasterKey

from ._forge import Forge
from ._http import jwt_parts, login, me
from ._server import Cluster, cluster


@dataclass
class Hostile:
    server: Cluster
    forge: Forge


def server_signing_keys(data_dir: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The service's private keys by kid, decrypted from its data dir (what only an operator holds)."""
    master = MasterKey((data_dir / "secret.key").read_text().strip())
    with contextlib.closing(sqlite3.connect(data_dir / "keyturn.db")) as db:
        rows = db.execute("SELECT kid, use, material FROM signing_keys").fetchall()
    access = {
        kid: serialization.load_der_private_key(master.decrypt(bytes(material)), password=None)
        for kid, use, material in rows
        if use == "access"
    }
    refresh_keys = {kid: master.decrypt(bytes(material)) for kid, use, material in rows if use == "refresh"}
    return access, refresh_keys


@contextlib.contextmanager
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """One server, a live session of alice's, and what is needed to forge tokens against it."""
    with cluster(tmp_path_factory.mktemp("hostile")) as group:
        with group.server.client() as http:
            jwks = http.get("/.well-known/jwks.json").json()
            pair = login(http, group.username, group.password)
        (jwk,) = jwks["keys"]
        access_header, access_claims = jwt_parts(pair["access_token"])
        refresh_header, refresh_claims = jwt_parts(pair["refresh_token"])
        assert access_header["kid"] == jwk["kid"]
        access_keys, refresh_keys = server_signing_keys(group.data_dir)
        server_access_key = access_keys[jwk["kid"]]
        assert isinstance(server_access_key, ec.EllipticCurvePrivateKey)
        public = ECAlgorithm.from_jwk(json.dumps(jwk))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        forge = Forge(
            jwk=jwk,
            jwk_text=json.dumps(jwk),
            public_pem=public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            access_kid=jwk["kid"],
            refresh_kid=refresh_header["kid"],
            server_access_key=server_access_key,
            server_refresh_secret=refresh_keys[refresh_header["kid"]],
            own_key=ec.generate_private_key(ec.SECP256R1()),
            access_claims=access_claims,
            refresh_claims=refresh_claims,
            real_access=pair["access_token"],
            real_refresh=pair["refresh_token"],
        )
        yield Hostile(group, forge)


def session_row(h: Hostile) -> tuple[str, str, int]:
    """alice's session as the store has it: state, head and generation."""
    sid = jwt_parts(h.forge.real_access)[1]["sid"]
    with contextlib.closing(sqlite3.connect(h.server.data_dir / "keyturn.db")) as db:
        row = db.execute("SELECT state, head_jti, gen FROM sessions WHERE sid = ?", (sid,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def assert_session_untouched(h: Hostile, http: httpx.Client) -> None:
    """No hostile token may have ended or rotated alice's session: it is live, at its first head."""
    assert me(http, h.forge.real_access).status_code == 200
    state, head_jti, gen = session_row(h)
    assert (state, gen) == ("active", 0)
    assert head_jti == jwt_parts(h.forge.real_refresh)[1]["jti"]
