/**
 * What the token service answers, and what the client throws.
 *
 * The wire codes are DESIGN section 3's, spelled as the Python client and the server spell them.
 * The client throws three errors of its own: `SessionEndedError` (the session is over; `reason` tells
 * a user's logout from expiry, revocation and reuse), `RefreshUnavailableError` (no usable access token
 * after retrying temporary failures for `maxWait`; the session is not over) and `LoginError`.
 */

export type ErrorCode =
  | "invalid_request"
  | "invalid_credentials"
  | "token_invalid"
  | "token_expired"
  | "token_revoked"
  | "refresh_token_expired"
  | "refresh_token_reused"
  | "refresh_token_bound"
  | "invalid_dpop_proof"
  | "use_dpop_nonce"
  | "session_revoked"
  | "session_expired"
  | "rate_limited"
  | "server_error"
  | "insufficient_scope";

/** Why a session ended: a definitive code of the endpoint shape, `"logout"`, or `"signed_out"` (there was none). */
export type EndReason = ErrorCode | "logout" | "signed_out" | (string & {});

export class SessionEndedError extends Error {
  constructor(readonly reason: EndReason) {
    super("keyturn: session ended: " + reason);
    this.name = "SessionEndedError";
  }
}

export class RefreshUnavailableError extends Error {
  constructor() {
    super("keyturn: no usable access token (refresh failing)");
    this.name = "RefreshUnavailableError";
  }
}

export class LoginError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(`keyturn: login failed: HTTP ${status} ${code ?? ""}`.trim());
    this.name = "LoginError";
  }
}
