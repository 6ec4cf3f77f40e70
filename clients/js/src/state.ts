/**
 * What one tab knows of the session, and shares with the other tabs: the settings, the tokens and their
 * generation, when the next refresh is due, the backoff after temporary failures, the end and its reason;
 * and the events the application hears of it, held back while a refresh holds the cross-tab lock.
 *
 * A session is built in layers, one a file, each a class extending the one below:
 *
 *     Tabs (tabs.ts)                     storage, lock and channel the tabs share
 *     SessionState (state.ts)            what this tab knows and tells the others
 *     RefreshingSession (refresh.ts)     the refresh under the cross-tab lock; calls to the token service
 *     Session (session.ts)               the application's side: API, fetch with the token, timer, page events
 *
 * and decides as the I/O-free flow (`flow.ts`) says. Members named `_name` belong to the layers and are
 * protected (the bundle shortens these names; one object keeps them all, so they cost little).
 */
import { SessionEndedError, type EndReason } from "./errors.js";
import { KEYTURN, type Endpoints } from "./endpoints.js";
import { refreshDelay } from "./flow.js";
import type { SessionOptions } from "./options.js";
import { dueAt } from "./schedule.js";
import { Tabs, type LockManagerLike } from "./tabs.js";
import { asTokens, parseTokens, type Tokens } from "./tokens.js";

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

/** An access token this close to its expiry (server time) is not sent any more. */
const USABLE_MARGIN = 1000;
/**
 * How long a tab that knows another tab has newer tokens (or, in cookie mode, has no access token yet)
 * waits for them before it refreshes itself; they end the wait the moment they arrive.
 */
const PEER_WAIT = 500;

/** `globalThis`, its browser members optional (a worker or Node has none of them). */
export const g = globalThis as unknown as Partial<Window & typeof globalThis>;

type Handler = (value: never) => void;

function localStorageOrNull(): Storage | null {
  try {
    return g.localStorage ?? null;
  } catch {
    return null; // sandboxed frames throw on access
  }
}

export abstract class SessionState extends Tabs {
  /** Paths, field names and codes of the token service: `KEYTURN` with the options' `endpoints` over it. */
  readonly endpoints: Endpoints;
  // The settings (see `SessionOptions`; times in ms).
  protected readonly _cookie: boolean;
  protected readonly _baseUrl: string;
  protected readonly _margin: number;
  protected readonly _jitter: number;
  protected readonly _retries: number;
  protected readonly _retryUnsafe: boolean;
  protected readonly _maxWait: number;
  protected readonly _timeout: number;
  protected readonly _credentials: RequestCredentials;
  protected readonly _send: typeof fetch;
  protected readonly _now: () => number;
  protected readonly _random: () => number;

  protected _state: State = "signed_out";
  /** Version of the state the tabs share, as seen here: one more on every login, refresh and end. */
  protected _generation = 0;
  protected _tokens: Tokens | undefined;
  /** When the next refresh is due (ms, server time). */
  protected _due = Infinity;
  /** One more whenever the session here is replaced or ends: a refresh begun before belongs to the past. */
  protected _epoch = 0;
  protected _reason: EndReason = "signed_out";
  /** Temporary failures of the refresh in a row, and when (local time) the next attempt may go. */
  protected _failures = 0;
  protected _retryAt = 0;
  /** The wait comes from the service (`Retry-After`): the network coming back does not cut it short. */
  protected _serviceWait = false;
  /** While a refresh holds the cross-tab lock, events wait: no application handler runs under it. */
  protected _held = 0;
  private _lostAt = 0;
  private _queue: [keyof SessionEvents, unknown][] = [];
  private _handlers = new Map<string, Set<Handler>>();
  private _waiter: (() => void) | undefined;

  constructor(o: SessionOptions) {
    super(
      o.name ?? "keyturn",
      o.storage === undefined ? localStorageOrNull() : o.storage,
      o.locks === undefined ? ((g.navigator?.locks as LockManagerLike | undefined) ?? null) : o.locks,
      o.channel === undefined ? (g.BroadcastChannel ?? null) : o.channel,
    );
    const cookie = (this._cookie = o.mode != "body");
    this.endpoints = { ...KEYTURN, ...o.endpoints };
    this._baseUrl = o.baseUrl ?? "";
    this._margin = (o.refreshMargin ?? 300) * 1000;
    this._jitter = o.jitter ?? 0.1;
    this._retries = o.retries ?? 2;
    this._retryUnsafe = !!o.retryUnsafe;
    this._maxWait = (o.maxWait ?? 60) * 1000;
    this._timeout = (o.timeout ?? 10) * 1000;
    this._credentials = o.credentials ?? (cookie ? "include" : "same-origin");
    this._send = o.fetch ?? ((input, init) => fetch(input, init));
    this._now = o.now ?? (() => Date.now());
    this._random = o.random ?? Math.random;
  }

  /** Sets the timer again: the tokens or the backoff changed. */
  protected abstract _schedule(): void;

  on<K extends keyof SessionEvents>(type: K, handler: (value: SessionEvents[K]) => void): () => void {
    const set = this._handlers.get(type) ?? new Set();
    this._handlers.set(type, set.add(handler as Handler));
    return () => void set.delete(handler as Handler);
  }

  protected _serverNow(): number {
    return this._now() + (this._tokens?.off ?? 0);
  }

  protected _usable(t: Tokens): boolean {
    return !!t.at && this._serverNow() < t.exp! - USABLE_MARGIN;
  }

  /** The live tokens, or why there are none. */
  protected _require(): Tokens {
    const t = this._tokens;
    if (!t) throw new SessionEndedError(this._reason);
    if (t.rexp && this._serverNow() > t.rexp) {
      this._end("refresh_token_expired");
      throw new SessionEndedError(this._reason);
    }
    return t;
  }

  /** What the tabs stored last, if it is a record. */
  protected _stored(): Tokens | undefined {
    return asTokens(this._read(), !this._cookie);
  }

  /** Whether `r`, from storage or another tab, is newer than what this tab knows (an end wins a tie). */
  protected _newer(r: Tokens): boolean {
    const t = this._tokens;
    return r.gen > this._generation || (r.gen == this._generation && !!t && (!!r.end || !t.at || r.exp! > t.exp!));
  }

  /** Takes on a record from storage or another tab if it is newer; a cookie-mode record without token waits. */
  protected _consider(r: Tokens | undefined): void {
    if (!r || !this._newer(r)) return;
    if (r.end) {
      this._generation = r.gen;
      this._finish(r.end);
    } else if (r.at) {
      this._install(r, true);
    }
  }

  protected _nextGeneration(): number {
    return Math.max(this._generation, this._stored()?.gen ?? 0) + 1;
  }

  /** At start-up: takes on what the tabs stored; `true` if there is a session to go on with. */
  protected _resume(): boolean {
    const r = this._stored();
    if (!r) return false;
    this._generation = r.gen;
    if (r.end) return false;
    this._tokens = r; // cookie mode: no access token yet; another tab or a refresh gives one
    this._due = r.at ? this._dueAt(r) : -Infinity;
    this._setState("active");
    return true;
  }

  /** A new session, from a login answer or the application's own. */
  protected _begin(body: unknown, sent: number, received: number): void {
    const cookie = this._cookie;
    const tokens = parseTokens(body, this.endpoints, sent, received, cookie ? false : undefined);
    this._epoch++; // a refresh still in flight belongs to the session before
    this._install({ ...tokens, gen: this._nextGeneration() }, false);
  }

  /** New tokens: kept, shared (storage, and the channel unless they came from it) and scheduled. */
  protected _install(r: Tokens, remote: boolean): void {
    this._tokens = r;
    this._generation = r.gen;
    this._due = this._dueAt(r);
    this._failures = this._retryAt = this._lostAt = 0;
    const stored = this._stored();
    // cookie mode stores no token: only the generation and times that tell the others a refresh happened
    if (!stored || stored.gen < r.gen) this._write(this._cookie ? { ...r, at: undefined } : r);
    if (!remote) this._post(r);
    this._setState("active");
    this._emit("refreshed", { generation: r.gen, expiresAt: r.exp!, remote });
    this._waiter?.();
    this._schedule();
  }

  /** Ends the session here and in the other tabs. */
  protected _end(reason: string): void {
    if (!this._tokens) return;
    const marker = { gen: this._nextGeneration(), end: reason };
    this._write(marker);
    this._post(marker);
    this._generation = marker.gen;
    this._finish(reason);
  }

  /** Ends the session in this tab: tokens dropped, `session_ended` once. */
  private _finish(reason: string): void {
    if (!this._tokens) return;
    this._tokens = undefined;
    this._epoch++;
    this._reason = reason;
    this._due = Infinity;
    this._waiter?.();
    this._setState("ended");
    this._emit("session_ended", reason);
    this._schedule();
  }

  /**
   * A temporary failure of the refresh: back off (`wait`: the service's `Retry-After`), kept short after a
   * `lost` answer; `quiet`: without `degraded` (not a failure: the session's absolute end is near).
   */
  protected _failed(reason: string, wait?: number, how?: "quiet" | "lost"): void {
    const now = this._now();
    this._serviceWait = wait !== undefined;
    if (how == "lost") this._lostAt ||= now;
    const delay = refreshDelay(++this._failures, this._random, wait, this._lostAt ? now - this._lostAt : Infinity);
    this._retryAt = now + delay;
    if (how == "quiet") return;
    this._setState("degraded");
    this._emit("degraded", { attempt: this._failures, retryIn: delay, reason });
  }

  /** Asks the other tabs for their tokens and waits, `PEER_WAIT` ms at most, for newer ones (or an end). */
  protected async _catchUp(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout((this._waiter = () => (clearTimeout(timer), resolve())), PEER_WAIT);
      this._post({ ask: 1 });
    });
    this._waiter = undefined;
  }

  /** What another tab says: a request for the tokens (answered if this tab has usable ones), or news. */
  protected _onMessage(data: unknown): void {
    if ((data as { ask?: number })?.ask) {
      const t = this._tokens;
      if (t && this._usable(t)) this._post(t);
    } else {
      this._consider(asTokens(data, !this._cookie));
    }
  }

  private _dueAt(r: Tokens): number {
    return dueAt(r.exp!, r.life!, this._margin, this._jitter, this._random);
  }

  private _setState(state: State): void {
    if (state != this._state) this._emit("state", (this._state = state));
  }

  private _emit<K extends keyof SessionEvents>(type: K, value: SessionEvents[K]): void {
    this._queue.push([type, value]);
    this._flush();
  }

  /** Runs the handlers of queued events, unless the lock is held: they run once it is released. */
  protected _flush(): void {
    while (!this._held && this._queue.length) {
      const [type, value] = this._queue.shift()!;
      for (const handler of this._handlers.get(type) ?? []) {
        try {
          handler(value as never);
        } catch (error) {
          (g.reportError ?? console.error)(error); // an application's handler must not break the session
        }
      }
    }
  }
}
