"""The error model: one class per wire code of the HTTP API.

Every error a caller can meet on the wire is a :class:`KeyturnError` with a stable ``code``, an HTTP
``status``, a ``retryable`` flag and a default description. The tree::

    KeyturnError
    ├── RequestError
    │   ├── InvalidRequest          invalid_request          400
    │   │   ├── UnsupportedGrantType  invalid_request        400  (OAuth: unsupported_grant_type)
    │   │   └── AuthorizationRepeated invalid_request        400  (Bearer error="invalid_request"; OAuth too)
    │   ├── InvalidCredentials      invalid_credentials      401
    │   │   └── InvalidClient         invalid_credentials    401  (OAuth: invalid_client)
    │   ├── InsufficientScope       insufficient_scope       403
    │   └── RateLimited             rate_limited             429  retryable
    ├── TokenError
    │   ├── TokenInvalid            token_invalid            401
    │   │   └── TokenMissing          token_invalid            401  (no error in the challenge)
    │   ├── TokenExpired            token_expired            401
    │   ├── TokenRevoked            token_revoked            401
    │   ├── RefreshTokenExpired     refresh_token_expired    401
    │   ├── RefreshTokenReused      refresh_token_reused     401
    │   └── RefreshTokenBound       refresh_token_bound      401
    ├── DpopError                   (RFC 9449)
    │   ├── InvalidDpopProof        invalid_dpop_proof       400  (401 at a resource server)
    │   └── UseDpopNonce            use_dpop_nonce           400  DPoP-Nonce (401 at a resource server)
    ├── SessionError
    │   ├── SessionRevoked          session_revoked          401
    │   └── SessionExpired          session_expired          401
    ├── ServerError                 server_error             500  retryable
    │   ├── StoreUnavailable        server_error             503  retryable
    │   ├── VerifierUnavailable     server_error             503  retryable
    │   └── Overloaded              server_error             503  retryable  Retry-After
    └── ClientError                 (the Python client's own, never on the wire)
        ├── SessionEnded
        ├── RefreshUnavailable                                    retryable
        └── LoginFailed

Misuse of the library (bad arguments, bad settings) raises ``TypeError``, ``ValueError`` or
:class:`ConfigError`, never one of these.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "invalid_request",
    "invalid_credentials",
    "insufficient_scope",
    "token_invalid",
    "token_expired",
    "token_revoked",
    "refresh_token_expired",
    "refresh_token_reused",
    "refresh_token_bound",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "session_revoked",
    "session_expired",
    "rate_limited",
    "server_error",
]


class ConfigError(ValueError):
    """A setting is missing or wrong; raised at start-up, never on the wire."""


class KeyturnError(Exception):
    """Root of every error that has a wire code."""

    code: ClassVar[ErrorCode] = "server_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    description: ClassVar[str] = "The service failed."

    def __init__(self, description: str | None = None) -> None:
        self.detail = description or self.description
        super().__init__(self.detail)


class RequestError(KeyturnError):
    """The call itself is wrong, or not allowed right now."""


class InvalidRequest(RequestError):
    code = "invalid_request"
    status = 400
    description = "The request is malformed."


class AuthorizationRepeated(InvalidRequest):
    """More than one ``Authorization`` header: more than one way of presenting a token, which RFC 6750
    section 3.1 calls ``invalid_request`` (at the OAuth routes, more than one way of client authentication,
    RFC 6749 section 5.2's ``invalid_request``). Keyturn uses none of them rather than guess which is meant
    (as with a repeated refresh cookie); the challenge names the error (no challenge at the OAuth routes)."""

    description = "The request carries more than one Authorization header."


class InvalidCredentials(RequestError):
    code = "invalid_credentials"
    status = 401
    description = "Wrong username or password."


class UnsupportedGrantType(InvalidRequest):
    """``/oauth/token`` with a ``grant_type`` other than ``refresh_token`` (RFC 6749 section 5.2)."""

    description = "The grant type is not supported: only refresh_token is."


class InvalidClient(InvalidCredentials):
    """OAuth 2.0 client authentication failed: unknown client, wrong or missing secret (RFC 6749 5.2)."""

    description = "Client authentication failed."


class InsufficientScope(RequestError):
    """A resource server's answer to a valid token that lacks a scope or claim the call needs (RFC 6750)."""

    code = "insufficient_scope"
    status = 403
    description = "The access token does not grant this."


class RateLimited(RequestError):
    code = "rate_limited"
    status = 429
    retryable = True
    description = "Too many requests; retry later."

    def __init__(self, retry_after: float, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class TokenError(KeyturnError):
    """A presented token cannot be used."""


class TokenInvalid(TokenError):
    code = "token_invalid"
    status = 401
    description = "The token is malformed, of the wrong type, or its signature does not verify."


class TokenMissing(TokenInvalid):
    """The request carries no access token: no ``Authorization`` header, or one of another scheme (Basic,
    say). The same wire code and body as :class:`TokenInvalid`, but its challenge is the bare
    ``Bearer realm="..."``: RFC 6750 section 3.1 says a request that lacks any authentication information
    SHOULD NOT get an error code in it."""

    description = "No access token was given."


class TokenExpired(TokenError):
    code = "token_expired"
    status = 401
    description = "The access token has expired."


class TokenRevoked(TokenError):
    code = "token_revoked"
    status = 401
    description = "The access token or its session has been revoked."


class RefreshTokenExpired(TokenError):
    code = "refresh_token_expired"
    status = 401
    description = "The refresh token is past its idle lifetime."


class RefreshTokenReused(TokenError):
    code = "refresh_token_reused"
    status = 401
    description = "The refresh token was already used; the session has been revoked."


class RefreshTokenBound(TokenError):
    """The session is bound to a DPoP key (RFC 9449) and the call had no valid proof by that key: a copy of
    the refresh token used elsewhere. Nothing changes: the session is neither rotated nor revoked."""

    code = "refresh_token_bound"
    status = 401
    description = "The refresh token is bound to a DPoP key: send a valid DPoP proof signed by that key."


class DpopError(KeyturnError):
    """A DPoP proof (RFC 9449) is missing, wrong, or lacks the server's nonce."""


class InvalidDpopProof(DpopError):
    code = "invalid_dpop_proof"
    status = 400
    description = "The DPoP proof is missing, malformed, replayed, or does not match the request."


class InvalidDpopProofAtResource(InvalidDpopProof):
    """``invalid_dpop_proof`` as a resource server answers it (RFC 9449 section 7.1): 401."""

    status = 401


class UseDpopNonce(DpopError):
    """The service asks for proofs that carry its nonce (RFC 9449 section 8); ``nonce`` is the one to use,
    sent in the ``DPoP-Nonce`` header."""

    code = "use_dpop_nonce"
    status = 400
    retryable = True
    description = "The DPoP proof must carry the server's nonce: retry with the one in DPoP-Nonce."

    def __init__(self, nonce: str, description: str | None = None) -> None:
        super().__init__(description)
        self.nonce = nonce


class UseDpopNonceAtResource(UseDpopNonce):
    """``use_dpop_nonce`` as a resource server answers it (RFC 9449 section 9): 401, challenged in the
    ``DPoP`` scheme, with the nonce in ``DPoP-Nonce``."""

    status = 401


class SessionError(KeyturnError):
    """The session behind a token has ended."""


class SessionRevoked(SessionError):
    code = "session_revoked"
    status = 401
    description = "The session has been logged out or revoked."


class SessionExpired(SessionError):
    code = "session_expired"
    status = 401
    description = "The session is past its absolute lifetime."


class ServerError(KeyturnError):
    code = "server_error"
    status = 500
    retryable = True
    description = "The service failed; nothing was changed."


class StoreUnavailable(ServerError):
    status = 503
    description = "The store is unavailable; nothing was changed."


class VerifierUnavailable(ServerError):
    """A resource server cannot judge a token now: its keys or its revocation feed are out of reach."""

    status = 503
    description = "Tokens cannot be checked right now; retry later."


class Overloaded(ServerError):
    """Too much work is queued (password hashing, say): answered at once, so the service stays responsive."""

    status = 503
    description = "The service is busy; retry after the time in Retry-After."

    def __init__(self, retry_after: float, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ClientError(KeyturnError):
    """What the Python client (``keyturn.client``) raises to the application; never rendered on the wire.

    Its ``code`` and ``status`` are the root's and mean nothing here; each class says what happened.
    """


class SessionEnded(ClientError):
    """The session is over; ``reason``: a definitive code, ``logout``, or ``signed_out`` (there was none)."""

    description = "The session has ended."

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session has ended: {reason}")
        self.reason = reason


class RefreshUnavailable(ClientError):
    """The access token has expired and the refresh kept failing for a temporary reason for ``max_wait``.

    The session is not over: the next call tries again.
    """

    retryable = True
    description = "No usable access token: the refresh keeps failing for a temporary reason."


class LoginFailed(ClientError):
    """The token service refused the login; ``status`` and ``code`` are its answer's."""

    description = "The login failed."

    def __init__(self, status: int, code: str | None) -> None:
        super().__init__(f"login failed: HTTP {status} {code or ''}".strip())
        self.status = status  # type: ignore[misc]  # the login answer's status, in place of the root's
        self.code = code  # type: ignore[assignment,misc]  # the login answer's code, if it had one


ERRORS_BY_CODE: dict[ErrorCode, type[KeyturnError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidCredentials,
        InsufficientScope,
        TokenInvalid,
        TokenExpired,
        TokenRevoked,
        RefreshTokenExpired,
        RefreshTokenReused,
        RefreshTokenBound,
        InvalidDpopProof,
        UseDpopNonce,
        SessionRevoked,
        SessionExpired,
        RateLimited,
        ServerError,
    )
}
"""The one class that stands for each wire code.

``StoreUnavailable``, ``VerifierUnavailable`` and ``Overloaded`` share ``server_error``."""
