"""Keyturn's Python client: keeps a session alive for httpx (sync and async) and requests.

::

    import httpx
    from keyturn.client import FileTokenStore, KeyturnAuth, KeyturnTransport, TokenManager

    manager = TokenManager("http://127.0.0.1:8000", store=FileTokenStore(".tokens.json"))
    manager.login("alice", password)
    with httpx.Client(auth=KeyturnAuth(manager), transport=KeyturnTransport()) as http:
        http.get("http://127.0.0.1:9000/orders")

Against djangorestframework-simplejwt: ``TokenManager(url, endpoints=SIMPLEJWT)``. ``KeyturnRequestsAuth``
and ``KeyturnHTTPAdapter`` (for requests) are imported on first use, so requests is needed only by those
who use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ClientError, LoginFailed, RefreshUnavailable, SessionEnded
from ._endpoints import KEYTURN, SIMPLEJWT, Endpoints
from ._tokens import FileTokenStore, MemoryTokenStore, Tokens, TokenStore
from .dpop import DpopKey
from .httpx_auth import AsyncKeyturnTransport, KeyturnAuth, KeyturnTransport
from .manager import State, TokenManager

if TYPE_CHECKING:
    from .requests_auth import KeyturnHTTPAdapter, KeyturnRequestsAuth

__all__ = [
    "KEYTURN",
    "SIMPLEJWT",
    "AsyncKeyturnTransport",
    "ClientError",
    "DpopKey",
    "Endpoints",
    "FileTokenStore",
    "KeyturnAuth",
    "KeyturnHTTPAdapter",
    "KeyturnRequestsAuth",
    "KeyturnTransport",
    "LoginFailed",
    "MemoryTokenStore",
    "RefreshUnavailable",
    "SessionEnded",
    "State",
    "TokenManager",
    "TokenStore",
    "Tokens",
]

_REQUESTS = frozenset({"KeyturnHTTPAdapter", "KeyturnRequestsAuth"})


def __getattr__(name: str) -> Any:
    if name in _REQUESTS:
        try:
            from . import requests_auth
        except ModuleNotFoundError as exc:
            if exc.name != "requests":
                raise
            raise ModuleNotFoundError(
                f"keyturn.client.{name} needs requests: pip install 'keyturn[requests]'", name="requests"
            ) from exc
        return getattr(requests_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
