/**
 * Endpoint shapes: where to log in, refresh and log out, what the fields are called, and which error codes
 * mean what. The same client keeps sessions alive against Keyturn and against other refresh endpoints such
 * as djangorestframework-simplejwt's (`POST {refresh}` → `{access, refresh?}`).
 */

export interface Endpoints {
  login: string;
  refresh: string;
  /** `null`: the service has no logout; `logout()` only ends the session here. */
  logout: string | null;
  logoutAll: string | null;
  /** The refresh token's name in the refresh and logout bodies (body mode). */
  refreshField: string;
  accessResponseField: string;
  refreshResponseField: string;
  usernameField: string;
  passwordField: string;
  /** The body field holding an error's code. */
  errorField: string;
  /** Sent (value `1`) on cookie-mode calls: a cross-site form cannot set it (CSRF defence). */
  csrfHeader: string;
  /** Codes of the refresh endpoint that end the session; every other failure is temporary. */
  definitive: readonly string[];
  /** Codes of a resource server (401) meaning "refresh, then retry once" (more, as retries, for a token spent by the client's clock too). */
  expiring: readonly string[];
  /** Codes of a resource server (401) for the current access token that end the session. */
  rejected: readonly string[];
}

export const KEYTURN: Endpoints = {
  login: "/auth/login",
  refresh: "/auth/refresh",
  logout: "/auth/logout",
  logoutAll: "/auth/logout-all",
  refreshField: "refresh_token",
  accessResponseField: "access_token",
  refreshResponseField: "refresh_token",
  usernameField: "username",
  passwordField: "password",
  errorField: "error",
  csrfHeader: "X-Keyturn-CSRF",
  definitive: [
    "invalid_request",
    "token_invalid",
    "token_revoked",
    "refresh_token_expired",
    "refresh_token_reused",
    "session_revoked",
    "session_expired",
  ],
  expiring: ["token_expired"],
  rejected: ["token_invalid", "token_revoked"],
};

/**
 * djangorestframework-simplejwt's `TokenObtainPairView` and `TokenRefreshView` under `/api/token/` (use
 * body mode). It answers every bad token with `token_not_valid`, an expired access token included: on a
 * resource request that means "refresh and retry once" (more only for a token spent by the client's clock
 * too), at the refresh endpoint it ends the session.
 */
export const SIMPLEJWT: Endpoints = {
  ...KEYTURN,
  login: "/api/token/",
  refresh: "/api/token/refresh/",
  logout: null,
  logoutAll: null,
  refreshField: "refresh",
  accessResponseField: "access",
  refreshResponseField: "refresh",
  errorField: "code",
  definitive: ["token_not_valid"],
  expiring: ["token_not_valid"],
  rejected: [],
};
