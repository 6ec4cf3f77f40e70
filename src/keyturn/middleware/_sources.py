"""Where a validator gets its keys and its revocations: over HTTP from the token service, or from the store.

Sources are async and run on the validator's own I/O thread (see ``verifier.py``). They only fetch: what
a JWKS holds is read by :func:`keyturn.keys.parse_jwks`, what the feed means by ``keyturn.revocation``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ..errors import KeyturnError
from ..keys import public_jwks
from ..revocation import FEED_BATCH, FeedPage, parse_feed, read_feed
from ..typing import JSONValue, Store

__all__ = [
    "FETCH_ERRORS",
    "JWKSURL",
    "FeedURL",
    "KeySource",
    "Keys",
    "StaticKeys",
    "StoreKeys",
    "StoreRevocations",
]

FETCH_ERRORS = (httpx.HTTPError, KeyturnError, OSError, TimeoutError, ValueError)
"""What fetching keys or reading the feed may raise: all mean "out of reach or garbled, try again"."""
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Keys:
    """A JWKS and, when the source said so, for how many seconds it may be kept."""

    jwks: Sequence[Mapping[str, JSONValue]]
    max_age: float | None = None


class KeySource(Protocol):
    async def fetch(self) -> Keys: ...

    async def close(self) -> None: ...


def cache_max_age(cache_control: str | None) -> float | None:
    """Seconds a response may be kept by its ``Cache-Control`` (0 for no-cache/no-store), or None."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


class _HTTP:
    def __init__(self, url: str, timeout: float, client: httpx.AsyncClient | None) -> None:
        self.url = url
        self._timeout = timeout
        self._given = client
        self._client: httpx.AsyncClient | None = None  # made on the verifier's loop, anew after close

    async def _get(self, params: Mapping[str, int] | None = None) -> tuple[Any, httpx.Headers]:
        client = self._given or self._client
        if client is None:
            client = self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        response = await client.get(self.url, params=params, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json(), response.headers

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class JWKSURL(_HTTP):
    """The token service's ``/.well-known/jwks.json``; its ``Cache-Control`` says how long to keep it."""

    def __init__(self, url: str, *, timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(url, timeout, client)

    async def fetch(self) -> Keys:
        body, headers = await self._get()
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list):
            raise ValueError("the JWKS has no list of keys")
        return Keys(keys, cache_max_age(headers.get("cache-control")))


class FeedURL(_HTTP):
    """The token service's ``GET /auth/revocations?since=N``."""

    def __init__(self, url: str, *, timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(url, timeout, client)

    async def since(self, seq: int) -> FeedPage:
        body, _ = await self._get({"since": seq, "limit": FEED_BATCH})
        return parse_feed(body)


class StaticKeys:
    """Keys given up front (a JWKS document), for tests and for services that pin their keys."""

    def __init__(self, jwks: Mapping[str, Any] | Sequence[Mapping[str, JSONValue]]) -> None:
        self._keys = list(jwks["keys"] if isinstance(jwks, Mapping) else jwks)

    async def fetch(self) -> Keys:
        return Keys(self._keys)

    async def close(self) -> None:
        return None


class StoreKeys:
    """The public halves of the access-token keys in a store the resource server shares with the service."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def fetch(self) -> Keys:
        return Keys(public_jwks(await self._store.list_keys())["keys"])

    async def close(self) -> None:
        return None


class StoreRevocations:
    """The revocation feed read straight from a shared store."""

    def __init__(self, store: Store, clock_now: Any) -> None:
        self._store = store
        self._now = clock_now

    async def since(self, seq: int) -> FeedPage:
        return await read_feed(self._store, seq, self._now(), FEED_BATCH)

    async def close(self) -> None:
        return None
