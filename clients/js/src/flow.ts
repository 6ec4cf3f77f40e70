/**
 * The client's decisions, without I/O and in the words of the Python client's flow (one scenario table,
 * `tests/scenarios/client_decisions.json`, drives both clients' tests):
 *
 * - an answer of the refresh endpoint → `store` the new tokens | `end` the session | `retry` later;
 * - an answer to one of the application's requests → `done` (hand it over) | `refresh`, then send again |
 *   `resend` with the current token | `retry` after a backoff | `end` the session;
 * - how long to wait before the next refresh after a temporary failure.
 */
import { backoff } from "./backoff.js";
import type { Endpoints } from "./endpoints.js";

/** Methods safe to send again after a temporary failure. */
export const IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];

/**
 * After a refresh whose answer may have been lost (the service may have rotated), retries come at most
 * `LOST_RETRY` ms apart for `LOST_WINDOW` ms, so that one lands inside the service's grace period (30 s by
 * default) and gets the rotated pair back, rather than after it, where the old token counts as reused.
 */
const LOST_WINDOW = 25_000;
const LOST_RETRY = 2000;

/**
 * The error code of an answer: the body's error field, else the code leading a `WWW-Authenticate`
 * `error_description="<code>: <text>"` (RFC 6750, as Keyturn and its middleware write it).
 */
export function errorCode(body: unknown, challenge: string | null | undefined, field: string): string | undefined {
  const code = body && typeof body == "object" ? (body as Record<string, unknown>)[field] : undefined;
  if (typeof code == "string") return code;
  return /error_description="([\w.-]+)/.exec(challenge ?? "")?.[1];
}

export type RefreshDecision = "store" | "end" | "retry";

/**
 * What an answer of the refresh endpoint (`status` 0: none came) means. Only a definitive code of the shape
 * on a 400, 401 or 403 ends the session; network errors, timeouts, 5xx, 429 and anything unexpected are
 * temporary. (A success whose body holds no tokens is temporary too: the caller finds out when it reads it.)
 */
export function decideRefresh(status: number, code: string | undefined, e: Endpoints): RefreshDecision {
  if (status > 199 && status < 300) return "store";
  return (status == 400 || status == 401 || status == 403) && e.definitive.includes(code!) ? "end" : "retry";
}

export type RequestDecision = "done" | "refresh" | "resend" | "retry" | "end";

/** Whether a request may be sent again after a temporary failure: idempotent, or marked safe by the application. */
export function mayRetry(method: string, retrySafe: boolean): boolean {
  return retrySafe || IDEMPOTENT.includes(method.toUpperCase());
}

/**
 * What an answer to an application's request means (`status` 0: no answer came), given whether it carried
 * the access token held now, that token no longer usable by the client's estimate of the service's clock
 * (`expired`: the service reached it late), or an older one (`sent`), whether it was sent again after a
 * refresh its own refusal asked for (`afterRefresh`), and whether it may be sent again (`mayRetry`):
 *
 * - `done`: hand the answer to the application;
 * - `refresh`: the current token was refused (expired, or invalid or revoked: a refresh tells whether the
 *   session lives): refresh, then send again; once, unless the token refused as expired had expired by
 *   the client's clock too (not a disagreement that would loop, but a trip that outlived the token);
 * - `resend`: the answer refused an older token: send again with the current one;
 * - `retry`: a temporary failure (no answer, 429, 502, 503, 504) of a request that may be sent again: back
 *   off, then send again;
 * - `end`: the token a refresh brought was refused as invalid or revoked: the session is over.
 */
export function decideRequest(
  status: number,
  code: string | undefined,
  sent: "current" | "expired" | "older",
  afterRefresh: boolean,
  mayRetry: boolean,
  e: Endpoints,
): RequestDecision {
  if (status == 401) {
    if (sent == "older") return "resend";
    const rejected = e.rejected.includes(code!);
    if (!rejected && !e.expiring.includes(code!)) return "done";
    if (!afterRefresh) return "refresh";
    return rejected ? "end" : sent == "expired" ? "refresh" : "done";
  }
  return mayRetry && [0, 429, 502, 503, 504].includes(status) ? "retry" : "done";
}

/**
 * Milliseconds before refresh attempt number `attempt` after a temporary failure: the backoff (or the
 * service's `Retry-After`, `wait`), kept short for `LOST_WINDOW` ms after an answer that may have been lost
 * (`lostFor` ms ago).
 */
export function refreshDelay(attempt: number, random: () => number, wait: number | undefined, lostFor: number): number {
  const delay = backoff(attempt, random, wait);
  return lostFor < LOST_WINDOW ? Math.min(delay, LOST_RETRY) : delay;
}
