"""The JSON shapes of the HTTP API (request bodies and documented responses)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..sessions import TokenPair
from ..typing import SessionRecord


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(
        None, description="The refresh token; in cookie mode it comes from the cookie instead."
    )


class RevokeRequest(BaseModel):
    token: str = Field(min_length=1)
    token_type_hint: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(None, description="Left out in cookie mode.")
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int
    session_id: str
    server_time: float = Field(description="Epoch seconds, for clients to measure clock skew.")


class ErrorResponse(BaseModel):
    error: str
    error_description: str
    retryable: bool


class SessionInfo(BaseModel):
    session_id: str
    subject: str
    created_at: float
    absolute_expires_at: float
    last_seen_at: float
    state: str
    revoked_reason: str | None
    user_agent: str | None
    ip: str | None
    current: bool = False


class MeResponse(BaseModel):
    subject: str
    claims: dict[str, object]
    session: SessionInfo


class RevocationEntry(BaseModel):
    seq: int
    kind: str = Field(description="`sid`: a whole session; `jti`: one access token.")
    value: str
    expires_at: float = Field(description="After this no matching access token can be valid.")


class RevocationFeed(BaseModel):
    revocations: list[RevocationEntry]
    last_seq: int = Field(description="Pass as `since` in the next poll.")
    more: bool = Field(description="True when the batch was full: poll again at once.")
    server_time: float


class LogoutResponse(BaseModel):
    revoked_sessions: list[str]


def token_body(pair: TokenPair, *, include_refresh: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
        "refresh_expires_in": pair.refresh_expires_in,
        "session_id": pair.session_id,
        "server_time": pair.server_time,
    }
    if not include_refresh:
        del body["refresh_token"]
    return body


def session_info(session: SessionRecord, current_sid: str | None = None) -> dict[str, object]:
    return {
        "session_id": session.sid,
        "subject": session.sub,
        "created_at": session.created_at,
        "absolute_expires_at": session.absolute_expires_at,
        "last_seen_at": session.last_seen_at,
        "state": session.state,
        "revoked_reason": session.revoked_reason,
        "user_agent": session.user_agent,
        "ip": session.ip,
        "current": session.sid == current_sid,
    }
