/**
 * What an answer means for the session: the I/O-free decisions that the session, its `fetch` and the axios
 * adapter share.
 */
import type { Endpoints } from "./endpoints";

/** Methods safe to send again after a temporary failure. */
export const IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];

/**
 * The error code of an answer: the body's error field, else the code leading a `WWW-Authenticate`
 * `error_description="<code>: <text>"` (RFC 6750, as Keyturn and its middleware write it).
 */
export function errorCode(body: unknown, challenge: string | null | undefined, field: string): string | undefined {
  const code = body && typeof body == "object" ? (body as Record<string, unknown>)[field] : undefined;
  if (typeof code == "string") return code;
  return /error_description="([\w.-]+)/.exec(challenge ?? "")?.[1];
}

/**
 * What an answer from the refresh endpoint that is not a success means: `true` if it ends the session.
 * Only a definitive code of the shape on a 400, 401 or 403 does; network errors, timeouts, 5xx, 429 and
 * anything unexpected are temporary.
 */
export function isDefinitive(status: number, code: string | undefined, e: Endpoints): boolean {
  return (status == 400 || status == 401 || status == 403) && e.definitive.includes(code!);
}

/**
 * - `done`: hand the answer to the application;
 * - `refresh`: the current token was refused as expired: refresh, then send again once;
 * - `resend`: the answer refused an older token: send again once with the current one;
 * - `retry`: a temporary failure of a request that may be sent again: back off, then send again;
 * - `end`: the current token was refused for good: the session ends.
 */
export type Verdict = "done" | "refresh" | "resend" | "retry" | "end";

/**
 * The verdict on one answer to a request that carried the access token `sent`; `status` 0 is a network
 * error, `current` the access token held now.
 */
export function judge(
  status: number,
  code: string | undefined,
  sent: string | undefined,
  current: string | undefined,
  e: Endpoints,
  mayRetry: boolean,
): Verdict {
  if (status == 401) {
    if (!current) return "done";
    if (current != sent) return "resend";
    if (e.expiring.includes(code!)) return "refresh";
    return e.rejected.includes(code!) ? "end" : "done";
  }
  return mayRetry && (status == 0 || status == 429 || status >= 500) ? "retry" : "done";
}
