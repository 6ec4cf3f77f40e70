"""Signing keys: creation, encryption at rest, loading, rotating and pruning them in the store, the key
ring a process signs with, the JWKS it publishes and reading a JWKS back (a resource server's keys).

Keys belong to the service, not to a process: they live in the store, their private parts encrypted
with a master secret (``KEYTURN_SECRET_KEY`` or a 0600 file in the data directory), so every process
of one service signs and publishes the same keys.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .errors import ConfigError
from .typing import AccessAlgorithm, Clock, JSONValue, Store, StoredKey

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "AccessKey",
    "KeyRing",
    "MasterKey",
    "PublicKey",
    "RefreshKey",
    "load_keys",
    "load_or_create_secret_file",
    "master_secret",
    "new_access_key",
    "new_refresh_key",
    "parse_jwks",
    "prune_keys",
    "rotate_keys",
]

SECRET_FILE_NAME = "secret.key"
_HKDF_INFO = b"keyturn/v1 key encryption"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
AsymmetricPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

ACCESS_ALGORITHMS = frozenset({"ES256", "EdDSA", "RS256"})
"""What access tokens are signed with, and so the only keys of a JWKS a resource server keeps."""


class MasterKey:
    """Encrypts and decrypts private key material; derived from the master secret with HKDF."""

    __slots__ = ("_fernet",)

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < 16:
            raise ConfigError("the master secret must be at least 16 bytes long")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        try:
            return self._fernet.decrypt(data)
        except InvalidToken as exc:
            raise ConfigError(
                "cannot decrypt the signing keys in the store: the master secret "
                "(KEYTURN_SECRET_KEY or the secret file in the data directory) is not the one "
                "they were made with"
            ) from exc


def load_or_create_secret_file(data_dir: Path) -> str:
    """Read the master secret from ``data_dir/secret.key``, creating it (mode 0600) on first use.

    The file is written whole under a temporary name and linked into place, so a process starting at the
    same moment either finds no file (and makes its own, of which one wins the link) or a complete one.
    """
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        draft = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(draft, path)  # fails if another process linked its own first: then use that one
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} must be readable by its owner only (chmod 600)")
    secret = path.read_text().strip()
    if not secret:
        raise ConfigError(f"{path} is empty")
    return secret


def master_secret(settings: Settings) -> str:
    """The master secret: ``KEYTURN_SECRET_KEY``, else the secret file in the data directory (made once)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return load_or_create_secret_file(settings.data_dir)


def _new_kid() -> str:
    return secrets.token_urlsafe(12)


def _public_jwk(alg: str, public_key: AsymmetricPublicKey) -> dict[str, Any]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    return dict(jwk)


def new_access_key(alg: AccessAlgorithm, master: MasterKey, now: float) -> StoredKey:
    """A fresh asymmetric signing key for access tokens, ready to store."""
    private: PrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ConfigError(f"unsupported access-token algorithm {alg!r}")
    kid = _new_kid()
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk = _public_jwk(alg, private.public_key())
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return StoredKey(
        kid=kid,
        use="access",
        alg=alg,
        material=master.encrypt(der),
        public_jwk=json.dumps(jwk, sort_keys=True),
        created_at=now,
    )


def new_refresh_key(master: MasterKey, now: float) -> StoredKey:
    """A fresh HMAC key for refresh tokens (server-only, never published)."""
    return StoredKey(
        kid=_new_kid(),
        use="refresh",
        alg="HS256",
        material=master.encrypt(secrets.token_bytes(32)),
        public_jwk=None,
        created_at=now,
    )


def public_jwks(keys: Iterable[StoredKey]) -> dict[str, list[Mapping[str, JSONValue]]]:
    """The JWKS of the stored access keys: their public halves only."""
    return {"keys": [json.loads(k.public_jwk) for k in keys if k.use == "access" and k.public_jwk]}


def signing_kids(keys: Iterable[StoredKey], access_alg: str | None = None) -> tuple[str, str]:
    """The ids of the keys that sign: the newest active key of each use (access: of ``access_alg``)."""
    newest: dict[str, StoredKey] = {}
    for key in keys:
        signs = key.active and (key.use == "refresh" or access_alg in (None, key.alg))
        if signs and (key.use not in newest or key.created_at >= newest[key.use].created_at):
            newest[key.use] = key
    return (
        newest["access"].kid if "access" in newest else "",
        newest["refresh"].kid if "refresh" in newest else "",
    )


def retired_keys(
    keys: Sequence[StoredKey], *, now: float, access_horizon: float, refresh_horizon: float
) -> list[StoredKey]:
    """Keys no live token can need any more, which may be deleted (``keyturn keys prune``).

    The key that signs is always the newest active one of its use (and, for access keys, of the
    configured algorithm), so a key stopped signing for good the moment a newer key of the same use and
    algorithm was made. It is retired once that newer key is older than ``access_horizon`` or
    ``refresh_horizon`` seconds: every token it signed has expired by then. A key without a newer one
    of its algorithm is never retired, whatever the algorithm the servers are configured with now: it
    may sign again if they switch back.
    """
    horizon = {"access": access_horizon, "refresh": refresh_horizon}
    retired = []
    for key in keys:
        replaced = [
            k.created_at
            for k in keys
            if k.use == key.use
            and (k.use == "refresh" or k.alg == key.alg)
            and k.active
            and k.created_at > key.created_at
        ]
        if replaced and now - min(replaced) > horizon[key.use]:
            retired.append(key)
    return retired


@dataclass(frozen=True, slots=True)
class AccessKey:
    kid: str
    alg: str
    private_key: PrivateKey
    public_key: AsymmetricPublicKey
    jwk: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True)
class RefreshKey:
    kid: str
    secret: bytes


class KeyRing:
    """The keys one process signs and verifies with, loaded from the store."""

    __slots__ = ("_access", "_refresh", "active_access", "active_refresh")

    def __init__(
        self,
        access: Iterable[AccessKey],
        refresh: Iterable[RefreshKey],
        active_access: str,
        active_refresh: str,
    ) -> None:
        self._access = {k.kid: k for k in access}
        self._refresh = {k.kid: k for k in refresh}
        if active_access not in self._access or active_refresh not in self._refresh:
            raise ConfigError("the key ring has no active access or refresh key")
        self.active_access = self._access[active_access]
        self.active_refresh = self._refresh[active_refresh]

    @classmethod
    def from_stored(
        cls, keys: Iterable[StoredKey], master: MasterKey, *, access_alg: str | None = None
    ) -> KeyRing:
        """Decrypt ``keys``; the newest active key of each use (and ``access_alg``) signs."""
        access: list[AccessKey] = []
        refresh: list[RefreshKey] = []
        keys = list(keys)
        active_access, active_refresh = signing_kids(keys, access_alg)
        for key in keys:
            secret = master.decrypt(key.material)
            if key.use == "access":
                private = serialization.load_der_private_key(secret, password=None)
                if not isinstance(
                    private,
                    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
                ):
                    raise ConfigError(f"key {key.kid} is not a supported signing key")
                jwk: dict[str, JSONValue] = json.loads(key.public_jwk or "{}")
                access.append(AccessKey(key.kid, key.alg, private, private.public_key(), jwk))
            else:
                refresh.append(RefreshKey(key.kid, secret))
        return cls(access, refresh, active_access, active_refresh)

    def access_key(self, kid: str) -> AccessKey | None:
        return self._access.get(kid)

    def refresh_key(self, kid: str) -> RefreshKey | None:
        return self._refresh.get(kid)

    def jwks(self) -> dict[str, list[Mapping[str, JSONValue]]]:
        """The public JWKS: every access key that may still verify a token."""
        return {"keys": [k.jwk for k in self._access.values()]}


async def load_keys(store: Store, master: MasterKey, settings: Settings, clock: Clock) -> KeyRing:
    """The service's key ring, creating the first keys (once, whichever process comes first)."""
    stored = await store.list_keys()
    wanted = settings.access_token_algorithm
    has_access = any(k.use == "access" and k.active and k.alg == wanted for k in stored)
    has_refresh = any(k.use == "refresh" and k.active for k in stored)
    if not (has_access and has_refresh):
        now = clock.now()
        candidates = []
        if not has_access:
            candidates.append(new_access_key(wanted, master, now))
        if not has_refresh:
            candidates.append(new_refresh_key(master, now))
        stored = await store.ensure_keys(candidates)
    return KeyRing.from_stored(stored, master, access_alg=wanted)


async def rotate_keys(store: Store, master: MasterKey, settings: Settings, clock: Clock) -> KeyRing:
    """Add a new access key and a new refresh key; they sign from now on, the old ones still verify.

    Every process sharing the store picks them up within ``key_reload_interval``, or at once when it
    meets a token signed with them.
    """
    now = clock.now()
    await store.add_keys(
        [new_access_key(settings.access_token_algorithm, master, now), new_refresh_key(master, now)]
    )
    return await load_keys(store, master, settings, clock)


async def prune_keys(
    store: Store, settings: Settings, clock: Clock, *, dry_run: bool = False
) -> list[StoredKey]:
    """Delete the keys no live token needs any more (see :func:`retired_keys`); return them.

    A process that has not reloaded yet may still sign with a key a rotation replaced, so the horizon
    of each use adds ``key_reload_interval`` to the token lifetime and the leeway.
    """
    margin = settings.leeway + settings.key_reload_interval
    retired = retired_keys(
        await store.list_keys(),
        now=clock.now(),
        access_horizon=settings.access_token_lifetime + margin,
        refresh_horizon=settings.refresh_idle_lifetime + settings.grace_period + margin,
    )
    if retired and not dry_run:
        await store.delete_keys([key.kid for key in retired])
    return retired


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A key that verifies access tokens, read from a JWK."""

    kid: str
    alg: str
    public_key: Any


def parse_jwks(
    jwks: Iterable[Mapping[str, JSONValue]], on_unreadable: Callable[[str], None] | None = None
) -> dict[str, PublicKey]:
    """The signing keys of a JWKS; keys of other uses, algorithms or shapes are left out (and the id of
    each key that cannot be read at all is given to ``on_unreadable``, for the caller's log)."""
    keys: dict[str, PublicKey] = {}
    for jwk in jwks:
        kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
        if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(dict(jwk))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            if on_unreadable is not None:
                on_unreadable(kid)
            continue
        if parsed.algorithm_name not in ACCESS_ALGORITHMS:
            continue
        key = parsed.key
        if hasattr(key, "public_key"):  # a JWK with its private half: only the public one is kept
            key = key.public_key()
        keys[kid] = PublicKey(kid, parsed.algorithm_name, key)
    return keys
