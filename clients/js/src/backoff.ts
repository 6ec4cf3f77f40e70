/** How long to wait before trying again after a temporary failure (DESIGN section 6). */

const BASE = 500;
const CAP = 30_000;
/** A `Retry-After` is obeyed up to this long: a wrong header must not park a session for hours. */
const RETRY_AFTER_CAP = 4 * CAP;

/**
 * Milliseconds before retry number `attempt` (1, 2, …): exponential (0.5 s doubling, capped at 30 s) with
 * full jitter, so that clients failing together do not retry together. `Retry-After` wins.
 */
export function backoff(attempt: number, random: () => number, retryAfter?: number): number {
  if (retryAfter !== undefined) return Math.min(Math.max(retryAfter, 0), RETRY_AFTER_CAP);
  return random() * Math.min(CAP, BASE * 2 ** Math.max(attempt - 1, 0));
}

/** A `Retry-After` header in milliseconds (delay-seconds or an HTTP date), or `undefined`. */
export function retryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return +v * 1000;
  const when = /[a-z]/i.test(v) ? Date.parse(v) : NaN; // an HTTP date has a day name; "-3" is none
  return isNaN(when) ? undefined : Math.max(0, when - now);
}
