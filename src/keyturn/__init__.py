"""Keyturn: JWT sessions that stay alive, and stolen refresh tokens that do not."""

from __future__ import annotations

from .clock import FrozenClock, SystemClock
from .config import Settings
from .errors import (
    ConfigError,
    InvalidCredentials,
    InvalidRequest,
    KeyturnError,
    RateLimited,
    RefreshTokenExpired,
    RefreshTokenReused,
    RequestError,
    ServerError,
    SessionError,
    SessionExpired,
    SessionRevoked,
    StoreUnavailable,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from .keys import KeyRing, MasterKey
from .sessions import Authenticated, SessionService, TokenPair, decide_refresh
from .tokens import AccessClaims, RefreshClaims, TokenCodec
from .typing import Clock, SessionRecord, Store, SubjectCheck
from .users import UserDirectory

__version__ = "0.1.0"

__all__ = [
    "AccessClaims",
    "Authenticated",
    "Clock",
    "ConfigError",
    "FrozenClock",
    "InvalidCredentials",
    "InvalidRequest",
    "KeyRing",
    "KeyturnError",
    "MasterKey",
    "RateLimited",
    "RefreshClaims",
    "RefreshTokenExpired",
    "RefreshTokenReused",
    "RequestError",
    "ServerError",
    "SessionError",
    "SessionExpired",
    "SessionRecord",
    "SessionRevoked",
    "SessionService",
    "Settings",
    "Store",
    "StoreUnavailable",
    "SubjectCheck",
    "SystemClock",
    "TokenCodec",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenPair",
    "TokenRevoked",
    "UserDirectory",
    "__version__",
    "decide_refresh",
]
