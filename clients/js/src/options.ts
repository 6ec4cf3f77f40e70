/** The options of `createSession` (their defaults are applied in `SessionState`'s constructor). */
import type { Endpoints } from "./endpoints.js";
import type { ChannelLike, LockManagerLike } from "./tabs.js";

export interface SessionOptions {
  /** Where the token service is (`""`: this origin). */
  baseUrl?: string;
  /**
   * Origins, besides this page's and `baseUrl`'s, whose APIs accept these tokens: `session.fetch` and the
   * axios adapter add the access token to requests for these origins only, and send any other untouched.
   */
  allowedOrigins?: string[];
  /**
   * `cookie` (default, same-origin apps): the refresh token lives in the token service's HttpOnly cookie
   * and never in JavaScript. `body`: the pair is kept in `storage` (cross-origin setups, simplejwt).
   */
  mode?: "cookie" | "body";
  /** Paths, field names and codes; `SIMPLEJWT` for djangorestframework-simplejwt. */
  endpoints?: Partial<Endpoints>;
  /** Seconds before expiry to refresh (capped at a third of the lifetime). Default 300. */
  refreshMargin?: number;
  /** Up to this fraction of the margin is added at random. Default 0.1. */
  jitter?: number;
  /** Retries of a request after a temporary failure (idempotent methods only). Default 2. */
  retries?: number;
  /** Also retry POST and PATCH after a temporary failure (the application says they are safe to repeat). Default false. */
  retryUnsafe?: boolean;
  /** Seconds a caller waits for a usable token while refreshes fail. Default 60. */
  maxWait?: number;
  /** Seconds before a call to the token service is abandoned (and counted as temporary). Default 10. */
  timeout?: number;
  /** Of the token service's calls. Default `include` in cookie mode, `same-origin` in body mode. */
  credentials?: RequestCredentials;
  /** Body mode: where the pair is kept; cookie mode: where the shared state (no token) is kept. Default `localStorage`. */
  storage?: Storage | null;
  fetch?: typeof fetch;
  /** The local clock (ms). */
  now?: () => number;
  random?: () => number;
  /** The storage key, lock and channel name: one per token service. Default `"keyturn"`. */
  name?: string;
  /** Default `navigator.locks`; `null`: none. */
  locks?: LockManagerLike | null;
  /** Default `BroadcastChannel`; `null`: none. */
  channel?: (new (name: string) => ChannelLike) | null;
  /** Where wake-up and storage events arrive. Default `window`. */
  events?: EventTarget | null;
}
