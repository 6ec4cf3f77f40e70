/**
 * The session state a tab holds and shares with the other tabs, and how a token response becomes one.
 *
 * Times are milliseconds on the server's clock (`exp` comes from `server_time + expires_in`, or the access
 * token's `exp`), so a machine whose clock is minutes off still refreshes on time; `off` converts.
 */
import type { Endpoints } from "./endpoints.js";

export interface Tokens {
  /** Version of the shared state: one more on every login, refresh and end, whichever tab made it. */
  gen: number;
  /** The access token. Never written to storage in cookie mode, only passed between tabs. */
  at?: string;
  /** The refresh token: body mode only. In cookie mode it lives in the HttpOnly cookie alone. */
  rt?: string;
  /** When the access token expires (server time, ms). */
  exp?: number;
  /** Its whole lifetime (ms), for the refresh margin's `lifetime / 3` cap. */
  life?: number;
  /** When the refresh token expires (server time, ms), if the service said. */
  rexp?: number;
  /** `server_time - local_time` (ms), measured at the midpoint of the call that brought these tokens. */
  off?: number;
  /**
   * `server_time - received` (ms): the least the offset can be, as the service's clock read `server_time`
   * before the answer came. Proofs' `iat` (`@keyturn/client/dpop`) use it, never ahead of the service.
   */
  lo?: number;
  sid?: string;
  /** The session ended, for this reason (a marker: no tokens). */
  end?: string;
}

/**
 * @internal A call to the token service's `RequestInit`, with a function to call the moment the request goes
 * out: a `fetch` wrapper that does work first (the DPoP proof, a nonce round trip) calls it just before it
 * sends, so that the clock offset is measured on the wire's round trip. (A `_` name: both bundles minify it
 * to the same short one.)
 */
export interface TimedInit extends RequestInit {
  _sent?: () => unknown;
}

const num = (v: unknown): number | undefined =>
  typeof v == "number" && isFinite(v) ? v : undefined;

const str = (v: unknown): string | undefined => (typeof v == "string" && v ? v : undefined);

/** The claims of a JWT, not verified: only scheduling reads them (`exp`, `iat`). */
export function claims(jwt: string): Record<string, unknown> {
  try {
    const part = jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const value: unknown = JSON.parse(atob(part));
    return value && typeof value == "object" ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The tokens in a login or refresh answer; throws if there are none. `sent` and `received` are the local
 * times of the call: the clock offset is taken at their midpoint. Without `server_time` the access token's
 * `iat` stands in for it (simplejwt), and without `expires_in` its `exp`.
 */
export function parseTokens(
  body: unknown,
  e: Endpoints,
  sent: number,
  received: number,
  /** The refresh token held so far (body mode), kept when the answer brings none; `false`: cookie mode. */
  previous: string | undefined | false,
): Omit<Tokens, "gen"> {
  const b = (body && typeof body == "object" ? body : {}) as Record<string, unknown>;
  const at = str(b[e.accessResponseField]);
  if (!at) throw TypeError("no access token");
  // Cookie mode never keeps a refresh token, even from a service that sends one in the body.
  const rt = previous === false ? undefined : (str(b[e.refreshResponseField]) ?? previous);
  if (previous !== false && !rt) throw TypeError("no refresh token");
  const c = claims(at);
  const mid = (sent + received) / 2;
  const now = (num(b.server_time) ?? num(c.iat) ?? mid / 1000) * 1000;
  const expiresIn = num(b.expires_in);
  const exp = expiresIn !== undefined ? now + expiresIn * 1000 : num(c.exp)! * 1000;
  if (!(exp > 0)) throw TypeError("no expiry");
  const refreshIn = num(b.refresh_expires_in);
  return {
    at,
    rt,
    exp,
    life: Math.max(exp - now, 0),
    rexp: refreshIn === undefined ? undefined : now + refreshIn * 1000,
    off: now - mid,
    lo: now - received,
    sid: str(b.session_id),
  };
}

/**
 * A shared record read back from storage or another tab, or `undefined` if it is not one. A live record
 * must have an expiry; in body mode it must carry the pair, in cookie mode it may lack the access token.
 */
export function asTokens(v: unknown, body: boolean): Tokens | undefined {
  const r = v as Tokens | null;
  if (!r || typeof r != "object" || num(r.gen) === undefined) return undefined;
  if (r.end !== undefined) return typeof r.end == "string" ? { gen: r.gen, end: r.end } : undefined;
  if (num(r.exp) === undefined || num(r.life) === undefined || num(r.off) === undefined) return undefined;
  if (r.at !== undefined && !str(r.at)) return undefined;
  if (body ? !str(r.at) || !str(r.rt) : r.rt !== undefined) return undefined;
  return r;
}
