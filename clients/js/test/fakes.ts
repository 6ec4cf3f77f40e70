/**
 * Test doubles that behave like the real things: a token service answering as Keyturn (or simplejwt) does,
 * with rotation, the grace period, reuse detection and the refresh cookie held in a browser-like cookie
 * jar; storage shared by tabs with storage events; Web Locks; BroadcastChannel. Time is vitest's fake clock.
 */
import { vi } from "vitest";
import { createSession as createBase, type Session, type SessionOptions } from "../src/session";
import { SIMPLEJWT } from "../src/endpoints";
import { FakeLocks, SharedStorage, channels } from "./fakes_tabs";

export { FakeLocks, SharedStorage, channels };

export const BASE = "http://api.test";
export const START = Date.UTC(2026, 0, 1);

export interface Recorded {
  at: number;
  url: string;
  path: string;
  method: string;
  headers: Record<string, string>;
  body: string;
  credentials: RequestCredentials | undefined;
}

/** A scripted answer for the next call: an HTTP error, a network error, or a lost answer (done, then dropped). */
export type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string>; delay?: number }
  | "network"
  | "lost";

const b64url = (value: unknown) =>
  btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function abortable(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

export class FakeServer {
  /** Server clock minus local clock (ms). */
  skew = 0;
  lifetime = 900;
  refreshLifetime = 14 * 86400;
  /** Seconds a rotated refresh token is still answered with its successor (SimpleJWT has none). */
  grace: number;
  latency = 20;
  /** The browser's cookie jar, shared by every tab of the "browser". */
  jar = new Map<string, string>();
  requests: Recorded[] = [];
  refreshFaults: Fault[] = [];
  resourceFaults: Fault[] = [];
  rotations = 0;
  /** Every refresh token presented at the refresh endpoint, in order (a token twice is a replay or a reuse). */
  presented: string[] = [];
  revoked: string | undefined;
  /** The session's absolute end (server time, s): access tokens never outlive it, refreshes past it fail. */
  absoluteEnd = Infinity;
  /** Extra time a refresh answer takes after the service did the work. */
  refreshDelay = 0;
  /** Extra fields sent in every token answer (a misconfigured service, say). */
  extra: Record<string, unknown> = {};
  /** Extra claims of every access token (`cnf`, for a token bound to a DPoP key). */
  claims: Record<string, unknown> = {};
  /**
   * At most this many requests out at once, the others queued in order, as a browser's connections to one
   * host over HTTP/1.1 (Chromium: 6); `work` ms of the service's time each, after it checked the token (a
   * busy service).
   */
  connections = Infinity;
  work = 0;
  /** ms before the service reads a resource request (a queue in front of it). */
  reach = 0;
  private busy = 0;
  private waiting: (() => void)[] = [];
  private head: string | undefined;
  private rotated = new Map<string, number>();
  private access = new Map<string, { exp: number }>();
  private serial = 0;

  constructor(
    readonly cookieMode = true,
    readonly shape: "keyturn" | "simplejwt" = "keyturn",
  ) {
    this.grace = shape == "simplejwt" ? 0 : 30;
  }

  serverNow(): number {
    return (Date.now() + this.skew) / 1000;
  }

  calls(path: string): Recorded[] {
    return this.requests.filter((r) => r.path == path);
  }

  get refreshPath(): string {
    return this.shape == "simplejwt" ? SIMPLEJWT.refresh : "/auth/refresh";
  }

  get refreshes(): number {
    return this.calls(this.refreshPath).length;
  }

  /** Makes the current access tokens expire now, as a resource server would see them. */
  expireAccessTokens(): void {
    for (const entry of this.access.values()) entry.exp = this.serverNow() - 1;
  }

  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    if (this.busy < this.connections) this.busy++;
    else await new Promise<void>((go) => this.waiting.push(go)); // a finished request hands its connection on
    try {
      return await this.send(input, init);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  };

  private send = async (input: RequestInfo | URL, init: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const body = await request.text();
    // a browser attaches the cookie when the request leaves, not when the service reads it
    const cookie = init.credentials != "omit" ? this.jar.get("keyturn_refresh") : undefined;
    this.requests.push({
      at: Date.now(),
      url: request.url,
      path: url.pathname,
      method: request.method,
      headers: Object.fromEntries(request.headers),
      body,
      credentials: init.credentials,
    });
    // half the latency on the way there, half on the way back: server_time is taken at the midpoint
    await abortable(this.latency / 2, init.signal);
    const answer = await this.answer(request, url, body, cookie);
    await abortable(this.latency / 2, init.signal);
    return answer;
  };

  private async answer(request: Request, url: URL, body: string, cookie: string | undefined): Promise<Response> {
    let data: Record<string, string> = {};
    try {
      data = JSON.parse(body || "{}") as Record<string, string>;
    } catch {
      // a resource's own body
    }
    const simple = this.shape == "simplejwt";
    switch (url.pathname) {
      case simple ? SIMPLEJWT.login : "/auth/login":
        if (data.password != "pw") return json(401, { error: "invalid_credentials", retryable: false });
        this.revoked = undefined;
        this.rotated.clear();
        this.head = this.token("rt");
        return this.tokenResponse(this.head);
      case this.refreshPath:
        return this.refresh(request, data, cookie);
      case "/auth/logout":
      case "/auth/logout-all":
        this.revoked = "logout";
        this.jar.delete("keyturn_refresh");
        return json(200, { revoked_sessions: ["s1"] });
      default:
        return this.resource(request, url, body);
    }
  }

  private token(kind: "at" | "rt"): string {
    const iat = Math.floor(this.serverNow());
    const exp = Math.min(iat + (kind == "at" ? this.lifetime : this.refreshLifetime), Math.floor(this.absoluteEnd));
    const extra = kind == "at" ? this.claims : {};
    const jwt = `${b64url({ alg: "none", typ: kind + "+jwt" })}.${b64url({ sub: "alice", sid: "s1", iat, exp, jti: ++this.serial, ...extra })}.sig`;
    if (kind == "at") this.access.set(jwt, { exp: this.expiry() });
    return jwt;
  }

  private expiry(): number {
    return Math.min(this.serverNow() + this.lifetime, this.absoluteEnd);
  }

  private tokenResponse(refresh: string): Response {
    const access = this.token("at");
    if (this.shape == "simplejwt") return json(200, { access, refresh, ...this.extra });
    const body: Record<string, unknown> = {
      access_token: access,
      token_type: "Bearer",
      expires_in: this.expiry() - this.serverNow(),
      refresh_expires_in: this.refreshLifetime,
      session_id: "s1",
      server_time: this.serverNow(),
      ...this.extra,
    };
    if (this.cookieMode) this.jar.set("keyturn_refresh", refresh);
    else body.refresh_token = refresh;
    return json(200, body);
  }

  private error(code: string, status = 401): Response {
    if (this.shape == "simplejwt") return json(status, { detail: "Token is invalid", code: "token_not_valid" });
    return json(status, { error: code, error_description: code, retryable: false });
  }

  private async refresh(request: Request, data: Record<string, string>, cookie: string | undefined): Promise<Response> {
    const fault = this.refreshFaults.shift();
    if (fault == "network") throw new TypeError("fetch failed");
    if (fault && fault != "lost") return this.faulty(fault);
    let presented: string | undefined;
    if (this.cookieMode) {
      presented = cookie;
      if (presented && !request.headers.has("x-keyturn-csrf")) return this.error("invalid_request", 400);
    } else {
      presented = data[this.shape == "simplejwt" ? "refresh" : "refresh_token"];
    }
    if (!presented) return this.error("invalid_request", 400);
    this.presented.push(presented);
    if (this.revoked) return this.error("session_revoked");
    if (this.serverNow() > this.absoluteEnd) return this.error("session_expired");
    let answer: Response;
    if (presented == this.head) {
      this.rotated.set(presented, this.serverNow());
      this.head = this.token("rt");
      this.rotations++;
      answer = this.tokenResponse(this.head);
    } else if (this.grace && this.serverNow() - (this.rotated.get(presented) ?? -Infinity) <= this.grace) {
      answer = this.tokenResponse(this.head!); // replay: the same successor
    } else if (this.shape == "simplejwt") {
      return this.error("token_not_valid"); // blacklisted: refused, and the newer tokens stay good
    } else {
      this.revoked = "reuse";
      return this.error("refresh_token_reused");
    }
    if (this.refreshDelay) await abortable(this.refreshDelay, null);
    if (fault == "lost") {
      // done on the server, but the answer (and its Set-Cookie) never came
      if (this.cookieMode) this.jar.set("keyturn_refresh", presented);
      throw new TypeError("fetch failed");
    }
    return answer;
  }

  private async faulty(fault: { status: number; body?: unknown; headers?: Record<string, string>; delay?: number }) {
    if (fault.delay) await abortable(fault.delay, null);
    return json(fault.status, fault.body ?? {}, fault.headers);
  }

  private async resource(request: Request, url: URL, body: string): Promise<Response> {
    if (this.reach) await abortable(this.reach, null);
    const fault = this.resourceFaults.shift();
    if (fault == "network" || fault == "lost") throw new TypeError("fetch failed");
    if (fault) return this.faulty(fault);
    const token = /^(?:Bearer|DPoP) (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1] ?? "";
    const known = this.access.get(token);
    if (!known) return this.error("token_invalid");
    if (this.revoked) return this.error("token_revoked");
    if (this.serverNow() > known.exp) {
      if (this.shape == "simplejwt") return this.error("token_not_valid");
      return new Response(JSON.stringify({ error: "token_expired", retryable: false }), {
        status: 401,
        headers: {
          "www-authenticate": 'Bearer realm="keyturn", error="invalid_token", error_description="token_expired: The access token has expired."',
        },
      });
    }
    if (this.work) await abortable(this.work, null);
    return json(200, { ok: true, path: url.pathname, method: request.method, body, token });
  }
}

export interface Browser {
  server: FakeServer;
  storage: SharedStorage;
  locks: FakeLocks;
  Channel: ReturnType<typeof channels>["Channel"] | null;
  posted: unknown[];
  tabs: Session[];
  /** Another tab of this browser (a new page load). */
  tab(options?: SessionOptions): Session;
  /** Every tab's events target, for wake-up events. */
  targets: EventTarget[];
}

/** A browser on the fake token service: tabs share its cookie jar, storage, locks and channel. */
export function browser(
  server = new FakeServer(),
  {
    delay = 0,
    lag = 0,
    locks = true,
    channel = true,
    createSession = createBase,
  }: {
    delay?: number;
    lag?: number;
    locks?: boolean;
    channel?: boolean;
    /** What makes a tab's session (`@keyturn/client/dpop`'s, say). */
    createSession?: (options: SessionOptions) => Session;
  } = {},
): Browser {
  const net = channels(delay);
  const b: Browser = {
    server,
    storage: new SharedStorage(lag),
    locks: new FakeLocks(),
    Channel: channel ? net.Channel : null,
    posted: net.posted,
    tabs: [],
    targets: [],
    tab(options = {}) {
      const events = new EventTarget();
      const session = createSession({
        baseUrl: BASE,
        mode: server.cookieMode ? "cookie" : "body",
        fetch: server.fetch,
        storage: b.storage.view(events),
        locks: locks ? b.locks : null,
        channel: b.Channel,
        events,
        random: () => 0.5,
        ...options,
      });
      b.tabs.push(session);
      b.targets.push(events);
      return session;
    },
  };
  return b;
}

/** Lets fake time pass (timers, latency, channel delivery) and every promise settle. */
export const pass = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

/** Moves the clock (no timer runs: a machine asleep) to when `session` is due for a refresh. */
export function jumpToDue(session: Session, extra = 0): void {
  vi.setSystemTime(session.nextRefreshAt! - session.clockOffset + extra);
}

/** Lets time pass (timers run) until `session` is due for a refresh, and `extra` ms more. */
export const passUntilDue = (session: Session, extra = 100) =>
  pass(session.nextRefreshAt! - session.clockOffset - Date.now() + extra);

/** Settles `promise` after letting `ms` of fake time pass. */
export async function after<T>(promise: Promise<T>, ms = 1000): Promise<T> {
  const settled = promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await pass(ms);
  const outcome = await settled;
  if ("error" in outcome) throw outcome.error;
  return outcome.value;
}

/** Moves the clock (no timer runs) to when the access token has expired. */
export function jumpToExpiry(session: Session): void {
  vi.setSystemTime(session.expiresAt! - session.clockOffset + 1);
}

/** The access token a recorded request carried. */
export const bearer = (r: Recorded | undefined) => r?.headers.authorization?.replace(/^Bearer /, "");

/** Records a session's events in order. */
export function record(session: Session): string[] {
  const seen: string[] = [];
  session.on("refreshed", (e) => seen.push(`refreshed:${e.remote ? "remote" : "local"}`));
  session.on("degraded", (e) => seen.push(`degraded:${e.attempt}`));
  session.on("session_ended", (reason) => seen.push(`ended:${reason}`));
  session.on("state", (state) => seen.push(`state:${state}`));
  return seen;
}

/** Signs a fresh tab in; returns it once its tokens are there. */
export async function signedIn(b: Browser, options?: SessionOptions): Promise<Session> {
  const session = b.tab(options);
  const login = session.login("alice", "pw");
  await pass(b.server.latency);
  await login;
  return session;
}
