import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LoginError, RefreshUnavailableError, SessionEndedError } from "../src/errors";
import { BASE, FakeServer, START, after, bearer, browser, jumpToDue, jumpToExpiry, pass, passUntilDue, record, signedIn } from "./fakes";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

const resources = (server: FakeServer) => server.requests.filter((r) => r.path.startsWith("/api/"));
const failure = (p: Promise<unknown>) => p.then(() => undefined, (error: unknown) => error);

describe("one refresh in flight", () => {
  it.each([
    ["due", true],
    ["expired", true],
    ["due", false],
    ["expired", false],
  ])("when the token is %s, many callers share one refresh and all go out with its token (Web Locks: %s)", async (when, locks) => {
    const b = browser(new FakeServer(), { locks });
    const session = await signedIn(b);
    const old = await session.getAccessToken();
    if (when == "due") jumpToDue(session);
    else jumpToExpiry(session);
    const tokens = Array.from({ length: 20 }, () => session.getAccessToken());
    const responses = Array.from({ length: 10 }, (_, i) => session.fetch(`${BASE}/api/item/${i}`));
    await pass(200);
    expect(b.server.refreshes).toBe(1);
    const fresh = new Set(await Promise.all(tokens));
    expect(fresh.size).toBe(1);
    expect(fresh.has(old)).toBe(false);
    for (const res of await Promise.all(responses)) expect(res.status).toBe(200);
    expect(resources(b.server).map(bearer)).toEqual(Array(10).fill([...fresh][0]));
  });

  it("a request that waited for a slow refresh does not go out with a token that became unusable meanwhile", async () => {
    // Due, with 1.5 s left: the request waits a moment (1 s) for the refresh, which takes 5 s (a busy
    // machine). Its token now has 0.5 s left, under the second a token must have to be sent (it would
    // reach a loaded service expired): the request waits on for the refresh and goes with its token.
    const b = browser();
    const session = await signedIn(b);
    const old = await session.getAccessToken();
    b.server.refreshDelay = 5000;
    const asked = session.expiresAt! - session.clockOffset - 1500;
    vi.setSystemTime(asked);
    const res = session.fetch(`${BASE}/api/item`);
    await pass(6000);
    expect((await res).status).toBe(200);
    expect(b.server.refreshes).toBe(1);
    const [sent] = resources(b.server);
    expect(bearer(sent)).not.toBe(old);
    expect(sent!.at).toBeGreaterThanOrEqual(asked + 5000); // after the refresh's answer
  });

  it("does not refresh a token that is neither due nor expired", async () => {
    const b = browser();
    const session = await signedIn(b);
    await Promise.all([session.getAccessToken(), session.getAccessToken()]);
    expect(b.server.refreshes).toBe(0);
  });
});

describe("the end of a session", () => {
  it.each(["refresh_token_reused", "session_revoked", "session_expired", "refresh_token_expired", "token_invalid", "token_revoked", "invalid_request"])(
    "%s from the refresh endpoint clears the tokens and emits session_ended once, for every waiting caller",
    async (code) => {
      const b = browser();
      const session = await signedIn(b);
      const seen = record(session);
      b.server.refreshFaults = [{ status: code == "invalid_request" ? 400 : 401, body: { error: code, retryable: false } }];
      jumpToExpiry(session);
      const errors = [
        ...Array.from({ length: 10 }, () => failure(session.getAccessToken())),
        ...Array.from({ length: 5 }, () => failure(session.fetch(`${BASE}/api/orders`))),
      ];
      await pass(200);
      for (const error of await Promise.all(errors)) {
        expect(error).toBeInstanceOf(SessionEndedError);
        expect((error as SessionEndedError).reason).toBe(code);
      }
      expect(seen).toEqual(["state:ended", `ended:${code}`]);
      expect(session.state).toBe("ended");
      expect(b.server.refreshes).toBe(1);
      expect(JSON.parse(b.storage.data.get("keyturn")!)).toEqual({ gen: 2, end: code });
      const sent = b.server.requests.length;
      expect(await failure(session.getAccessToken())).toBeInstanceOf(SessionEndedError);
      expect(b.server.requests.length).toBe(sent); // no call once it is over
      expect(seen.filter((e) => e.startsWith("ended"))).toHaveLength(1);
    },
  );

  it("logout ends it on the server and here, with the reason logout, once", async () => {
    const b = browser();
    const session = await signedIn(b);
    const token = await session.getAccessToken();
    const seen = record(session);
    await after(session.logout());
    await after(session.logout());
    const [call] = b.server.calls("/auth/logout");
    expect(call?.headers.authorization).toBe(`Bearer ${token}`);
    expect(call?.headers["x-keyturn-csrf"]).toBe("1");
    expect(call?.credentials).toBe("include");
    expect(b.server.revoked).toBe("logout");
    expect(b.server.jar.size).toBe(0);
    expect(seen).toEqual(["state:ended", "ended:logout"]);
    expect(((await failure(session.getAccessToken())) as SessionEndedError).reason).toBe("logout");
  });

  it("logout everywhere calls logout-all", async () => {
    const b = browser();
    const session = await signedIn(b);
    await after(session.logout({ everywhere: true }));
    expect(b.server.calls("/auth/logout-all")).toHaveLength(1);
  });

  it("logout ends the session here even when the service cannot be reached", async () => {
    const b = browser();
    const session = await signedIn(b, {
      fetch: (input, init) =>
        String(input).includes("logout") ? Promise.reject(new TypeError("offline")) : b.server.fetch(input, init),
    });
    const seen = record(session);
    await session.logout();
    expect(seen).toEqual(["state:ended", "ended:logout"]);
  });

  it("a failed login leaves the tab signed out", async () => {
    const b = browser();
    const session = b.tab();
    const attempt = failure(session.login("alice", "wrong"));
    await pass(100);
    const error = (await attempt) as LoginError;
    expect(error).toBeInstanceOf(LoginError);
    expect([error.status, error.code]).toEqual([401, "invalid_credentials"]);
    expect(session.state).toBe("signed_out");
    expect(((await failure(session.getAccessToken())) as SessionEndedError).reason).toBe("signed_out");
  });
});

describe("temporary failures", () => {
  it("degrade the session, back off with jitter and Retry-After, keep the valid token in use, and recover", async () => {
    const b = browser();
    const session = await signedIn(b);
    const old = await session.getAccessToken();
    const seen = record(session);
    b.server.refreshFaults = [{ status: 503 }, { status: 502 }, { status: 429, headers: { "retry-after": "7" } }];
    jumpToDue(session);
    const res = session.fetch(`${BASE}/api/orders`);
    await pass(100);
    expect((await res).status).toBe(200);
    expect(bearer(resources(b.server)[0])).toBe(old); // still valid: used while the refresh fails
    expect(session.state).toBe("degraded");
    await pass(300); // backoff 1: 0.5 s × 0.5 (random)
    await pass(600); // backoff 2: 1 s × 0.5
    expect(seen).toEqual(["state:degraded", "degraded:1", "degraded:2", "degraded:3"]);
    const at429 = b.server.calls("/auth/refresh")[2]!.at;
    await pass(at429 + 7000 - Date.now() - 100);
    expect(b.server.refreshes).toBe(3); // Retry-After: 7 s, obeyed
    await pass(300);
    expect(b.server.refreshes).toBe(4);
    expect(session.state).toBe("active");
    expect(seen.slice(4)).toEqual(["state:active", "refreshed:local"]);
    expect(await session.getAccessToken()).not.toBe(old);
  });

  it("never end the session: with no usable token a caller gets RefreshUnavailableError after maxWait, and the session recovers", async () => {
    const b = browser();
    const session = await signedIn(b);
    const seen = record(session);
    b.server.refreshFaults = Array(1000).fill({ status: 503 });
    jumpToExpiry(session);
    const error = failure(session.getAccessToken());
    await pass(70_000);
    expect(await error).toBeInstanceOf(RefreshUnavailableError);
    expect(session.state).toBe("degraded");
    expect(seen.some((e) => e.startsWith("ended"))).toBe(false);
    expect(b.server.refreshes).toBeLessThan(15); // backed off, not hammered
    b.server.refreshFaults = [];
    await pass(31_000);
    expect(session.state).toBe("active");
  });

  it("after an outage, the requests held back go out at once and none fails, however long a busy service takes to answer them all", async () => {
    // 5 s access tokens; the browser's 6 connections to the service; 400 ms of the service's time per
    // request: the 240 requests held back during the outage take 16 s to answer, over three token lifetimes.
    // Those the service reaches after their token expired are sent again with a newer one, each time one
    // came meanwhile.
    const b = browser();
    b.server.lifetime = 5;
    const session = await signedIn(b);
    b.server.refreshFaults = Array(1000).fill({ status: 503 });
    jumpToExpiry(session);
    const held: Promise<Response>[] = [];
    for (let i = 0; i < 240; i++) {
      held.push(session.fetch(`${BASE}/api/item/${i}`));
      await pass(50);
    }
    b.server.refreshFaults = [];
    b.server.connections = 6;
    b.server.work = 400;
    await pass(60_000);
    const statuses = (await Promise.all(held)).map((res) => res.status);
    expect(statuses.filter((status) => status != 200)).toEqual([]);
    expect(session.state).toBe("active");
    expect(b.server.calls("/api/item/239").length).toBeGreaterThan(0);
  });

  it("near the session's absolute end, refreshes that bring no later expiry back off instead of repeating at once", async () => {
    const b = browser();
    b.server.absoluteEnd = b.server.serverNow() + 200;
    const session = await signedIn(b);
    const seen = record(session);
    await pass(300_000);
    expect(b.server.refreshes).toBeGreaterThan(3);
    expect(b.server.refreshes).toBeLessThanOrEqual(7); // 10 without the backoff
    expect(seen.slice(-2)).toEqual(["state:ended", "ended:session_expired"]);
    expect(seen.some((e) => e.includes("degraded"))).toBe(false); // nothing failed
  });

  it.each([true, false])("a lost refresh answer is retried with the same refresh token (cookie mode %s)", async (cookie) => {
    const b = browser(new FakeServer(cookie));
    const session = await signedIn(b);
    b.server.refreshFaults = ["lost"];
    jumpToDue(session);
    const token = session.getAccessToken();
    await pass(1000);
    await token;
    expect(b.server.refreshes).toBe(2);
    expect(b.server.rotations).toBe(1); // the second was the grace period's replay
    expect(b.server.revoked).toBeUndefined();
    expect(session.state).toBe("active");
    if (!cookie) {
      const [first, second] = b.server.calls("/auth/refresh");
      expect(second?.body).toBe(first?.body);
    }
  });

  it("adds the token only for this page's origin, the token service's and allowedOrigins", async () => {
    const b = browser();
    const session = await signedIn(b, { allowedOrigins: ["https://reports.test"] });
    const token = await session.getAccessToken();
    for (const url of [`${BASE}/api/a`, "https://reports.test/api/b", "https://elsewhere.test/api/c", "http://reports.test/api/d"]) {
      await after(session.fetch(url));
    }
    expect(resources(b.server).map((r) => [r.url, bearer(r)])).toEqual([
      [`${BASE}/api/a`, token],
      ["https://reports.test/api/b", token],
      ["https://elsewhere.test/api/c", undefined],
      ["http://reports.test/api/d", undefined], // another scheme, another origin
    ]);
  });

  it.each([true, false])("a lost refresh answer then an outage: retries stay inside the grace period (cookie mode %s)", async (cookie) => {
    // With the plain backoff (0.25, 0.5, 1, 2, 4, 8, 15, 15 s here) the tenth attempt would come 46 s after
    // the lost answer, past the 30 s grace period: the old refresh token would count as reused.
    const b = browser(new FakeServer(cookie));
    const session = await signedIn(b);
    b.server.refreshFaults = ["lost", ...Array(8).fill("network")];
    const retries: number[] = [];
    session.on("degraded", (e) => retries.push(e.retryIn));
    await passUntilDue(session);
    await pass(30_000);
    expect(retries).toHaveLength(9);
    expect(Math.max(...retries)).toBeLessThanOrEqual(2000);
    expect(b.server.refreshes).toBe(10);
    expect(b.server.rotations).toBe(1); // the tenth was the grace period's replay
    expect(b.server.revoked).toBeUndefined();
    expect(session.state).toBe("active");
  });

  it("retries idempotent requests after network errors and 5xx, at most `retries` times, and never POST", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.resourceFaults = ["network", { status: 503 }];
    const ok = session.fetch(`${BASE}/api/orders`);
    await pass(2000);
    expect((await ok).status).toBe(200);
    expect(resources(b.server)).toHaveLength(3);

    b.server.resourceFaults = Array(5).fill({ status: 502 });
    const tired = session.fetch(`${BASE}/api/orders`, { method: "PUT", body: "x" });
    await pass(5000);
    expect((await tired).status).toBe(502);
    expect(resources(b.server)).toHaveLength(6); // one try and two retries

    b.server.resourceFaults = ["network"];
    const post = failure(session.fetch(`${BASE}/api/orders`, { method: "POST", body: "x" }));
    await pass(2000);
    expect(await post).toBeInstanceOf(TypeError);
    expect(resources(b.server)).toHaveLength(7);
  });

  it("never retries a request the application aborted", async () => {
    const b = browser();
    const session = await signedIn(b);
    const abort = new AbortController();
    const res = failure(session.fetch(`${BASE}/api/orders`, { signal: abort.signal }));
    await pass(1);
    abort.abort();
    await pass(2000);
    expect((await res as Error).name).toBe("AbortError");
    expect(resources(b.server)).toHaveLength(1);
  });
});

describe("start-up", () => {
  it("ends a stored session whose refresh token has expired, before any request", async () => {
    const b = browser(new FakeServer(false));
    (await signedIn(b)).close();
    vi.setSystemTime(Date.now() + 15 * 86_400_000);
    const sent = b.server.requests.length;
    const session = b.tab();
    const seen = record(session);
    await session.ready;
    expect(seen).toEqual(["state:active", "state:ended", "ended:refresh_token_expired"]);
    expect(((await failure(session.getAccessToken())) as SessionEndedError).reason).toBe("refresh_token_expired");
    expect(b.server.requests.length).toBe(sent);
  });

  it("refreshes a stored session that is due before the first request", async () => {
    const b = browser(new FakeServer(false));
    (await signedIn(b)).close();
    vi.setSystemTime(Date.now() + 700_000);
    const session = b.tab();
    const order: string[] = [];
    session.on("refreshed", () => order.push("refreshed"));
    void session.ready.then(() => order.push("ready"));
    await pass(100);
    expect(order).toEqual(["refreshed", "ready"]); // at start-up, before the first request
    const res = session.fetch(`${BASE}/api/orders`);
    await pass(100);
    expect((await res).status).toBe(200);
    expect(b.server.requests.map((r) => r.path)).toEqual(["/auth/login", "/auth/refresh", "/api/orders"]);
  });

  it("resumes a stored session that is not due without a call", async () => {
    const b = browser(new FakeServer(false));
    const first = await signedIn(b);
    const token = await first.getAccessToken();
    first.close();
    const session = b.tab();
    expect(await session.getAccessToken()).toBe(token);
    expect(b.server.requests).toHaveLength(1);
  });

  it.each([
    ["not JSON", "{oops"],
    ["not a record", "[1,2]"],
    ["a pair without its refresh token", JSON.stringify({ gen: 1, at: "a.b.c", exp: START + 1e6, life: 9e5, off: 0 })],
    ["a record without expiry", JSON.stringify({ gen: 1, at: "a.b.c", rt: "r" })],
  ])("treats storage holding %s as no session", async (_, stored) => {
    const b = browser(new FakeServer(false));
    b.storage.data.set("keyturn", stored);
    const session = b.tab();
    const seen = record(session);
    await session.ready;
    expect(session.state).toBe("signed_out");
    expect(seen).toEqual([]);
    expect(((await failure(session.getAccessToken())) as SessionEndedError).reason).toBe("signed_out");
  });

  it("starts signed out, quietly, after a session that ended", async () => {
    const b = browser();
    const first = await signedIn(b);
    await after(first.logout());
    const session = b.tab();
    const seen = record(session);
    await session.ready;
    expect([session.state, seen.length]).toEqual(["signed_out", 0]);
  });
});

describe("event handlers", () => {
  it("never run while the lock is held", async () => {
    const b = browser();
    const session = await signedIn(b);
    const held: boolean[] = [];
    session.on("refreshed", () => held.push(b.locks.isHeld()));
    session.on("degraded", () => held.push(b.locks.isHeld()));
    session.on("session_ended", () => held.push(b.locks.isHeld()));
    session.on("state", () => held.push(b.locks.isHeld()));
    b.server.refreshFaults = [{ status: 503 }];
    await passUntilDue(session, 2000); // degraded, then refreshed
    b.server.refreshFaults = [{ status: 401, body: { error: "session_revoked" } }];
    await passUntilDue(session, 2000);
    expect(held.length).toBeGreaterThanOrEqual(6);
    expect(held.every((h) => !h)).toBe(true);
  });

  it("that throw do not break the session, and can be removed", async () => {
    const b = browser();
    const session = await signedIn(b);
    const report = vi.spyOn(console, "error").mockImplementation(() => {});
    const off = session.on("refreshed", () => {
      throw new Error("the application's bug");
    });
    let calls = 0;
    session.on("refreshed", () => calls++);
    await passUntilDue(session);
    expect([session.state, calls, report.mock.calls.length]).toEqual(["active", 1, 1]);
    off();
    await passUntilDue(session);
    expect([calls, report.mock.calls.length]).toEqual([2, 1]);
    report.mockRestore();
  });
});
