import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER, dueAt, timerDelay } from "../src/schedule";
import { BASE, FakeServer, START, browser, pass, signedIn } from "./fakes";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

describe("due time", () => {
  const exp = START + 900_000;

  it("is min(margin, lifetime / 3) ahead of expiry, plus up to `jitter` of it", () => {
    expect(dueAt(exp, 900_000, 300_000, 0.1, () => 0)).toBe(exp - 300_000);
    expect(dueAt(exp, 900_000, 300_000, 0.1, () => 1)).toBe(exp - 330_000);
    expect(dueAt(exp, 600_000, 300_000, 0.1, () => 0)).toBe(exp - 200_000); // a short token: a third of it
    expect(dueAt(exp, 60_000, 300_000, 0, () => 0.7)).toBe(exp - 20_000);
  });

  it("keeps its jitter within bounds, and spreads clients out", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const due = dueAt(exp, 900_000, 300_000, 0.1, Math.random);
      expect(due).toBeLessThanOrEqual(exp - 300_000);
      expect(due).toBeGreaterThanOrEqual(exp - 330_000);
      seen.add(Math.round(due / 1000));
    }
    expect(seen.size).toBeGreaterThan(20);
  });
});

describe("timers", () => {
  it("are clamped: never negative, never over a minute (so never near 2^31-1 ms)", () => {
    expect(timerDelay(-5)).toBe(0);
    expect(timerDelay(NaN)).toBe(0);
    expect(timerDelay(1234)).toBe(1234);
    expect(timerDelay(2 ** 31)).toBe(MAX_TIMER);
    expect(timerDelay(30 * 86_400_000)).toBe(MAX_TIMER);
    expect(MAX_TIMER).toBeLessThan(2 ** 31 - 1);
  });

  it("of a 30-day token stay under a minute, and the refresh still comes on time", async () => {
    const server = new FakeServer();
    server.lifetime = 30 * 86_400;
    const spy = vi.spyOn(globalThis, "setTimeout");
    const b = browser(server);
    const session = await signedIn(b);
    await pass(3_600_000); // an overflowing timer would have fired at once
    expect(server.refreshes).toBe(0);
    const delays = spy.mock.calls.map((call) => call[1] ?? 0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER);
    await pass(session.nextRefreshAt! - session.clockOffset - Date.now() + MAX_TIMER);
    expect(server.refreshes).toBe(1);
    spy.mockRestore();
  });
});

describe("proactive refresh in server time", () => {
  it.each([
    ["ahead", 600_000],
    ["behind", -600_000],
    ["in step", 0],
  ])("happens on time with the server's clock 10 min %s", async (_, skew) => {
    const server = new FakeServer();
    server.skew = skew;
    const b = browser(server);
    const session = await signedIn(b);
    expect(Math.abs(session.clockOffset - skew)).toBeLessThan(1); // measured at the midpoint of the call
    // the token lives 900 s from the answer; due 300 s × 1.05 (the jitter, random 0.5) before that
    const loggedIn = Date.now() - server.latency / 2;
    await pass(loggedIn + 585_000 - Date.now() - 1000);
    expect(server.refreshes).toBe(0);
    await pass(2000);
    expect(server.refreshes).toBe(1);
    await pass(server.latency);
    expect(session.generation).toBe(2);
    expect(session.expiresAt! - (Date.now() + skew)).toBeGreaterThan(898_000);
  });

  it("catches up on wake-up events after the timers slept", async () => {
    for (const type of ["visibilitychange", "focus", "online", "pageshow"]) {
      const server = new FakeServer();
      const b = browser(server);
      const session = await signedIn(b);
      vi.setSystemTime(Date.now() + 600_000); // a laptop asleep: the clock moved, no timer ran
      await pass(1);
      expect(server.refreshes).toBe(0);
      b.targets[0]!.dispatchEvent(new Event(type));
      await pass(1);
      expect(server.refreshes).toBe(1);
      await pass(server.latency);
      expect(session.state).toBe("active");
      expect(session.expiresAt! - Date.now()).toBeGreaterThan(898_000);
      session.close();
    }
  });

  it("checks before each request, so a request never waits for the timer", async () => {
    const server = new FakeServer();
    const b = browser(server);
    const session = await signedIn(b);
    vi.setSystemTime(Date.now() + 899_500); // asleep until just before expiry: the token is unusable
    const res = session.fetch(BASE + "/api/orders");
    await pass(2 * server.latency);
    expect((await res).status).toBe(200);
    expect(server.requests.map((r) => r.path)).toEqual(["/auth/login", "/auth/refresh", "/api/orders"]);
  });
});
