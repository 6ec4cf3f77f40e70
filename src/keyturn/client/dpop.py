"""The Python client's DPoP key (RFC 9449): a P-256 key that signs a proof for each call.

:class:`DpopKey` is kept in memory, or in a 0600 PEM file (beside the token file, say) so that a session
bound to it survives a restart. :class:`Prover` holds the key, the service's base URL and the last nonce
each server sent (``DPoP-Nonce``, kept per origin), and makes the ``DPoP`` header of one call.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = ["DpopKey", "Prover"]

_ECDSA = ec.ECDSA(hashes.SHA256())
_ACCEPTED = "a P-256 (secp256r1) EC private key: the client signs its proofs ES256"
"""What a DPoP key must be. (The service also takes EdDSA proofs, but this client does not make them.)"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _kind(key: object) -> str:
    """What a private key is, for an error: ``a secp384r1 EC key``, ``a key of type RSAPrivateKey``."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"a {key.curve.name} EC key"
    return f"a key of type {type(key).__name__}"


def _load(file: Path, pem: bytes, password: bytes | None) -> PrivateKeyTypes:
    """The private key of ``pem``, read from ``file``; ``ValueError`` naming the file for what
    ``cryptography`` refuses (with a ``TypeError`` for a password that is missing or not needed)."""
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem
    if encrypted and password is None:
        raise ValueError(
            f"{file} holds an encrypted private key: give its password, DpopKey.from_file(path, password=...)"
        )
    if not encrypted and password is not None:
        raise ValueError(f"{file} holds no encrypted private key, yet a password was given")
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        what = "wrong password for the encrypted private key" if encrypted else "no private key it can read"
        raise ValueError(f"{file}: {what} ({exc})") from None


class DpopKey:
    """A P-256 private key and its public JWK; never leaves this process but as signatures."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise ValueError(f"{_kind(private_key)} cannot be a DPoP key; a DPoP key must be {_ACCEPTED}")
        self._key = private_key
        numbers = private_key.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(self.public_jwk, separators=(",", ":"), sort_keys=True)
        self.thumbprint = _b64(hashlib.sha256(canonical.encode()).digest())
        """The key's RFC 7638 thumbprint: the ``jkt`` a session bound to it carries."""
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode())

    def __repr__(self) -> str:
        return f"DpopKey(thumbprint={self.thumbprint!r})"

    @classmethod
    def generate(cls) -> DpopKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, password: str | bytes | None = None) -> DpopKey:
        """The key in ``path`` (a PEM file), made there (0600) if there is none; ``ValueError`` naming the
        file if it holds a key of another kind (a P-384 or Ed25519 key, say), whose proofs no service would
        take: refused here, at load, not at the first call.

        ``password``: that of an encrypted PEM (``openssl pkcs8 -topk8 -v2 aes-256-cbc``, say), as
        ``ssl``'s ``load_cert_chain`` and ``cryptography`` take one; a key made here with a password is
        saved encrypted by it. An encrypted file without one, the wrong password, or a password for a file
        that is not encrypted is a ``ValueError`` naming the file."""
        file = Path(path).expanduser()
        secret = password.encode() if isinstance(password, str) else password
        try:
            pem = file.read_bytes()
        except FileNotFoundError:
            key = cls.generate()
            key._save(file, secret)
            return key
        found = _load(file, pem, secret)
        if not isinstance(found, ec.EllipticCurvePrivateKey) or not isinstance(found.curve, ec.SECP256R1):
            raise ValueError(f"{file} holds {_kind(found)}; a DPoP key must be {_ACCEPTED}")
        return cls(found)

    def _save(self, file: Path, password: bytes | None = None) -> None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(password)
        )
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keyturn-dpop-", dir=file.parent)  # made 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def proof(
        self, method: str, url: str, *, now: float, nonce: str | None = None, access_token: str | None = None
    ) -> str:
        """A proof for one ``method`` call to ``url`` (its query and fragment are left out of ``htu``)."""
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("#", 1)[0].split("?", 1)[0],
            "iat": int(now),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode()).digest())
        signing_input = f"{self._header}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), _ECDSA))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def origin(url: str) -> str:
    """The origin of an absolute ``url`` (RFC 6454: scheme, host, port; the default port made explicit), by
    which nonces are kept: each server hands out its own (RFC 9449 sections 8 and 9)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return f"{scheme}://{parts.hostname or ''}:{parts.port or _DEFAULT_PORTS.get(scheme, '')}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


NONCE_ORIGINS = 64
"""How many resource servers' nonces a :class:`Prover` keeps: those of the most recently used origins
(sent a proof or a nonce); the token service's is kept besides. A server whose nonce was dropped asks
for it again once (``use_dpop_nonce``)."""


class Prover:
    """Makes the ``DPoP`` header of a client's calls: ``key``'s proofs, each with the latest nonce of the
    server it goes to (the token service's, or a resource server's), kept per origin (at most
    :data:`NONCE_ORIGINS` resource servers')."""

    def __init__(self, key: DpopKey, base_url: str, now: Callable[[], float]) -> None:
        """``now``: the service's time as the client reckons it (its clock and the least offset the last
        login or refresh allows), for the proofs' ``iat``: a client whose clock is off still makes proofs
        the service accepts, and none dated ahead of the service's clock."""
        self.key = key
        self.base_url = base_url
        self.now = now
        self._service = origin(base_url)
        self._nonces: OrderedDict[str, str] = OrderedDict()
        """The latest nonce of each origin, the least recently used first."""
        self._lock = threading.Lock()

    def _full(self, url: str) -> str:
        return self.base_url + url if url.startswith("/") else url

    def headers(self, method: str, url: str, access_token: str | None = None) -> dict[str, str]:
        """The ``DPoP`` header for a call; ``url`` relative to the base URL if it starts with ``/``."""
        full = self._full(url)
        server = origin(full)
        with self._lock:
            nonce = self._nonces.get(server)
            if nonce is not None:
                self._nonces.move_to_end(server)
        proof = self.key.proof(method, full, now=self.now(), nonce=nonce, access_token=access_token)
        return {"DPoP": proof}

    def saw(self, url: str, nonce: str | None) -> bool:
        """Keep the nonce of an answer's ``DPoP-Nonce`` from ``url``'s server (``url`` as for
        :meth:`headers`); whether it is a new one."""
        if not nonce:
            return False
        server = origin(self._full(url))
        with self._lock:
            new = self._nonces.get(server) != nonce
            self._nonces[server] = nonce
            self._nonces.move_to_end(server)
            while len(self._nonces) > NONCE_ORIGINS + (self._service in self._nonces):
                oldest = next(server for server in self._nonces if server != self._service)
                del self._nonces[oldest]
        return new
