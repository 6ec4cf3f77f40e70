import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SIMPLEJWT } from "../src/endpoints";
import { SessionEndedError } from "../src/errors";
import { BASE, FakeServer, START, after, browser, jumpToDue, jumpToExpiry, pass, passUntilDue, record, signedIn, type Browser } from "./fakes";
import type { Session } from "../src/session";

beforeEach(() => void vi.useFakeTimers({ now: START }));
afterEach(() => void vi.useRealTimers());

const modes = [
  ["cookie", true],
  ["body", false],
] as const;

/** A signed-in tab and a second tab that has taken the session on. */
async function twoTabs(b: Browser): Promise<[Session, Session]> {
  const first = await signedIn(b);
  const second = b.tab();
  await after(second.ready, 2000);
  return [first, second];
}

/** Both tabs ask for a token at once when the first is due; the tokens they got, once 2 s have passed. */
async function bothWhenDue(first: Session, second: Session): Promise<string[]> {
  jumpToDue(first);
  const tokens = [first.getAccessToken(), second.getAccessToken()];
  await pass(2000);
  return Promise.all(tokens);
}

describe("tabs of one browser", () => {
  it("a new tab takes the access token from the others instead of refreshing (cookie mode)", async () => {
    const b = browser();
    const first = await signedIn(b);
    const second = b.tab();
    expect(await after(second.getAccessToken())).toBe(await first.getAccessToken());
    expect(b.server.refreshes).toBe(0);
    expect(second.generation).toBe(first.generation);
  });

  it.each(modes)("refresh once for all of them, and the others receive the tokens (%s mode)", async (_, cookie) => {
    const b = browser(new FakeServer(cookie));
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    const seen = record(second);
    jumpToDue(first);
    const tokens = [
      ...Array.from({ length: 5 }, () => first.getAccessToken()),
      ...Array.from({ length: 5 }, () => second.getAccessToken()),
    ];
    const responses = [first.fetch(`${BASE}/api/a`), second.fetch(`${BASE}/api/b`)];
    await pass(2000);
    expect(b.server.refreshes).toBe(1);
    expect(new Set(await Promise.all(tokens)).size).toBe(1);
    for (const res of await Promise.all(responses)) expect(res.status).toBe(200);
    expect(seen).toEqual(["refreshed:remote"]);
    expect([first.generation, second.generation]).toEqual([2, 2]);
  });

  it("an idle tab receives another tab's refresh at once (the broadcast)", async () => {
    const b = browser();
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    await passUntilDue(first);
    expect(b.server.refreshes).toBe(1);
    const fresh = await first.getAccessToken();
    b.server.requests.length = 0;
    expect(await second.getAccessToken()).toBe(fresh);
    expect(second.expiresAt).toBe(first.expiresAt);
  });

  it("a tab that takes the lock before the new tokens arrived waits for them, instead of rotating the cookie again", async () => {
    const b = browser(new FakeServer(true), { delay: 50 }); // the channel delivers after the lock is handed over
    const [first, second] = await twoTabs(b);
    const [a, c] = await bothWhenDue(first, second);
    expect(b.server.refreshes).toBe(1);
    expect(b.server.rotations).toBe(1);
    expect(c).toBe(a);
  });

  it("a tab that waited for the lock listens for the holder's tokens when storage lags too (Chromium)", async () => {
    // Storage reaches the second tab after the lock does, and the broadcast later still: only the fact that
    // the lock was held when the tab asked for it says another tab is refreshing.
    const b = browser(new FakeServer(true), { delay: 60, lag: 150 });
    const [first, second] = await twoTabs(b);
    const [a, c] = await bothWhenDue(first, second);
    expect(b.server.rotations).toBe(1);
    expect(c).toBe(a);
    expect(b.posted).toContainEqual({ ask: 1 });
  });

  it.each(["simplejwt", "keyturn"] as const)(
    "the tab that takes the lock next never presents the refresh token the holder just rotated, though its storage and the channel lag (body mode, %s)",
    async (shape) => {
      // Chromium: the holder stores the new pair and releases the lock; the next tab takes it a moment later
      // and reads its own copy of localStorage, which the holder's write has not reached yet. Presenting the
      // pair it holds would be a refused (blacklisted) token at SimpleJWT, a replay at Keyturn.
      const b = browser(new FakeServer(false, shape), { delay: 60, lag: 150 });
      const options = shape == "simplejwt" ? ({ endpoints: SIMPLEJWT } as const) : {};
      const first = await signedIn(b, options);
      const second = b.tab(options);
      await after(second.ready, 2000);
      const seen = [record(first), record(second)];
      const [a, c] = await bothWhenDue(first, second);
      expect(b.server.presented).toHaveLength(1);
      expect(b.server.rotations).toBe(1);
      expect(c).toBe(a);
      expect([first.state, second.state]).toEqual(["active", "active"]);
      expect(seen.flat().filter((e) => e.startsWith("ended"))).toEqual([]);
    },
  );

  it("a refresh refused for good while another tab holds newer tokens does not end the session (body mode, SimpleJWT, no Web Locks)", async () => {
    // Without Web Locks both tabs refresh with the same token: SimpleJWT rotates it for the first and
    // refuses it (blacklisted) to the second, whose session lives on with the first tab's pair.
    const b = browser(new FakeServer(false, "simplejwt"), { locks: false, delay: 60, lag: 150 });
    const options = { endpoints: SIMPLEJWT } as const;
    const first = await signedIn(b, options);
    const second = b.tab(options);
    await after(second.ready, 2000);
    const seen = [record(first), record(second)];
    const [a, c] = await bothWhenDue(first, second);
    expect(b.server.presented).toHaveLength(2);
    expect(b.server.rotations).toBe(1);
    expect(c).toBe(a);
    expect([first.state, second.state]).toEqual(["active", "active"]);
    expect(seen.flat().filter((e) => e.startsWith("ended"))).toEqual([]);
  });

  it.each(modes)("a tab that takes the lock when no tab is ahead of it refreshes at once, without waiting for the others (%s mode)", async (_, cookie) => {
    // The holder's refresh failed (503): it published no newer generation, so the next holder does not wait.
    const b = browser(new FakeServer(cookie), { delay: 60, lag: 150 });
    const [first, second] = await twoTabs(b);
    b.server.refreshFaults = [{ status: 503 }];
    const posted = b.posted.length;
    await bothWhenDue(first, second);
    const [failed, next] = b.server.calls(b.server.refreshPath);
    expect(b.server.rotations).toBe(1);
    expect(next!.at - failed!.at).toBeLessThanOrEqual(b.server.latency + 5); // the lock's hand-over, no wait
    expect(b.posted.slice(posted)).not.toContainEqual({ ask: 1 });
  });

  it("without the lock manager's query, the same lagging storage and broadcast cost a second rotation, never the session", async () => {
    // What the published generation prevents: the tab that takes the lock cannot tell a refresh happened,
    // so it rotates the cookie the first tab just set (an ordinary rotation, no reuse).
    const b = browser(new FakeServer(true), { delay: 60, lag: 150 });
    b.locks.queryable = false;
    const [first, second] = await twoTabs(b);
    await bothWhenDue(first, second);
    expect(b.server.rotations).toBe(2);
    expect(b.server.revoked).toBeUndefined();
    expect([first.state, second.state]).toEqual(["active", "active"]);
  });

  it("without shared storage, a tab that waited for the lock still takes the holder's late broadcast", async () => {
    const b = browser(new FakeServer(true), { delay: 50 });
    const first = b.tab({ storage: null });
    const second = b.tab({ storage: null });
    await after(first.login("alice", "pw"));
    expect(second.state).toBe("active");
    const [a, c] = await bothWhenDue(first, second);
    expect(c).toBe(a);
    expect(b.server.rotations).toBe(1);
  });

  it("a tab asleep past the grace period takes the rotated pair from storage, not its own (body mode)", async () => {
    const b = browser(new FakeServer(false), { channel: false });
    const first = await signedIn(b);
    // no channel, no storage events: only the re-read after taking the lock can tell this tab
    const sleeper = b.tab({ storage: b.storage.view(new EventTarget()), events: null });
    await after(sleeper.ready);
    sleeper.close(); // its timers stop, as a frozen tab's do
    await passUntilDue(first);
    expect(b.server.rotations).toBe(1);
    vi.setSystemTime(Date.now() + 120_000); // well past the 30 s grace period
    const token = await after(sleeper.getAccessToken());
    expect(b.server.revoked).toBeUndefined(); // presenting its old refresh token would have been a reuse
    expect(b.server.refreshes).toBe(1);
    expect(token).toBe(await first.getAccessToken());
  });

  it.each(modes)("an end in one tab ends every tab, once each (%s mode)", async (_, cookie) => {
    const b = browser(new FakeServer(cookie));
    const first = await signedIn(b);
    const second = b.tab();
    const third = b.tab();
    await after(Promise.all([second.ready, third.ready]));
    const seen = [record(first), record(second), record(third)];
    b.server.refreshFaults = [{ status: 401, body: { error: "refresh_token_reused" } }];
    jumpToExpiry(first);
    const errors = [first, second, third].map((tab) => tab.getAccessToken().catch((e: unknown) => e));
    await pass(2000);
    for (const error of await Promise.all(errors)) expect((error as SessionEndedError).reason).toBe("refresh_token_reused");
    for (const events of seen) expect(events).toEqual(["state:ended", "ended:refresh_token_reused"]);
    expect(b.server.refreshes).toBe(1);
  });

  it("logout in one tab ends the others with the reason logout; a login in one signs the others in", async () => {
    const b = browser();
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    const seen = record(second);
    await after(first.logout());
    expect(seen).toEqual(["state:ended", "ended:logout"]);
    await after(first.login("alice", "pw"));
    expect(seen.slice(2)).toEqual(["state:active", "refreshed:remote"]);
    expect(await second.getAccessToken()).toBe(await first.getAccessToken());
  });

  it("a tab alone refreshes with the cookie at start-up (cookie mode), after asking the others", async () => {
    const b = browser();
    const first = await signedIn(b);
    first.close(); // the only other tab is gone
    const second = b.tab();
    const token = await after(second.getAccessToken());
    expect(b.server.refreshes).toBe(1);
    expect(b.posted.at(-2)).toEqual({ ask: 1 });
    const res = await after(second.fetch(`${BASE}/api/orders`));
    expect([res.status, token.length > 0]).toEqual([200, true]);
  });

  it("a session ended while a refresh was in flight stays ended", async () => {
    const b = browser(new FakeServer(true), { locks: false });
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    const seen = [record(first), record(second)];
    b.server.refreshDelay = 200; // the service rotates, then its answer takes a while
    jumpToDue(second);
    const token = second.getAccessToken().catch((e: unknown) => e); // its refresh leaves now
    await pass(15);
    await after(first.logout(), 50); // revoked, and told to every tab, before the refresh answer arrives
    expect(b.server.rotations).toBe(1);
    await pass(5000);
    await token;
    for (const events of seen) expect(events.filter((e) => e.startsWith("ended") || e.startsWith("refreshed"))).toEqual(["ended:logout"]);
    expect([first.state, second.state]).toEqual(["ended", "ended"]);
    expect(JSON.parse(b.storage.data.get("keyturn")!)).toMatchObject({ end: "logout" });
  });

  it("a logout in another tab, known from storage before its message, wins over a refresh answer", async () => {
    const b = browser(new FakeServer(true), { locks: false });
    // no storage events for this tab: only the re-read when the answer comes can tell it in time
    const second = b.tab({ storage: b.storage.view(new EventTarget()) });
    const first = await signedIn(b);
    await pass(100);
    second.close(); // nor its timer or channel
    const seen = [record(first), record(second)];
    b.server.refreshDelay = 200;
    jumpToDue(second);
    void second.getAccessToken().catch(() => {});
    await pass(15); // the service has rotated; the answer is on its way
    await after(first.logout(), 50);
    await pass(5000);
    for (const events of seen) expect(events).toEqual(["state:ended", "ended:logout"]);
    expect(JSON.parse(b.storage.data.get("keyturn")!)).toEqual({ gen: 2, end: "logout" });
  });

  it("when an end and a refresh tie (no shared storage), the end wins in every tab", async () => {
    const b = browser(new FakeServer(true), { locks: false, delay: 50 });
    const first = b.tab({ storage: null });
    const second = b.tab({ storage: null });
    await after(first.login("alice", "pw"));
    const seen = [record(first), record(second)];
    jumpToDue(second);
    void second.getAccessToken().catch(() => {}); // leaves now, answered in 20 ms
    await pass(1);
    await after(first.logout(), 5000); // ends 20 ms later, told 50 ms after that
    expect(seen[1]).toEqual(["refreshed:local", "state:ended", "ended:logout"]);
    expect(seen[0]).toEqual(["state:ended", "ended:logout"]);
    expect([first.state, second.state]).toEqual(["ended", "ended"]);
  });

  it("a tab that was never signed in reports no end", async () => {
    const b = browser();
    const session = b.tab();
    const seen = record(session);
    new b.Channel!("keyturn").postMessage({ gen: 5, end: "logout" });
    await pass(100);
    expect([session.state, seen]).toEqual(["signed_out", []]);
  });
});

describe("fallbacks", () => {
  it.each(modes)("without Web Locks, concurrent refreshes converge on one chain (%s mode)", async (_, cookie) => {
    const b = browser(new FakeServer(cookie), { locks: false });
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    jumpToDue(first);
    const tokens = [first.getAccessToken(), second.getAccessToken()];
    await pass(2000);
    await Promise.all(tokens);
    expect(b.server.refreshes).toBe(2);
    expect(b.server.rotations).toBe(1); // the other was the grace period's replay
    expect(b.server.revoked).toBeUndefined();
    await passUntilDue(first, 5000);
    await passUntilDue(second, 5000);
    expect([first.state, second.state, b.server.revoked]).toEqual(["active", "active", undefined]);
  });

  it("without BroadcastChannel, the storage event carries the new pair (body mode)", async () => {
    const b = browser(new FakeServer(false), { channel: false });
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    const seen = record(second);
    await passUntilDue(first);
    expect(seen).toEqual(["refreshed:remote"]);
    expect(await second.getAccessToken()).toBe(await first.getAccessToken());
    expect(b.server.refreshes).toBe(1);
  });

  it("without BroadcastChannel, the storage event carries the end (cookie mode)", async () => {
    const b = browser(new FakeServer(true), { channel: false });
    const first = await signedIn(b);
    const second = b.tab();
    await after(second.ready);
    const seen = record(second);
    await after(first.logout());
    expect(seen).toEqual(["state:ended", "ended:logout"]);
  });

  it("a lock held too long (a hung tab) is given up after 15 s; a valid token is used meanwhile", async () => {
    const b = browser();
    const session = await signedIn(b);
    const old = await session.getAccessToken();
    void b.locks.request("keyturn", {}, () => new Promise(() => {})); // never released
    jumpToDue(session);
    const early = session.getAccessToken();
    await pass(1100);
    expect(await early).toBe(old); // did not wait for the lock
    expect(b.server.refreshes).toBe(0);
    await pass(15_000);
    expect(b.server.refreshes).toBe(1);
    expect(await session.getAccessToken()).not.toBe(old);
  });
});
