/**
 * `Session`: the token pair (or, in cookie mode, the access token), the measured clock offset and the
 * refresh schedule of one signed-in user, shared by every caller in a tab and coordinated across tabs.
 * This is the page's side: the application's API, `fetch` with the token, the timer and the page's events.
 *
 * - refreshed ahead of time in server time, checked by a timer that never sleeps over a minute, on wake-up
 *   events (`visibilitychange`, `focus`, `online`, `pageshow`) and before every request (`refresh.ts`);
 * - temporary failures back off with full jitter while a still-valid access token keeps being used
 *   (`degraded`); only the definitive codes of the endpoint shape end the session, once per tab (`flow.ts`);
 * - what the tab knows, and tells the other tabs, is in `state.ts`.
 */
import { backoff, retryAfter } from "./backoff.js";
import type { SessionOptions } from "./options.js";
import { LoginError, RefreshUnavailableError } from "./errors.js";
import { decideRequest, errorCode, mayRetry } from "./flow.js";
import { RefreshingSession } from "./refresh.js";
import { timerDelay } from "./schedule.js";
import { g, type State } from "./state.js";

export type { SessionOptions } from "./options.js";
export type { SessionEvents, State } from "./state.js";

/** @internal One request's resends and retries, shared by `fetch` and the axios adapter. */
export interface Attempt {
  /** It may be sent again after a temporary failure. */
  _mayRetry: boolean;
  /** Retries so far after temporary failures. */
  _failures: number;
  /** It was sent again with the current token after a refusal of an older one. */
  _resent?: boolean;
  /** The access token it carried last. */
  _sent?: string;
  /** The access token refused before the refresh it asked for (one at most: the flow asks no second). */
  _rejected?: string;
}

/** How long a request whose token is due but still valid waits for the refresh before it goes out with it. */
const DUE_WAIT = 1000;
const WAKE = ["visibilitychange", "focus", "online", "pageshow"];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The origin of `url` (relative to this page), or `""` if it has none. */
function origin(url: string | undefined): string {
  try {
    return new URL(url!, g.location?.href).origin;
  } catch {
    return "";
  }
}

export class Session extends RefreshingSession {
  /** Settles once what was stored has been checked (and refreshed or ended) at start-up. */
  readonly ready: Promise<void>;
  private _origins: Set<string>;
  private _events: EventTarget | null;
  private _timer: ReturnType<typeof setTimeout> | undefined;
  private _closed = false;
  /**
   * @internal Set by `@keyturn/client/dpop`: the headers that carry `token` on a request (its `method`,
   * `GET` if none) for `url` when the token is bound to the session's key (`Authorization: DPoP` and a
   * proof), `undefined` when it is not. `fetch` gets them from the `fetch` wrapper the DPoP entry point
   * gives the session; the axios adapter from here.
   */
  _dpop?: (request: { method?: string }, url: string, token: string) => Promise<Record<string, string> | undefined>;

  constructor(o: SessionOptions = {}) {
    super(o);
    this._origins = new Set([g.location?.href, this._baseUrl, ...(o.allowedOrigins ?? [])].map(origin).filter(Boolean));
    this._events = o.events === undefined ? (typeof g.addEventListener == "function" ? (g as EventTarget) : null) : o.events;
    for (const type of WAKE) this._events?.addEventListener(type, this._check);
    this._events?.addEventListener("storage", this._onStorage);
    this.ready = this._start();
  }

  // -- what the application reads ---------------------------------------------------------------

  /** `signed_out` (no session here yet), `active`, `degraded` (refreshes failing, still signed in), `ended`. */
  get state(): State {
    return this._state;
  }

  /** Version of the state the tabs share, as seen here: one more on every login, refresh and end. */
  get generation(): number {
    return this._generation;
  }

  /** `server_time - local_time` (ms) as last measured. */
  get clockOffset(): number {
    return this._tokens?.off ?? 0;
  }

  /** The least `clockOffset` can be (ms), as last measured: the service's clock is at least that far ahead. */
  get minClockOffset(): number | undefined {
    return this._tokens?.lo;
  }

  /** When the access token expires (ms, server time), if there is one. */
  get expiresAt(): number | undefined {
    return this._tokens?.exp;
  }

  /** When the next proactive refresh is due (ms, server time), if there is a session. */
  get nextRefreshAt(): number | undefined {
    return this._tokens ? this._due : undefined;
  }

  // -- signing in and out -----------------------------------------------------------------------

  async login(username: string, password: string): Promise<void> {
    const e = this.endpoints;
    const [res, sent, received, body] = await this._call(e.login, { [e.usernameField]: username, [e.passwordField]: password });
    if (!res.ok) throw new LoginError(res.status, errorCode(body, null, e.errorField));
    this._begin(body, sent, received);
  }

  /** Starts from a token response the application obtained itself (its own login view, say). */
  setTokens(body: unknown): void {
    const now = this._now();
    this._begin(body, now, now);
  }

  /** Ends the session on the server (best effort: it ends here in any case), then `session_ended("logout")`. */
  async logout({ everywhere = false }: { everywhere?: boolean } = {}): Promise<void> {
    await this._inflight?.catch(() => {}); // a refresh answered after the logout would set a new cookie
    const t = this._tokens;
    await this._tell(everywhere ? this.endpoints.logoutAll : this.endpoints.logout, t && this._usable(t) ? t.at : undefined);
    this._end("logout");
  }

  /**
   * One logout call by the refresh token (and `token`, if given), best effort: a failure is ignored, the
   * session ends here in any case.
   */
  private _tell(path: string | null, token?: string): unknown {
    const rt = this._tokens?.rt;
    return path && this._call(path, rt ? { [this.endpoints.refreshField]: rt } : {}, token).catch(() => {});
  }

  /** Stops timers and listeners and closes the channel (a single-page app tearing down). */
  close(): void {
    this._closed = true;
    clearTimeout(this._timer);
    for (const type of WAKE) this._events?.removeEventListener(type, this._check);
    this._events?.removeEventListener("storage", this._onStorage);
    this._close();
  }

  // -- the access token -------------------------------------------------------------------------

  /** A usable access token, refreshed first if due. Throws `SessionEndedError` or `RefreshUnavailableError`. */
  getAccessToken(): Promise<string> {
    return this._token();
  }

  /**
   * `fetch` with the access token injected when the request is sent: a refresh and a resend when the
   * current token is refused (expired, invalid or revoked), a resend when an older one is refused. The
   * request's first refresh and its first resend are free; each one more (the service keeps reaching it
   * after its token expired: a long queue) is one of its `retries`, as is each retry with backoff of an
   * idempotent request (or any, with `retryUnsafe`) after no answer, 429, 502, 503 and 504. A request for
   * an origin not allowed (see `allowedOrigins`) is sent untouched.
   */
  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const request = typeof Request != "undefined" && input instanceof Request ? input : undefined;
    if (!this._sendsTokenTo(request?.url ?? String(input))) return this._send(input, init);
    const attempt = this._attempt(init.method ?? request?.method ?? "GET");
    for (;;) {
      const headers = new Headers(init.headers ?? request?.headers);
      headers.set("Authorization", "Bearer " + (await this._tokenFor(attempt)));
      let res: Response;
      try {
        res = await this._send(request ? request.clone() : input, { ...init, headers });
      } catch (error) {
        // fetch rejects with a TypeError on network errors; an abort is the application's doing
        if ((error as Error)?.name == "TypeError" && (await this._handle(attempt))) continue;
        throw error;
      }
      if (!(await this._handle(attempt, res.status, () => res.clone().json(), (name) => res.headers.get(name)))) return res;
    }
  };

  /** @internal Whether a request for `url` gets the access token (its origin is allowed). */
  _sendsTokenTo(url: string): boolean {
    return this._origins.has(origin(url));
  }

  /** @internal A new request's count of resends and retries. */
  _attempt(method: string): Attempt {
    return { _mayRetry: mayRetry(method, this._retryUnsafe), _failures: 0 };
  }

  /** @internal The access token for `attempt`'s next sending, refreshed first if due (see `_token`). */
  async _tokenFor(attempt: Attempt): Promise<string> {
    return (attempt._sent = await this._token(attempt._rejected));
  }

  /**
   * @internal Acts on one answer (none came: no `status`): its `body` (read only on a 401) and its
   * headers (`header`); `true`: send the request again.
   */
  async _handle(
    attempt: Attempt,
    status = 0,
    body?: () => unknown,
    header?: (name: string) => string | null | undefined,
  ): Promise<boolean> {
    const e = this.endpoints;
    const code = status == 401 ? errorCode(await (async () => body?.())().catch(() => null), header?.("www-authenticate"), e.errorField) : undefined;
    const t = this._tokens;
    const sent = !t?.at ? "current" : attempt._sent != t.at ? "older" : this._usable(t) ? "current" : "expired";
    const decision = decideRequest(status, code, sent, attempt._rejected !== undefined, attempt._mayRetry, e);
    if (decision == "end" && t) {
      // Given up here (the token a refresh brought was refused too): the server is told, without waiting.
      this._tell(e.logout);
      this._end(code!);
    }
    if (decision == "retry" && ++attempt._failures <= this._retries) {
      await sleep(backoff(attempt._failures, this._random, retryAfter(header?.("retry-after"), this._now())));
      return true;
    }
    if (decision != "refresh" && decision != "resend") return false;
    // The first refresh and the first resend are free; each one more (the service keeps reaching it after
    // its token expired: a busy service, a long queue) is one of its `retries`.
    const again = decision == "refresh" ? attempt._rejected : attempt._resent;
    if (again && ++attempt._failures > this._retries) return false;
    if (decision == "refresh") attempt._rejected = attempt._sent;
    else attempt._resent = true;
    return true;
  }

  /** @internal A usable access token other than `rejected`, refreshing or waiting for one if needed. */
  async _token(rejected?: string): Promise<string> {
    await this.ready;
    const now = this._now;
    const deadline = now() + this._maxWait;
    for (;;) {
      const t = this._require();
      const good = this._usable(t) && t.at != rejected;
      if (good && this._serverNow() < this._due) return t.at!;
      if (now() >= this._retryAt) {
        const refreshed = this._refresh(rejected).then(() => true);
        // A request waits for the refresh, to go out with the new token; but while its token is still
        // valid, only a moment: a slow network or another tab's hung lock must not hold requests up.
        if (await (good ? Promise.race([refreshed, sleep(DUE_WAIT).then(() => false)]) : refreshed)) continue;
      }
      // Due, but refreshing slowly or backing off: a token still usable now (the wait for the refresh took
      // time, so it is checked again) keeps being used; one no longer usable waits for the refresh.
      if (good && this._usable(t)) return t.at!;
      if (good) continue;
      if (this._retryAt > deadline) throw new RefreshUnavailableError();
      await sleep(this._retryAt - now());
    }
  }

  // -- the page's side --------------------------------------------------------------------------

  /** At start-up: resume what is stored, refreshing or ending it before the first request. */
  private async _start(): Promise<void> {
    await 0; // let the application attach its handlers first
    if (!this._resume()) return;
    try {
      const t = this._require();
      if (this._serverNow() >= this._due || !this._usable(t)) await this._refresh();
    } catch {
      // ended: the application has heard; the first request throws
    }
    this._schedule();
  }

  /** Sets the one timer: at the due time or the end of the backoff, re-checking at least every minute. */
  protected _schedule(): void {
    clearTimeout(this._timer);
    if (this._closed || !this._tokens) return;
    const at = Math.max(this._due - this.clockOffset, this._retryAt);
    this._timer = setTimeout(this._check, timerDelay(at - this._now()));
  }

  /** On the timer and on wake-up: take on what the other tabs stored, refresh if due, set the timer. */
  private _check = (event?: Event): void => {
    if (event?.type == "online" && !this._serviceWait) this._retryAt = 0; // the network is back: no need to wait
    this._consider(this._stored());
    if (this._tokens && !this._inflight && this._serverNow() >= this._due && this._now() >= this._retryAt) {
      this._refresh().catch(() => {});
    } else {
      this._schedule();
    }
  };

  private _onStorage = (event: Event): void => {
    const key = (event as StorageEvent).key;
    if (key == null || key == this._name) this._check();
  };

}

export function createSession(options?: SessionOptions): Session {
  return new Session(options);
}
