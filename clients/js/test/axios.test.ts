import type { AxiosError, AxiosInstance } from "axios";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { attachAxios } from "../src/axios";
import { SessionEndedError } from "../src/errors";
import { axiosTo } from "./axios-fake";
import { BASE, FakeServer, START, after, bearer, browser, signedIn, type Browser } from "./fakes";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

/** Real axios, its network the fake service. */
const api = (b: Browser): AxiosInstance => axiosTo(b.server.fetch);

const resources = (server: FakeServer) => server.requests.filter((r) => r.path.startsWith("/api/"));

describe("the axios adapter", () => {
  it("sends the current access token with every request", async () => {
    const b = browser();
    const session = await signedIn(b);
    const http = api(b);
    attachAxios(session, http);
    const res = await after(http.get("/api/orders"));
    expect(res.status).toBe(200);
    expect(bearer(resources(b.server)[0])).toBe(await session.getAccessToken());
  });

  it("gives the token to allowed origins only", async () => {
    const b = browser();
    const session = await signedIn(b, { allowedOrigins: ["https://reports.test"] });
    const http = api(b);
    attachAxios(session, http);
    await after(http.get("https://elsewhere.test/api/pixel", { validateStatus: () => true }));
    await after(http.get("https://reports.test/api/sums"));
    const [elsewhere, reports] = resources(b.server);
    expect(elsewhere?.url).toBe("https://elsewhere.test/api/pixel");
    expect(elsewhere?.headers.authorization).toBeUndefined();
    expect(bearer(reports)).toBe(await session.getAccessToken());
  });

  it("refreshes once and resends once on token_expired, and never loops", async () => {
    const b = browser();
    const session = await signedIn(b);
    const http = api(b);
    attachAxios(session, http);
    b.server.expireAccessTokens();
    expect((await after(http.get("/api/orders"))).status).toBe(200);
    expect(b.server.requests.map((r) => r.path).slice(1)).toEqual(["/api/orders", "/auth/refresh", "/api/orders"]);

    b.server.resourceFaults = Array(5).fill({ status: 401, body: { error: "token_expired" } });
    const error = (await after(http.post("/api/orders", "{}")).catch((e: unknown) => e)) as AxiosError;
    expect(error.response?.status).toBe(401);
    expect(resources(b.server)).toHaveLength(4);
    expect(b.server.refreshes).toBe(2);
  });

  it("retries GET after a network error and a 503, but not POST", async () => {
    const b = browser();
    const session = await signedIn(b);
    const http = api(b);
    attachAxios(session, http);
    b.server.resourceFaults = ["network", { status: 503 }];
    expect((await after(http.get("/api/orders"), 3000)).status).toBe(200);
    expect(resources(b.server)).toHaveLength(3);

    b.server.resourceFaults = ["network"];
    const error = (await after(http.post("/api/orders", "{}")).catch((e: unknown) => e)) as AxiosError;
    expect(error.code).toBe("ERR_NETWORK");
    expect(resources(b.server)).toHaveLength(4);
  });

  it("ends the session on token_revoked after one refresh and one resend, and then refuses to send", async () => {
    const b = browser();
    const session = await signedIn(b);
    const http = api(b);
    attachAxios(session, http);
    b.server.resourceFaults = Array(2).fill({ status: 401, body: JSON.stringify({ error: "token_revoked" }) });
    await after(http.get("/api/orders")).catch(() => {});
    expect(session.state).toBe("ended");
    expect(b.server.refreshes).toBe(1);
    const error = await after(http.get("/api/orders")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionEndedError);
    expect(resources(b.server)).toHaveLength(2);
  });

  it("detaches", async () => {
    const b = browser();
    const session = await signedIn(b);
    const http = api(b);
    const eject = attachAxios(session, http);
    eject();
    const error = (await after(http.get("/api/orders")).catch((e: unknown) => e)) as AxiosError;
    expect(error.response?.status).toBe(401);
    expect(resources(b.server)[0]?.headers.authorization).toBeUndefined();
  });
});
