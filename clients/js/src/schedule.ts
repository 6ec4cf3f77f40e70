/** When to refresh, and how long a timer may be set for. */

/**
 * Timers stop while a laptop sleeps and hidden tabs' timers run late, so a timer never sleeps longer than
 * this: the session re-checks at least once a minute (and on wake-up events). This also keeps every delay
 * far under 2^31-1 ms, past which a browser fires a `setTimeout` at once.
 */
export const MAX_TIMER = 60_000;

/**
 * When (server time, ms) an access token expiring at `exp` after a lifetime of `life` is due for a refresh:
 * `min(margin, life / 3)` ahead, plus up to `jitter` of that again so that many clients do not refresh at
 * the same moment.
 */
export function dueAt(exp: number, life: number, margin: number, jitter: number, random: () => number): number {
  return exp - Math.min(margin, life / 3) * (1 + jitter * random());
}

/** A delay (ms) safe to give `setTimeout`: not negative, at most `MAX_TIMER`. */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(ms, 0), MAX_TIMER) || 0;
}
