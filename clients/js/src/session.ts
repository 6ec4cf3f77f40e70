/**
 * `Session`: the token pair (or, in cookie mode, the access token), the measured clock offset and the
 * refresh schedule of one signed-in user, shared by every caller in a tab and coordinated across tabs
 * (DESIGN section 6):
 *
 * - refreshed ahead of time in server time, checked by a timer that never sleeps over a minute, on wake-up
 *   events (`visibilitychange`, `focus`, `online`, `pageshow`) and before every request;
 * - one refresh at a time: one promise per tab, the Web Lock across tabs; whoever takes the lock re-reads
 *   the shared state and skips the refresh if another tab did it; the others receive the new tokens;
 * - temporary failures back off with full jitter while a still-valid access token keeps being used
 *   (`degraded`); only the definitive codes of the endpoint shape end the session, once per tab;
 * - no event handler runs while the lock is held.
 */
import { backoff, retryAfter } from "./backoff";
import { IDEMPOTENT, errorCode, isDefinitive, judge } from "./classify";
import { KEYTURN, type Endpoints } from "./endpoints";
import { LoginError, RefreshUnavailableError, SessionEndedError, type EndReason } from "./errors";
import { dueAt, timerDelay } from "./schedule";
import { Tabs, type ChannelLike, type LockManagerLike } from "./tabs";
import { asTokens, parseTokens, type Tokens } from "./tokens";

export type State = "signed_out" | "active" | "degraded" | "ended";

export interface SessionEvents {
  /** New tokens, from this tab's refresh or login (`remote: false`) or another tab's. */
  refreshed: { generation: number; expiresAt: number; remote: boolean };
  /** A refresh failed for a temporary reason; the next attempt is in `retryIn` ms. Still signed in. */
  degraded: { attempt: number; retryIn: number; reason: string };
  /** The session is over (at most once per session and tab): a definitive code, or `"logout"`. */
  session_ended: EndReason;
  state: State;
}

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
  /** Also retry POST and PATCH after a temporary failure. Default false. */
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

/** @internal One request's resends and retries, shared by `fetch` and the axios adapter. */
export interface Attempt {
  mayRetry: boolean;
  replaced: number;
  failures: number;
  sent?: string;
  rejected?: string;
}

/** An access token this close to its expiry (server time) is not sent any more. */
const USABLE_MARGIN = 1000;
/** How long a request whose token is due but still valid waits for the refresh before it goes out with it. */
const DUE_WAIT = 1000;
/**
 * How long a tab that holds the lock, and knows another tab has newer tokens (or, in cookie mode, has no
 * access token yet), waits for them before it refreshes itself; they end the wait the moment they arrive.
 */
const PEER_WAIT = 500;
/**
 * After a refresh whose answer may have been lost (the service may have rotated), retries come at most
 * `LOST_RETRY` ms apart for `LOST_WINDOW` ms, so that one lands inside the service's grace period (30 s by
 * default) and gets the rotated pair back, rather than after it, where the old token counts as reused.
 */
const LOST_WINDOW = 25_000;
const LOST_RETRY = 2000;
const WAKE = ["visibilitychange", "focus", "online", "pageshow"];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const g = globalThis as unknown as Partial<Window & typeof globalThis>;

function localStorageOrNull(): Storage | null {
  try {
    return g.localStorage ?? null;
  } catch {
    return null; // sandboxed frames throw on access
  }
}

/** The origin of `url` (relative to this page), or `""` if it has none. */
function origin(url: string | undefined): string {
  try {
    return new URL(url!, g.location?.href).origin;
  } catch {
    return "";
  }
}

type Handler = (value: never) => void;

export class Session {
  /** Settles once what was stored has been checked (and refreshed or ended) at start-up. */
  readonly ready: Promise<void>;
  readonly endpoints: Endpoints;

  private s: State = "signed_out";
  private gen = 0;
  private t: Tokens | undefined;
  private due = Infinity;
  private failures = 0;
  private retryAt = 0;
  private lostAt = 0;
  private fromServer = false;
  private epoch = 0;
  private reason: EndReason = "signed_out";
  private inflight: Promise<void> | undefined;
  private held = 0;
  private queue: [keyof SessionEvents, unknown][] = [];
  private handlers = new Map<string, Set<Handler>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private waiter: (() => void) | undefined;
  private closed = false;
  private readonly tabs: Tabs;
  private readonly cookie: boolean;
  private readonly base: string;
  private readonly origins: Set<string>;
  private readonly margin: number;
  private readonly jitter: number;
  private readonly retries: number;
  private readonly retryUnsafe: boolean;
  private readonly maxWait: number;
  private readonly timeout: number;
  private readonly credentials: RequestCredentials;
  private readonly send: typeof fetch;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly events: EventTarget | null;

  constructor(o: SessionOptions = {}) {
    this.cookie = o.mode != "body";
    this.endpoints = { ...KEYTURN, ...o.endpoints };
    this.base = o.baseUrl ?? "";
    this.origins = new Set([g.location?.href, this.base, ...(o.allowedOrigins ?? [])].map(origin).filter(Boolean));
    this.margin = (o.refreshMargin ?? 300) * 1000;
    this.jitter = o.jitter ?? 0.1;
    this.retries = o.retries ?? 2;
    this.retryUnsafe = !!o.retryUnsafe;
    this.maxWait = (o.maxWait ?? 60) * 1000;
    this.timeout = (o.timeout ?? 10) * 1000;
    this.credentials = o.credentials ?? (this.cookie ? "include" : "same-origin");
    this.send = o.fetch ?? ((input, init) => fetch(input, init));
    this.now = o.now ?? (() => Date.now());
    this.random = o.random ?? Math.random;
    this.tabs = new Tabs(
      o.name ?? "keyturn",
      o.storage === undefined ? localStorageOrNull() : o.storage,
      o.locks === undefined ? ((g.navigator?.locks as LockManagerLike | undefined) ?? null) : o.locks,
      o.channel === undefined ? (g.BroadcastChannel ?? null) : o.channel,
      (data) => this.onMessage(data),
    );
    this.events = o.events === undefined ? (typeof g.addEventListener == "function" ? globalThis : null) : o.events;
    for (const type of WAKE) this.events?.addEventListener(type, this.check);
    this.events?.addEventListener("storage", this.onStorage);
    this.ready = this.start();
  }

  // -- what the application reads ---------------------------------------------------------------

  /** `signed_out` (no session here yet), `active`, `degraded` (refreshes failing, still signed in), `ended`. */
  get state(): State {
    return this.s;
  }

  /** Version of the state the tabs share, as seen here: one more on every login, refresh and end. */
  get generation(): number {
    return this.gen;
  }

  /** `server_time - local_time` (ms) as last measured. */
  get clockOffset(): number {
    return this.t?.off ?? 0;
  }

  /** When the access token expires (ms, server time), if there is one. */
  get expiresAt(): number | undefined {
    return this.t?.exp;
  }

  /** When the next proactive refresh is due (ms, server time), if there is a session. */
  get nextRefreshAt(): number | undefined {
    return this.t ? this.due : undefined;
  }

  on<K extends keyof SessionEvents>(type: K, handler: (value: SessionEvents[K]) => void): () => void {
    const set = this.handlers.get(type) ?? new Set();
    this.handlers.set(type, set.add(handler as Handler));
    return () => void set.delete(handler as Handler);
  }

  // -- signing in and out -----------------------------------------------------------------------

  async login(username: string, password: string): Promise<void> {
    const e = this.endpoints;
    const sent = this.now();
    const [res, body] = await this.call(e.login, { [e.usernameField]: username, [e.passwordField]: password });
    if (!res.ok) throw new LoginError(res.status, errorCode(body, null, e.errorField));
    this.begin(body, sent, this.now());
  }

  /** Starts from a token response the application obtained itself (its own login view, say). */
  setTokens(body: unknown): void {
    const now = this.now();
    this.begin(body, now, now);
  }

  /** Ends the session on the server (best effort: it ends here in any case), then `session_ended("logout")`. */
  async logout({ everywhere = false }: { everywhere?: boolean } = {}): Promise<void> {
    await this.inflight?.catch(() => {}); // a refresh answered after the logout would set a new cookie
    const e = this.endpoints;
    const t = this.t;
    const path = everywhere ? e.logoutAll : e.logout;
    if (path) {
      try {
        await this.call(path, t?.rt ? { [e.refreshField]: t.rt } : {}, t && this.usable(t) ? t.at : undefined);
      } catch {
        // the service could not be reached: the session still ends here
      }
    }
    this.end("logout");
  }

  /** Stops timers and listeners and closes the channel (a single-page app tearing down). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const type of WAKE) this.events?.removeEventListener(type, this.check);
    this.events?.removeEventListener("storage", this.onStorage);
    this.tabs.close();
  }

  // -- the access token -------------------------------------------------------------------------

  /** A usable access token, refreshed first if due. Throws `SessionEndedError` or `RefreshUnavailableError`. */
  getAccessToken(): Promise<string> {
    return this.token();
  }

  /**
   * `fetch` with the access token injected when the request is sent: one refresh and one resend when the
   * current token is refused as expired, one resend when an older one is refused, and retries with backoff
   * of idempotent requests after network errors, 429 and 5xx. A request for an origin not allowed (see
   * `allowedOrigins`) is sent untouched.
   */
  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const request = typeof Request != "undefined" && input instanceof Request ? input : undefined;
    if (!this.sendsTokenTo(request?.url ?? String(input))) return this.send(input, init);
    const attempt = this.attempt(init.method ?? request?.method ?? "GET");
    for (;;) {
      const token = (attempt.sent = await this.token(attempt.rejected));
      const headers = new Headers(init.headers ?? request?.headers);
      headers.set("Authorization", "Bearer " + token);
      let res: Response;
      try {
        res = await this.send(request ? request.clone() : input, { ...init, headers });
      } catch (error) {
        // fetch rejects with a TypeError on network errors; an abort is the application's doing
        if ((error as Error)?.name == "TypeError" && (await this.handle(0, undefined, null, attempt))) continue;
        throw error;
      }
      const code =
        res.status == 401
          ? errorCode(await res.clone().json().catch(() => null), res.headers.get("www-authenticate"), this.endpoints.errorField)
          : undefined;
      if (!(await this.handle(res.status, code, res.headers.get("retry-after"), attempt))) return res;
    }
  };

  /** @internal Whether a request for `url` gets the access token (its origin is allowed). */
  sendsTokenTo(url: string): boolean {
    return this.origins.has(origin(url));
  }

  /** @internal A new request's count of resends and retries. */
  attempt(method: string): Attempt {
    return { mayRetry: this.retryUnsafe || IDEMPOTENT.includes(method.toUpperCase()), replaced: 0, failures: 0 };
  }

  /** @internal Acts on one answer (status 0: a network error); `true`: send the request again. */
  async handle(status: number, code: string | undefined, retryAfterHeader: string | null | undefined, attempt: Attempt): Promise<boolean> {
    const verdict = judge(status, code, attempt.sent, this.t?.at, this.endpoints, attempt.mayRetry);
    if (verdict == "end") this.end(code!);
    if (verdict == "retry" && ++attempt.failures <= this.retries) {
      await sleep(backoff(attempt.failures, this.random, retryAfter(retryAfterHeader, this.now())));
      return true;
    }
    if ((verdict == "refresh" || verdict == "resend") && !attempt.replaced++) {
      if (verdict == "refresh") attempt.rejected = attempt.sent;
      return true;
    }
    return false;
  }

  /** @internal A usable access token other than `rejected`, refreshing or waiting for one if needed. */
  async token(rejected?: string): Promise<string> {
    await this.ready;
    const deadline = this.now() + this.maxWait;
    for (;;) {
      const t = this.require();
      const good = this.usable(t) && t.at != rejected;
      if (good && this.serverNow() < this.due) return t.at!;
      if (this.now() >= this.retryAt) {
        const refreshed = this.refresh(rejected).then(() => true);
        // A request waits for the refresh, to go out with the new token; but while its token is still
        // valid, only a moment: a slow network or another tab's hung lock must not hold requests up.
        if (await (good ? Promise.race([refreshed, sleep(DUE_WAIT).then(() => false)]) : refreshed)) continue;
      }
      if (good) return t.at!; // due, but refreshing slowly or backing off: a valid token keeps being used
      if (this.retryAt > deadline) throw new RefreshUnavailableError();
      await sleep(this.retryAt - this.now());
    }
  }

  // -- the decisions (no I/O) -------------------------------------------------------------------

  private serverNow(): number {
    return this.now() + this.clockOffset;
  }

  private usable(t: Tokens): boolean {
    return !!t.at && this.serverNow() < t.exp! - USABLE_MARGIN;
  }

  /** The live tokens, or why there are none. */
  private require(): Tokens {
    const t = this.t;
    if (!t) throw new SessionEndedError(this.reason);
    if (t.rexp && this.serverNow() > t.rexp) {
      this.end("refresh_token_expired");
      throw new SessionEndedError(this.reason);
    }
    return t;
  }

  /** Whether `r`, from storage or another tab, is newer than what this tab knows (an end wins a tie). */
  private newer(r: Tokens): boolean {
    const t = this.t;
    return r.gen > this.gen || (r.gen == this.gen && !!t && (!!r.end || !t.at || r.exp! > t.exp!));
  }

  /** Takes on a record from storage or another tab if it is newer; a cookie-mode record without token waits. */
  private consider(r: Tokens | undefined): void {
    if (!r || !this.newer(r)) return;
    if (r.end) {
      this.gen = r.gen;
      this.finish(r.end);
    } else if (r.at) {
      this.install(r, true);
    }
  }

  private nextGen(): number {
    return Math.max(this.gen, asTokens(this.tabs.read(), !this.cookie)?.gen ?? 0) + 1;
  }

  // -- state changes ----------------------------------------------------------------------------

  private begin(body: unknown, sent: number, received: number): void {
    const n = parseTokens(body, this.endpoints, sent, received, this.cookie ? false : undefined);
    this.epoch++; // a refresh still in flight belongs to the session before
    this.install({ ...n, gen: this.nextGen() }, false);
  }

  /** New tokens: kept, shared (storage, and the channel unless they came from it) and scheduled. */
  private install(r: Tokens, remote: boolean): void {
    this.t = r;
    this.gen = r.gen;
    this.due = dueAt(r.exp!, r.life!, this.margin, this.jitter, this.random);
    this.failures = this.retryAt = this.lostAt = 0;
    const stored = asTokens(this.tabs.read(), !this.cookie);
    // cookie mode stores no token: only the gen and times that tell the others a refresh happened
    if (!stored || stored.gen < r.gen) this.tabs.write(this.cookie ? { ...r, at: undefined } : r);
    if (!remote) this.tabs.post(r);
    this.setState("active");
    this.emit("refreshed", { generation: r.gen, expiresAt: r.exp!, remote });
    this.waiter?.();
    this.schedule();
  }

  /** Ends the session here and in the other tabs. */
  private end(reason: string): void {
    if (!this.t) return;
    const marker = { gen: this.nextGen(), end: reason };
    this.tabs.write(marker);
    this.tabs.post(marker);
    this.gen = marker.gen;
    this.finish(reason);
  }

  /** Ends the session in this tab: tokens dropped, `session_ended` once. */
  private finish(reason: string): void {
    if (!this.t) return;
    this.t = undefined;
    this.epoch++;
    this.reason = reason;
    this.due = Infinity;
    clearTimeout(this.timer);
    this.waiter?.();
    this.setState("ended");
    this.emit("session_ended", reason);
  }

  /** A temporary failure: backoff (`quiet`: without `degraded`), kept short after a `lost` answer. */
  private failed(reason: string, wait?: number, how?: "quiet" | "lost"): void {
    const now = this.now();
    this.fromServer = wait !== undefined;
    if (how == "lost") this.lostAt ||= now;
    let delay = backoff(++this.failures, this.random, wait);
    if (this.lostAt && now - this.lostAt < LOST_WINDOW) delay = Math.min(delay, LOST_RETRY);
    this.retryAt = now + delay;
    if (how == "quiet") return;
    this.setState("degraded");
    this.emit("degraded", { attempt: this.failures, retryIn: delay, reason });
  }

  private setState(state: State): void {
    if (state != this.s) this.emit("state", (this.s = state));
  }

  private emit<K extends keyof SessionEvents>(type: K, value: SessionEvents[K]): void {
    this.queue.push([type, value]);
    this.flush();
  }

  /** Runs the handlers of queued events, unless the lock is held: they run once it is released. */
  private flush(): void {
    while (!this.held && this.queue.length) {
      const [type, value] = this.queue.shift()!;
      for (const handler of this.handlers.get(type) ?? []) {
        try {
          handler(value as never);
        } catch (error) {
          (g.reportError ?? console.error)(error); // an application's handler must not break the session
        }
      }
    }
  }

  // -- I/O --------------------------------------------------------------------------------------

  /** At start-up: resume what is stored, refreshing or ending it before the first request. */
  private async start(): Promise<void> {
    await 0; // let the application attach its handlers first
    const r = asTokens(this.tabs.read(), !this.cookie);
    if (!r) return;
    this.gen = r.gen;
    if (r.end) return;
    this.t = r; // cookie mode: no access token yet; another tab or a refresh gives one
    this.due = r.at ? dueAt(r.exp!, r.life!, this.margin, this.jitter, this.random) : -Infinity;
    this.setState("active");
    try {
      this.require();
      if (this.serverNow() >= this.due || !this.usable(r)) await this.refresh();
    } catch {
      // ended: the application has heard; the first request throws
    }
    this.schedule();
  }

  /** The one refresh of this tab, shared by every caller. */
  private refresh(rejected?: string): Promise<void> {
    const stale = rejected ?? this.t?.at;
    return (this.inflight ??= this.tabs
      .lock(() => this.refreshLocked(stale))
      .finally(() => {
        this.inflight = undefined;
        this.flush();
        this.schedule();
      }));
  }

  private async refreshLocked(stale: string | undefined): Promise<void> {
    this.held++;
    try {
      const epoch = this.epoch;
      const e = this.endpoints;
      const stored = asTokens(this.tabs.read(), !this.cookie);
      this.consider(stored);
      // Another tab refreshed: it published a newer generation (the lock manager tells at once, where storage
      // and the channel may reach this tab after the lock did), or (cookie mode) its stored state is newer
      // but holds no token, or this tab has no access token yet. Wait for those tokens (asking the others
      // for them) rather than present a refresh token that was already rotated.
      if (
        this.t &&
        ((this.tabs.channel && (!this.t.at || (!!stored && this.newer(stored)))) || ((await this.tabs.newest()) ?? 0) > this.gen)
      ) {
        await this.catchUp();
      }
      const t = this.t;
      if (!t || epoch != this.epoch || (t.at != stale && this.usable(t) && this.serverNow() < this.due)) return;
      const sent = this.now();
      const gen = this.gen;
      let res: Response, body: unknown;
      try {
        [res, body] = await this.call(e.refresh, t.rt ? { [e.refreshField]: t.rt } : {});
      } catch (error) {
        if (epoch == this.epoch) this.failed(String(error), undefined, "lost");
        return;
      }
      // Logged out or in meanwhile, here or (as storage tells before the channel does) in another tab:
      // this answer belongs to the past.
      this.consider(asTokens(this.tabs.read(), !this.cookie));
      if (epoch != this.epoch) return;
      if (!res.ok) {
        const code = errorCode(body, null, e.errorField);
        if (isDefinitive(res.status, code, e)) {
          // Refused for good, unless another tab refreshed with the same token first (no Web Locks, or a hung
          // holder): then its newer tokens keep the session. Without Web Locks to ask, ask the tabs.
          if (((await this.tabs.newest()) ?? Infinity) > gen) await this.catchUp();
          if (this.gen == gen) this.end(code!);
          return;
        }
        return this.failed(`HTTP ${res.status} ${code ?? ""}`, retryAfter(res.headers.get("retry-after"), this.now()));
      }
      let n: Omit<Tokens, "gen">;
      try {
        n = parseTokens(body, e, sent, this.now(), this.cookie ? false : t.rt);
      } catch (error) {
        return this.failed(String(error), undefined, "lost"); // rotated, probably, but unreadable
      }
      const failures = this.failures;
      this.install({ ...n, gen: this.nextGen() }, false);
      await this.tabs.publish(this.gen); // before the lock goes to another tab
      if ((t.at && n.exp! <= t.exp!) || !this.usable(this.t!)) {
        // Near the session's absolute end every refresh brings the same expiry: back off, growing, rather
        // than refresh again at once (not a failure, so not `degraded`).
        this.failures = failures;
        this.failed("", undefined, "quiet");
      }
    } finally {
      this.held--;
    }
  }

  /** Asks the other tabs for their tokens and waits, `PEER_WAIT` ms at most, for newer ones (or an end). */
  private async catchUp(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout((this.waiter = () => (clearTimeout(timer), resolve())), PEER_WAIT);
      this.tabs.post({ ask: 1 });
    });
    this.waiter = undefined;
  }

  /** One POST to the token service, abandoned after `timeout`; the body `undefined` if it is not JSON. */
  private async call(path: string, body: object, token?: string): Promise<[Response, unknown]> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeout);
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (this.cookie) headers[this.endpoints.csrfHeader] = "1";
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const res = await this.send(this.base + path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: this.credentials,
        signal: abort.signal,
      });
      return [res, await res.json().catch(() => undefined)];
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sets the one timer: at the due time or the end of the backoff, re-checking at least every minute. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.closed || !this.t) return;
    const at = Math.max(this.due - this.clockOffset, this.retryAt);
    this.timer = setTimeout(this.check, timerDelay(at - this.now()));
  }

  /** On the timer and on wake-up: take on what the other tabs stored, refresh if due, set the timer. */
  private check = (event?: Event): void => {
    if (event?.type == "online" && !this.fromServer) this.retryAt = 0; // the network is back: no need to wait
    this.consider(asTokens(this.tabs.read(), !this.cookie));
    if (this.t && !this.inflight && this.serverNow() >= this.due && this.now() >= this.retryAt) {
      this.refresh().catch(() => {});
    } else {
      this.schedule();
    }
  };

  private onStorage = (event: Event): void => {
    if ((event as StorageEvent).key == null || (event as StorageEvent).key == this.tabs.name) this.check();
  };

  private onMessage(data: unknown): void {
    if ((data as { ask?: number })?.ask) {
      const t = this.t;
      if (t && this.usable(t)) this.tabs.post(t);
    } else {
      this.consider(asTokens(data, !this.cookie));
    }
  }
}

export function createSession(options?: SessionOptions): Session {
  return new Session(options);
}
