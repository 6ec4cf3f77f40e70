"""The JSON shapes of the HTTP API (request bodies and documented responses)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..sessions import TokenPair
from ..typing import SessionRecord


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    client_id: str | None = Field(
        None,
        max_length=128,
        description="A registered public OAuth 2.0 client the session is for (default: `keyturn`).",
    )


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


# -- the OAuth 2.0 surface (``routes/oauth.py``) -------------------------------------------------------


class OAuthTokenRequest(BaseModel):
    """RFC 6749 section 6, as a form (or a JSON object of the same names)."""

    grant_type: str = Field(description="`refresh_token`; any other is `unsupported_grant_type`.")
    refresh_token: str
    client_id: str | None = Field(None, description="A public client's id (default: `keyturn`).")
    client_secret: str | None = Field(None, description="client_secret_post; or use HTTP Basic.")
    scope: str | None = Field(None, description="Ignored: a refresh keeps the session's claims.")


class OAuthTokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int


class OAuthTokenParameter(BaseModel):
    """RFC 7009 and RFC 7662: the token, a hint, and client_secret_post's fields."""

    token: str
    token_type_hint: str | None = Field(None, description="`access_token` or `refresh_token`.")
    client_id: str | None = None
    client_secret: str | None = None


class IntrospectionResponse(BaseModel):
    """RFC 7662 section 2.2: `active`, and for an active token its claims."""

    active: bool
    token_type: str | None = Field(None, description="`Bearer` (an access token) or `refresh_token`.")
    client_id: str | None = None
    username: str | None = None
    sub: str | None = None
    sid: str | None = None
    jti: str | None = None
    iss: str | None = None
    iat: int | None = None
    exp: int | None = None


class OAuthErrorResponse(BaseModel):
    error: str = Field(
        description="RFC 6749 section 5.2: invalid_request, invalid_client, invalid_grant, "
        "unsupported_grant_type; or rate_limited, server_error, temporarily_unavailable."
    )
    error_description: str
    keyturn_error: str = Field(description="Keyturn's own code (the README's error table).")
    retryable: bool


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata."""

    issuer: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    dpop_signing_alg_values_supported: list[str] | None = Field(None, description="Only when DPoP is on.")
