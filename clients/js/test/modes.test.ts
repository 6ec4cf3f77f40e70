import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SIMPLEJWT } from "../src/endpoints";
import { SessionEndedError } from "../src/errors";
import { BASE, FakeServer, START, after, bearer, browser, jumpToExpiry, pass, passUntilDue, record, signedIn } from "./fakes";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

describe("cookie mode (the default)", () => {
  it("logs in, refreshes and logs out with credentials and the CSRF header; refresh body {}", async () => {
    const b = browser(new FakeServer(true));
    const session = await signedIn(b, { mode: undefined });
    await passUntilDue(session);
    await after(session.logout());
    for (const call of b.server.requests) {
      expect(call.credentials).toBe("include");
      expect(call.headers["x-keyturn-csrf"]).toBe("1");
      expect(call.headers["content-type"]).toBe("application/json");
    }
    expect(JSON.parse(b.server.calls("/auth/login")[0]!.body)).toEqual({ username: "alice", password: "pw" });
    const [refresh] = b.server.calls("/auth/refresh");
    expect(refresh?.body).toBe("{}");
    expect(refresh?.headers.authorization).toBeUndefined();
  });

  it("never lets the refresh token reach JavaScript: not in requests, storage or messages, even if the service sends it", async () => {
    const b = browser(new FakeServer(true));
    b.server.extra = { refresh_token: "LEAKED-REFRESH-TOKEN" }; // a service not in cookie mode, say
    const session = await signedIn(b);
    const other = b.tab();
    await after(other.getAccessToken());
    const cookies = new Set([b.server.jar.get("keyturn_refresh")!]);
    for (let i = 0; i < 3; i++) {
      await passUntilDue(session);
      cookies.add(b.server.jar.get("keyturn_refresh")!);
    }
    expect(cookies.size).toBe(4);
    const seenByJs = JSON.stringify([b.server.requests.map((r) => [r.body, r.headers]), [...b.storage.data], b.posted]);
    for (const secret of [...cookies, "LEAKED-REFRESH-TOKEN"]) expect(seenByJs).not.toContain(secret);
    expect(seenByJs).not.toContain("refresh_token");
  });

  it("keeps the access token out of storage: only the generation and times are stored", async () => {
    const b = browser(new FakeServer(true));
    const session = await signedIn(b);
    const token = await session.getAccessToken();
    const stored = JSON.parse(b.storage.data.get("keyturn")!);
    expect(Object.keys(stored).sort()).toEqual(["exp", "gen", "life", "lo", "off", "rexp", "sid"]);
    expect(b.storage.data.get("keyturn")).not.toContain(token);
  });

  it("ends the session when the cookie is gone (invalid_request)", async () => {
    const b = browser(new FakeServer(true));
    const session = await signedIn(b);
    const seen = record(session);
    b.server.jar.clear(); // cleared by the user, or expired in the browser
    jumpToExpiry(session);
    const error = (await after(session.getAccessToken().catch((e: unknown) => e))) as SessionEndedError;
    expect(error.reason).toBe("invalid_request");
    expect(seen).toEqual(["state:ended", "ended:invalid_request"]);
  });
});

describe("body mode", () => {
  it("sends the refresh token in the body, without the CSRF header, and keeps the pair in storage", async () => {
    const b = browser(new FakeServer(false));
    const session = await signedIn(b);
    const first = JSON.parse(b.storage.data.get("keyturn")!);
    expect(first.rt).toBeTruthy();
    expect(first.at).toBe(await session.getAccessToken());
    await passUntilDue(session);
    const [refresh] = b.server.calls("/auth/refresh");
    expect(JSON.parse(refresh!.body)).toEqual({ refresh_token: first.rt });
    expect(refresh?.headers["x-keyturn-csrf"]).toBeUndefined();
    expect(refresh?.credentials).toBe("same-origin");
    const second = JSON.parse(b.storage.data.get("keyturn")!);
    expect(second.rt).not.toBe(first.rt);
    expect(second.at).toBe(await session.getAccessToken());
  });

  it("logs out naming the session by access token and refresh token", async () => {
    const b = browser(new FakeServer(false));
    const session = await signedIn(b);
    const { at, rt } = JSON.parse(b.storage.data.get("keyturn")!);
    await after(session.logout());
    const [call] = b.server.calls("/auth/logout");
    expect(call?.headers.authorization).toBe(`Bearer ${at}`);
    expect(JSON.parse(call!.body)).toEqual({ refresh_token: rt });
    expect(JSON.parse(b.storage.data.get("keyturn")!)).toEqual({ gen: 2, end: "logout" });
  });

  it("refuses a login answer without a refresh token", async () => {
    const b = browser(new FakeServer(true)); // a cookie-mode service
    const session = b.tab({ mode: "body" });
    await expect(after(session.login("alice", "pw"))).rejects.toThrow(/refresh token/);
    expect(session.state).toBe("signed_out");
  });
});

describe("simplejwt shape", () => {
  const simplejwt = () => {
    const server = new FakeServer(false, "simplejwt");
    return browser(server);
  };
  const options = { endpoints: SIMPLEJWT, mode: "body" } as const;

  it("logs in at /api/token/ and refreshes at /api/token/refresh/ with {refresh}", async () => {
    const b = simplejwt();
    const session = await signedIn(b, options);
    const login = b.server.calls("/api/token/")[0]!;
    expect(JSON.parse(login.body)).toEqual({ username: "alice", password: "pw" });
    const { rt } = JSON.parse(b.storage.data.get("keyturn")!);
    await passUntilDue(session);
    expect(JSON.parse(b.server.calls("/api/token/refresh/")[0]!.body)).toEqual({ refresh: rt });
    expect(session.state).toBe("active");
  });

  it("reads expiry and clock offset from the access token's exp and iat", async () => {
    const b = simplejwt();
    b.server.skew = -600_000;
    const session = await signedIn(b, options);
    expect(Math.abs(session.clockOffset + 600_000)).toBeLessThan(1000); // iat has whole seconds
    expect(Math.abs(session.expiresAt! - (Date.now() - 600_000 + 900_000))).toBeLessThan(1000);
  });

  it("keeps the old refresh token when the service does not rotate", async () => {
    const b = simplejwt();
    const session = await signedIn(b, {
      ...options,
      fetch: async (input, init) => {
        const res = await b.server.fetch(input, init);
        if (!String(input).endsWith("/refresh/")) return res;
        const { access } = (await res.json()) as { access: string };
        return Response.json({ access });
      },
    });
    const { rt } = JSON.parse(b.storage.data.get("keyturn")!);
    await passUntilDue(session);
    const stored = JSON.parse(b.storage.data.get("keyturn")!);
    expect([stored.rt, stored.gen]).toEqual([rt, 2]);
  });

  it("treats token_not_valid on a request as refresh-and-resend once", async () => {
    const b = simplejwt();
    const session = await signedIn(b, options);
    b.server.expireAccessTokens();
    const res = await after(session.fetch(`${BASE}/api/orders`));
    expect(res.status).toBe(200);
    const calls = b.server.requests.filter((r) => r.path == "/api/orders");
    expect(calls).toHaveLength(2);
    expect(bearer(calls[0])).not.toBe(bearer(calls[1]));
  });

  it("ends the session on token_not_valid from the refresh endpoint", async () => {
    const b = simplejwt();
    const session = await signedIn(b, options);
    const seen = record(session);
    b.server.refreshFaults = [{ status: 401, body: { detail: "Token is blacklisted", code: "token_not_valid" } }];
    await passUntilDue(session);
    expect(seen).toEqual(["state:ended", "ended:token_not_valid"]);
  });

  it("does not end the session on Keyturn's codes, which simplejwt never sends", async () => {
    const b = simplejwt();
    const session = await signedIn(b, options);
    b.server.refreshFaults = [{ status: 401, body: { error: "session_revoked" } }];
    await passUntilDue(session);
    expect(session.state).toBe("degraded");
    await pass(2000);
    expect(session.state).toBe("active");
  });
});
