"""Registered OAuth 2.0 clients: add, list, remove, and authenticate a caller's credentials.

A **public** client (a browser or mobile app) is known by its ``client_id`` alone. A **confidential**
client (a resource server, a backend) also has a secret: 256 random bits, generated here and shown once;
the store keeps ``hmac-sha256$<hex>``, HMAC-SHA256 of the secret under a key derived from the master
secret (:func:`secret_key`). Not argon2, as passwords are: a generated secret has 256 bits of entropy,
so a slow hash adds nothing against guessing, and introspection authenticates on every call a resource
server makes, where a password hash (tens of milliseconds of CPU) would be a cost anyone could impose.
The key means a copy of the store alone cannot even test a guess. Comparisons are constant-time.

The default public client ``keyturn`` (``keyturn.tokens.DEFAULT_CLIENT_ID``: the ``client_id`` of the
sessions that ``/auth/login`` and ``start_session`` open) is built in: always known, never stored, and
its name cannot be registered or removed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .clock import SystemClock
from .dpop_gate import registrable
from .errors import InvalidClient, InvalidRequest
from .oauth import ClientCredentials
from .tokens import DEFAULT_CLIENT_ID
from .typing import ClientDpop, ClientRecord, ClientStore, Clock, DpopMode

__all__ = [
    "BUILT_IN",
    "LIST_HEADER",
    "ClientRegistry",
    "NewClient",
    "added_line",
    "client_actions",
    "listed",
    "secret_key",
    "valid_client_id",
]

HASH_PREFIX = "hmac-sha256$"
BUILT_IN = ClientRecord(DEFAULT_CLIENT_ID, 0.0)
"""The default public client, known without being stored."""

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


def client_actions(actions: Any) -> dict[str, argparse.ArgumentParser]:
    """The ``add``, ``list`` and ``remove`` parsers of ``keyturn clients`` and ``manage.py keyturn_clients``,
    added to ``actions`` (an ``add_subparsers()`` result): one home for their arguments and help."""
    add = actions.add_parser("add", help="register a client (public unless --confidential)")
    add.add_argument("client_id", metavar="CLIENT_ID")
    add.add_argument(
        "--confidential",
        action="store_true",
        help="a client with a secret (a resource server, a backend): printed once, stored hashed",
    )
    add.add_argument(
        "--dpop",
        choices=("optional", "required"),
        default="optional",
        help="required: every session the client starts must be started with a DPoP proof, so its refresh "
        "tokens are bound, and a confidential client's every token request needs one (RFC 9449); it only "
        "tightens KEYTURN_DPOP and cannot be set while that is off (default: optional, as the service says)",
    )
    listing = actions.add_parser("list", help="list clients (the built-in public client keyturn first)")
    remove = actions.add_parser("remove", help="remove a client")
    remove.add_argument("client_id", metavar="CLIENT_ID")
    return {"add": add, "list": listing, "remove": remove}


LIST_HEADER = "CLIENT\tTYPE\tCREATED\tDPOP"


def added_line(client: ClientRecord) -> str:
    """What ``clients add`` prints for ``client`` once it is registered (its secret, if any, apart)."""
    kind = "confidential" if client.confidential else "public"
    policy = " (DPoP required)" if client.dpop == "required" else ""
    return f"added {kind} client {client.client_id}{policy}"


def listed(client: ClientRecord) -> str:
    """A client's line in ``keyturn clients list`` and ``manage.py keyturn_clients list`` (never a secret)."""
    kind = "confidential" if client.confidential else "public"
    if client.created_at == 0:
        created = "built in"
    else:
        created = datetime.fromtimestamp(client.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{client.client_id}\t{kind}\t{created}\t{client.dpop}"


def secret_key(master_secret: str) -> bytes:
    """The key client secrets are hashed with: the same in every process of one service."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyturn/v1 client secrets")
    return hkdf.derive(master_secret.encode())


def valid_client_id(client_id: str) -> bool:
    """Ids are 1 to 128 characters of ``A-Z a-z 0-9 . _ ~ -`` (safe in a URL, a header, a log line)."""
    return bool(_CLIENT_ID.match(client_id))


@dataclass(frozen=True, slots=True)
class NewClient:
    """A client just registered, and its secret (confidential clients), which is shown this once."""

    record: ClientRecord
    secret: str | None


class ClientRegistry:
    """The registered clients of one service (its store) and the key their secrets are hashed with."""

    def __init__(
        self, store: ClientStore, key: bytes, *, clock: Clock | None = None, dpop: DpopMode = "optional"
    ) -> None:
        self.store = store
        self.dpop: DpopMode = dpop
        self._key = key
        self.clock: Clock = clock or SystemClock()

    def _hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest

    async def add(
        self, client_id: str, *, confidential: bool, dpop: ClientDpop = "optional"
    ) -> NewClient | None:
        """Register ``client_id``; ``None`` if it is taken. ``ValueError`` for an id that is not valid
        or is the built-in client's, and for ``dpop="required"`` while the service has DPoP off."""
        registrable(self.dpop, dpop)
        if not valid_client_id(client_id):
            raise ValueError("a client id is 1 to 128 characters of A-Z a-z 0-9 . _ ~ -")
        if client_id == DEFAULT_CLIENT_ID:
            raise ValueError(f"{DEFAULT_CLIENT_ID} is the built-in public client")
        secret = secrets.token_urlsafe(32) if confidential else None
        record = ClientRecord(client_id, self.clock.now(), self._hash(secret) if secret else None, dpop)
        if not await self.store.add_client(record):
            return None
        return NewClient(record, secret)

    async def remove(self, client_id: str) -> bool:
        if client_id == DEFAULT_CLIENT_ID:
            raise ValueError(f"{DEFAULT_CLIENT_ID} is the built-in public client")
        return await self.store.remove_client(client_id)

    async def list(self) -> list[ClientRecord]:
        """The built-in client, then every registered one by id."""
        return [BUILT_IN, *sorted(await self.store.list_clients(), key=lambda c: c.client_id)]

    async def get(self, client_id: str) -> ClientRecord | None:
        if client_id == DEFAULT_CLIENT_ID:
            return BUILT_IN
        if not valid_client_id(client_id):
            return None
        return await self.store.get_client(client_id)

    async def dpop_policy(self, client_id: str | None) -> ClientDpop:
        """The DPoP policy of the client a session is started for (an application's own login names it):
        the built-in client's and an unknown id's are ``optional``, as the service's setting alone."""
        if client_id is None or client_id == DEFAULT_CLIENT_ID:
            return "optional"
        client = await self.get(client_id)
        return "optional" if client is None else client.dpop

    async def login_policy(self, client_id: str | None) -> ClientDpop:
        """The DPoP policy a login's proof is checked by, before any credential is looked at: a login that
        names no client is the built-in one's (``optional``), one naming a registered public client gets
        that client's, and any other ``client_id`` is ``invalid_request`` (:meth:`public`). Unlike
        :meth:`dpop_policy`, an unknown id is refused: a login names its client, an application's own
        ``start_session`` has already chosen it."""
        if client_id is None:
            return "optional"
        return (await self.public(client_id)).dpop

    async def public(self, client_id: str) -> ClientRecord:
        """The registered public client a login names (``client_id``); ``invalid_request`` if it is not
        one (unknown, or confidential: a session is a public client's)."""
        client = await self.get(client_id)
        if client is None or client.confidential:
            raise InvalidRequest("client_id names no registered public client.")
        return client

    async def authenticate(self, credentials: ClientCredentials) -> ClientRecord:
        """The client ``credentials`` prove; ``invalid_client`` otherwise.

        No ``client_id`` at all is the built-in public client. A confidential client must present its
        secret (Basic or the body); a public client must present none.
        """
        if credentials.client_id is None:
            return BUILT_IN
        client = await self.get(credentials.client_id)
        if client is None:
            raise InvalidClient("Unknown client.")
        return self.check(client, credentials)

    def check(self, client: ClientRecord, credentials: ClientCredentials) -> ClientRecord:
        """The decision alone: whether ``credentials`` prove ``client``."""
        if client.secret_hash is None:
            if credentials.secret is not None:
                raise InvalidClient("A public client has no secret.")
            return client
        if credentials.secret is None:
            raise InvalidClient("A confidential client must authenticate (client_secret_basic or post).")
        if not hmac.compare_digest(self._hash(credentials.secret), client.secret_hash):
            raise InvalidClient()
        return client
