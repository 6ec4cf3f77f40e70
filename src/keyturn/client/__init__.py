"""Keyturn's Python client: keeps a session alive for httpx (sync and async) and requests (DESIGN section 6).

::

    from keyturn.client import FileTokenStore, KeyturnAuth, TokenManager

    manager = TokenManager("http://127.0.0.1:8000", store=FileTokenStore(".tokens.json"))
    manager.login("alice", password)
    with httpx.Client(auth=KeyturnAuth(manager)) as http:
        http.get("http://127.0.0.1:9000/orders")

Against djangorestframework-simplejwt: ``TokenManager(url, endpoints=SIMPLEJWT)``.
"""

from __future__ import annotations

from ._endpoints import KEYTURN, SIMPLEJWT, Endpoints
from ._tokens import FileTokenStore, MemoryTokenStore, Tokens, TokenStore
from .httpx_auth import KeyturnAuth
from .manager import LoginFailed, RefreshUnavailable, SessionEnded, State, TokenManager

__all__ = [
    "KEYTURN",
    "SIMPLEJWT",
    "Endpoints",
    "FileTokenStore",
    "KeyturnAuth",
    "LoginFailed",
    "MemoryTokenStore",
    "RefreshUnavailable",
    "SessionEnded",
    "State",
    "TokenManager",
    "TokenStore",
    "Tokens",
]
