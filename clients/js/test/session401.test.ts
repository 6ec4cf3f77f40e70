// The session's answer to a 401 on a request: when it refreshes, resends, and ends (session.test.ts has the rest).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SessionEndedError } from "../src/errors";
import { SIMPLEJWT } from "../src/endpoints";
import { BASE, FakeServer, START, after, bearer, browser, jumpToDue, pass, record, signedIn } from "./fakes";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

const resources = (server: FakeServer) => server.requests.filter((r) => r.path.startsWith("/api/"));

describe("401 on a request", () => {
  it("token_expired for the current token: one refresh, one resend", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.expireAccessTokens(); // the resource server thinks it expired early
    const res = session.fetch(`${BASE}/api/orders`);
    await pass(200);
    expect((await res).status).toBe(200);
    expect(b.server.requests.map((r) => r.path)).toEqual(["/auth/login", "/api/orders", "/auth/refresh", "/api/orders"]);
    const [first, second] = resources(b.server);
    expect(bearer(second)).not.toBe(bearer(first));
  });

  it("reads the code from WWW-Authenticate when the body has none", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.resourceFaults = [
      { status: 401, body: "no json here", headers: { "www-authenticate": 'Bearer error_description="token_expired: expired"' } },
    ];
    const res = session.fetch(`${BASE}/api/orders`);
    await pass(200);
    expect((await res).status).toBe(200);
    expect(b.server.refreshes).toBe(1);
  });

  it("reads the code from a DPoP challenge alone (RFC 9449 7.1: a token presented as DPoP is refused so)", async () => {
    const b = browser();
    const session = await signedIn(b);
    const challenge = 'DPoP realm="keyturn", error="invalid_token", error_description="token_expired: expired", algs="ES256 EdDSA"';
    b.server.resourceFaults = [{ status: 401, body: "no json here", headers: { "www-authenticate": challenge } }];
    const res = session.fetch(`${BASE}/api/orders`);
    await pass(200);
    expect((await res).status).toBe(200);
    expect(b.server.refreshes).toBe(1);
  });

  it("never loops: a resource server that keeps answering token_expired gets one refresh and one resend", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.resourceFaults = Array(10).fill({ status: 401, body: { error: "token_expired" } });
    const res = session.fetch(`${BASE}/api/orders`, { method: "POST", body: "{}" });
    await pass(1000);
    expect((await res).status).toBe(401);
    expect(resources(b.server)).toHaveLength(2);
    expect(b.server.refreshes).toBe(1);
  });

  it("never loops: a service that reaches every request after its token expired gets it after one refresh and `retries` more", async () => {
    const b = browser();
    b.server.lifetime = 5;
    const session = await signedIn(b);
    b.server.reach = 6000; // every token has expired when the service reads it
    const res = session.fetch(`${BASE}/api/item`);
    await pass(200_000);
    expect((await res).status).toBe(401);
    const sent = resources(b.server);
    expect(sent).toHaveLength(4); // the first sending, one after the refresh, and two (`retries`) more
    expect(new Set(sent.map(bearer)).size).toBe(sent.length); // each time with a newer token
    expect(session.state).not.toBe("ended");
  });

  it("for an older token (another request refreshed meanwhile): resent with the current one, no refresh", async () => {
    const b = browser();
    const session = await signedIn(b);
    const old = await session.getAccessToken();
    b.server.resourceFaults = [{ status: 401, body: { error: "token_expired" }, delay: 100 }];
    const res = session.fetch(`${BASE}/api/slow`);
    await pass(1); // sent with the old token
    jumpToDue(session);
    const fresh = session.getAccessToken();
    await pass(300);
    expect((await res).status).toBe(200);
    expect(b.server.refreshes).toBe(1);
    expect(resources(b.server).map(bearer)).toEqual([old, await fresh]);
  });

  it("a resend for an older token first, then token_invalid twice: the refresh is still free, and the session ends (retries: 0)", async () => {
    const b = browser();
    const session = await signedIn(b, { retries: 0 });
    const old = await session.getAccessToken();
    b.server.resourceFaults = [
      { status: 401, body: { error: "token_expired" }, delay: 100 },
      { status: 401, body: { error: "token_invalid" } },
      { status: 401, body: { error: "token_invalid" } },
    ];
    const res = session.fetch(`${BASE}/api/slow`);
    await pass(1); // sent with the old token
    jumpToDue(session);
    const fresh = session.getAccessToken();
    await pass(1000);
    expect((await res).status).toBe(401);
    expect(resources(b.server).map(bearer).slice(0, 2)).toEqual([old, await fresh]);
    expect(resources(b.server)).toHaveLength(3);
    expect(b.server.refreshes).toBe(2); // the due one, and the one token_invalid asked for
    expect(session.state).toBe("ended");
  });

  it("SimpleJWT: token_not_valid for a token the service reached after it expired is refreshed and sent again, `retries` times at most", async () => {
    const b = browser(new FakeServer(false, "simplejwt"));
    b.server.lifetime = 5;
    const session = await signedIn(b, { mode: "body", endpoints: SIMPLEJWT });
    b.server.reach = 6000; // every token has expired when the service reads it
    const res = session.fetch(`${BASE}/api/item`);
    await pass(200_000);
    expect((await res).status).toBe(401);
    expect(b.server.calls("/api/item")).toHaveLength(4); // the first sending, one after the refresh, and two more
    expect(session.state).not.toBe("ended");
  });

  it("token_revoked for the current token: one refresh and one resend; refused again, the session ends once and the 401 goes to the application", async () => {
    const b = browser();
    const session = await signedIn(b);
    const seen = record(session);
    b.server.resourceFaults = Array(10).fill({ status: 401, body: { error: "token_revoked" } });
    const responses = Array.from({ length: 5 }, () => session.fetch(`${BASE}/api/orders`));
    await pass(500);
    for (const res of await Promise.all(responses)) expect(res.status).toBe(401);
    expect(seen.filter((e) => e.startsWith("ended"))).toEqual(["ended:token_revoked"]);
    expect(b.server.refreshes).toBe(1);
    expect(resources(b.server)).toHaveLength(10);
    // given up here, so told to the service (issue 19): one logout, by the refresh token
    const [logout, ...more] = b.server.calls("/auth/logout");
    expect([logout?.credentials, logout?.headers["x-keyturn-csrf"], more]).toEqual(["include", "1", []]); // the cookie names it
  });

  it("token_invalid for the current token (a tampered token, say): one refresh and one resend, and the session goes on", async () => {
    const b = browser();
    const session = await signedIn(b);
    const seen = record(session);
    b.server.resourceFaults = [{ status: 401, body: { error: "token_invalid" } }];
    const res = await after(session.fetch(`${BASE}/api/orders`));
    expect(res.status).toBe(200);
    expect(b.server.refreshes).toBe(1);
    const [first, second] = resources(b.server).map(bearer);
    expect(second).not.toBe(first);
    expect([session.state, seen.filter((e) => e.startsWith("ended"))]).toEqual(["active", []]);
  });

  it("a 401 answered after the session ended (a logout meanwhile): the request rejects with the end's reason, no refresh", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.resourceFaults = [{ status: 401, body: { error: "token_revoked" }, delay: 100 }];
    const res = session.fetch(`${BASE}/api/slow`).catch((e: unknown) => e);
    await pass(1);
    await after(session.logout(), 50);
    expect(await after(res, 500)).toMatchObject({ name: "SessionEndedError", reason: "logout" });
    expect(b.server.refreshes).toBe(0);
    expect(resources(b.server)).toHaveLength(1);
  });

  it("a revoked session: the refresh a revoked token asks for ends it with the service's reason", async () => {
    const b = browser();
    const session = await signedIn(b);
    b.server.revoked = "admin";
    const error = await after(session.fetch(`${BASE}/api/orders`)).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "SessionEndedError", reason: "session_revoked" });
    expect(b.server.refreshes).toBe(1);
    expect([session.state, resources(b.server).length]).toEqual(["ended", 1]);
    expect(b.server.calls("/auth/logout")).toEqual([]); // ended by the service: nothing to tell it
  });
});
