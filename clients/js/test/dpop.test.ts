/**
 * `@keyturn/client/dpop`: the proofs verify (checked with `jose`, not with this package's code), the key is
 * non-extractable and one per origin (IndexedDB: `fake-indexeddb`), the service's nonce is used and a
 * `use_dpop_nonce` answer sent once more, `htu` leaves the query out, bound access tokens go as `DPoP`
 * (through `session.fetch` and through the axios adapter).
 *
 * Real timers here: WebCrypto and IndexedDB settle on the real event loop, which fake time does not drive.
 * The fake service answers in 20 ms; a refresh is asked for by an expired access token at the resource.
 */
import { IDBFactory } from "fake-indexeddb";
import { EmbeddedJWK, base64url, calculateJwkThumbprint, jwtVerify, type JWK } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { attachAxios } from "../src/axios";
import { createSession, dpopKey, type DpopSessionOptions } from "../src/dpop";
import type { Session } from "../src/session";
import { axiosTo } from "./axios-fake";
import { BASE, FakeServer, browser, type Browser } from "./fakes";

interface Seen {
  path: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  jkt: string;
  /** Server time (s) when it arrived. */
  at: number;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/**
 * The DPoP side of a token service in front of `FakeServer`: checks every proof (signature by its embedded
 * key, `typ`, `alg`, `htm`, `htu`, `iat`, a new `jti`, `ath`, the nonce when it asks for one), binds the
 * session to the login proof's key and refuses a refresh without a proof by it (`refresh_token_bound`).
 */
class DpopService {
  seen: Seen[] = [];
  refused: string[] = [];
  jkt: string | undefined;
  /** When set, proofs must carry this nonce; answers carry it in `DPoP-Nonce`. */
  nonce: string | undefined;
  /** Seconds a proof's `iat` may be off the service's time. */
  window = 60;
  /** Seconds a proof's `iat` may be ahead of the service's time. */
  ahead = 60;
  bindAccess = false;
  #jtis = new Set<string>();

  constructor(readonly server: FakeServer) {}

  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const [scheme, token] = (request.headers.get("authorization") ?? "").split(" ");
    const login = url.pathname == "/auth/login";
    const refresh = url.pathname == "/auth/refresh" || url.pathname.startsWith("/auth/logout");
    if (login || refresh || scheme == "DPoP") {
      const proof = request.headers.get("dpop");
      const checked = proof ? await this.check(proof, request, url, scheme == "DPoP" ? token : undefined) : "no proof";
      if (typeof checked == "string" && checked.startsWith("nonce")) {
        if (scheme != "DPoP") return json(400, { error: "use_dpop_nonce" }, { "dpop-nonce": this.nonce! });
        // A resource asks with a 401 and the DPoP challenge (RFC 9449 section 9), as Keyturn's /auth/me does.
        const challenge = `DPoP realm="keyturn", error="use_dpop_nonce", error_description="use_dpop_nonce: retry", algs="ES256 EdDSA"`;
        return json(401, { error: "use_dpop_nonce" }, { "dpop-nonce": this.nonce!, "www-authenticate": challenge });
      }
      if (refresh && this.jkt && checked != this.jkt) {
        this.refused.push("refresh_token_bound");
        return json(401, { error: "refresh_token_bound" }, { "www-authenticate": "DPoP" });
      }
      if (checked.length != 43) {
        this.refused.push(checked);
        return json(400, { error: "invalid_dpop_proof", error_description: checked });
      }
      if (login) {
        this.jkt = checked;
        if (this.bindAccess) this.server.claims = { cnf: { jkt: checked } };
      }
    }
    const res = await this.server.fetch(input, init);
    if (!this.nonce) return res;
    const headers = new Headers(res.headers);
    headers.set("dpop-nonce", this.nonce);
    return new Response(await res.text(), { status: res.status, headers });
  };

  /** The proof's key's thumbprint, or what is wrong with it. */
  async check(proof: string, request: Request, url: URL, token?: string): Promise<string> {
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: ["ES256"] });
      const jwk = protectedHeader.jwk as JWK;
      const jkt = await calculateJwkThumbprint(jwk);
      const now = this.server.serverNow();
      this.seen.push({ path: url.pathname, header: protectedHeader as Record<string, unknown>, claims: payload, jkt, at: now });
      if ("d" in jwk) return "a private key in the proof";
      if (payload.htm != request.method) return "htm";
      if (payload.htu != url.origin + url.pathname) return "htu";
      if (typeof payload.iat != "number" || payload.iat > now + Math.min(this.ahead, this.window) || payload.iat < now - this.window) {
        return "iat";
      }
      if (typeof payload.jti != "string" || this.#jtis.has(payload.jti)) return "jti";
      this.#jtis.add(payload.jti);
      if (this.nonce && payload.nonce != this.nonce) return "nonce";
      const ath = token && base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token))));
      if (payload.ath != ath) return "ath";
      return jkt;
    } catch (error) {
      return String(error);
    }
  }
}

const sessions: Session[] = [];
afterEach(() => {
  for (const session of sessions.splice(0)) session.close();
});

/** A browser whose tabs bind their sessions, keeping the key in `idb` (`null`: in each tab's memory). */
function dpopBrowser(idb: IDBFactory | null = new IDBFactory(), server = new FakeServer()) {
  const service = new DpopService(server);
  const make = (o: DpopSessionOptions) => {
    const session = createSession({ ...o, fetch: service.fetch, dpop: true, indexedDB: idb });
    sessions.push(session);
    return session;
  };
  return { b: browser(server, { createSession: make }), service, idb };
}

async function signedIn(b: Browser): Promise<Session> {
  const session = b.tab();
  await session.login("alice", "pw");
  return session;
}

/** A refresh, asked for by the resource refusing the expired access token. */
async function refreshed(b: Browser, session: Session, path = "/api/orders"): Promise<Response> {
  b.server.expireAccessTokens();
  return session.fetch(BASE + path);
}

describe("proofs", () => {
  it("login and refresh carry proofs that verify, by one key, for their method and URL", async () => {
    const { b, service } = dpopBrowser();
    const session = await signedIn(b);
    expect((await refreshed(b, session)).status).toBe(200);
    expect(service.refused).toEqual([]);
    expect(service.seen.map((s) => s.path)).toEqual(["/auth/login", "/auth/refresh"]);
    for (const { header, claims } of service.seen) {
      expect(header).toMatchObject({ typ: "dpop+jwt", alg: "ES256", jwk: { kty: "EC", crv: "P-256" } });
      expect(Object.keys(header.jwk as object).sort()).toEqual(["crv", "kty", "x", "y"]);
      expect(claims).toMatchObject({ htm: "POST" });
      expect(claims.jti).toMatch(/^[\w-]{22}$/);
      expect(claims).not.toHaveProperty("ath"); // Bearer access tokens: no proof at the resource
    }
    expect(new Set(service.seen.map((s) => s.jkt)).size).toBe(1);
    expect(b.server.calls("/api/orders").map((r) => r.headers.dpop)).toEqual([undefined, undefined]);
  });

  it("logout carries a proof by the session's key: a bound session is ended only with one", async () => {
    const { b, service } = dpopBrowser();
    const session = await signedIn(b);
    await session.logout();
    expect(service.refused).toEqual([]);
    expect(service.seen.map((s) => s.path)).toEqual(["/auth/login", "/auth/logout"]);
    expect(new Set(service.seen.map((s) => s.jkt)).size).toBe(1);
    expect(b.server.revoked).toBe("logout");
  });

  it("a refresh's iat is the service's time as the session measured it", async () => {
    const server = new FakeServer();
    server.skew = 120_000; // the service's clock is two minutes ahead of this machine's
    const { b, service } = dpopBrowser(new IDBFactory(), server);
    service.window = Infinity; // the login's proof cannot know the offset yet
    const session = await signedIn(b);
    await refreshed(b, session);
    const [login, refresh] = service.seen;
    expect(login!.at - (login!.claims.iat as number)).toBeGreaterThan(100);
    expect(Math.abs(refresh!.at - (refresh!.claims.iat as number))).toBeLessThan(2);
  });

  it("a proof's iat is never ahead of the service's clock, however the measuring call's time was split", async () => {
    // Both clocks agree, but the login spends 3 s getting to the service (queued behind other requests, a
    // busy machine; the proof's signing and a nonce round trip count too) and its answer comes straight
    // back: the midpoint of the call puts the service's time 1.5 s ahead of what it is. A service that
    // allows no iat ahead of its clock (Keyturn with LEEWAY=0 before its 5 s allowance) refused the next
    // proof as from the future.
    const server = new FakeServer();
    const { b, service } = dpopBrowser(new IDBFactory(), server);
    service.ahead = 0;
    let shift = 0; // both clocks jump together: the true offset stays 0
    const forward = service.fetch;
    service.fetch = async (input, init) => {
      if (String(input).endsWith("/auth/login")) server.skew = shift += 3000;
      return forward(input, init);
    };
    const session = b.tab({ now: () => Date.now() + shift });
    await session.login("alice", "pw");
    expect(session.clockOffset).toBeGreaterThan(1000); // the midpoint, for scheduling: biased ahead
    expect(session.minClockOffset).toBeLessThanOrEqual(0);
    const other = b.tab({ now: () => Date.now() + shift });
    await other.ready;
    expect(other.minClockOffset).toBe(session.minClockOffset); // stored with the tokens: every tab alike
    expect((await refreshed(b, session)).status).toBe(200);
    expect((await refreshed(b, session)).status).toBe(200);
    expect(service.refused).toEqual([]);
    for (const { claims, at } of service.seen) expect(claims.iat as number).toBeLessThanOrEqual(at);
  });

  it("the clock offset is measured on the call that brought the tokens, after its proof and the nonce round trip", async () => {
    // Both clocks agree; the login's first call, without the service's nonce, takes 3 s to be answered
    // use_dpop_nonce, the second comes straight back. Timed from before the first, the midpoint put the
    // service's time 1.5 s ahead, and every refresh was scheduled 1.5 s early.
    const server = new FakeServer();
    const { b, service } = dpopBrowser(new IDBFactory(), server);
    service.nonce = "n1";
    let shift = 0; // both clocks jump together: the true offset stays 0
    const forward = service.fetch;
    service.fetch = async (input, init) => {
      if (String(input).endsWith("/auth/login") && shift == 0) server.skew = shift += 3000;
      return forward(input, init);
    };
    const session = b.tab({ now: () => Date.now() + shift });
    await session.login("alice", "pw");
    expect(service.seen.map((s) => s.path)).toEqual(["/auth/login", "/auth/login"]);
    expect(Math.abs(session.clockOffset)).toBeLessThan(200);
  });

  it("without the option, no proof and no key", async () => {
    const idb = new IDBFactory();
    const server = new FakeServer();
    const session = createSession({ baseUrl: BASE, fetch: server.fetch, storage: null, locks: null, channel: null, events: null, indexedDB: idb });
    sessions.push(session);
    await session.login("alice", "pw");
    expect(server.calls("/auth/login")[0]!.headers.dpop).toBeUndefined();
    expect(await idb.databases()).toEqual([]);
  });
});

describe("the key", () => {
  it("is made non-extractable and kept in IndexedDB: a new page load signs with the same key", async () => {
    const idb = new IDBFactory();
    const pair = await dpopKey("keyturn", idb);
    expect(pair.privateKey.extractable).toBe(false);
    await expect(crypto.subtle.exportKey("jwk", pair.privateKey)).rejects.toThrow();
    await expect(crypto.subtle.exportKey("pkcs8", pair.privateKey)).rejects.toThrow();
    const again = await dpopKey("keyturn", idb);
    const thumbprint = async (p: CryptoKeyPair) => calculateJwkThumbprint((await crypto.subtle.exportKey("jwk", p.publicKey)) as JWK);
    expect(await thumbprint(again)).toBe(await thumbprint(pair));
    expect(again.privateKey.extractable).toBe(false);
    // another service's session (another name) has its own key
    expect(await thumbprint(await dpopKey("other", idb))).not.toBe(await thumbprint(pair));
  });

  it("tabs starting together agree on one key", async () => {
    const idb = new IDBFactory();
    const pairs = await Promise.all(Array.from({ length: 8 }, () => dpopKey("keyturn", idb)));
    const prints = await Promise.all(pairs.map(async (p) => calculateJwkThumbprint((await crypto.subtle.exportKey("jwk", p.publicKey)) as JWK)));
    expect(new Set(prints).size).toBe(1);
  });

  it("is shared by the tabs: a tab that did not log in refreshes the session with it", async () => {
    const { b, service } = dpopBrowser();
    await signedIn(b);
    const other = b.tab();
    await other.ready;
    expect((await refreshed(b, other)).status).toBe(200);
    expect(service.refused).toEqual([]);
    expect(service.seen.map((s) => s.path)).toEqual(["/auth/login", "/auth/refresh"]);
    expect(new Set(service.seen.map((s) => s.jkt))).toEqual(new Set([service.jkt]));
  });

  it("lost (IndexedDB cleared), the session's refresh is refused as bound and the session ends", async () => {
    const server = new FakeServer();
    const first = dpopBrowser(new IDBFactory(), server);
    await signedIn(first.b);
    const ended: string[] = [];
    // the same storage and cookie jar, a fresh IndexedDB: the key is gone
    const service = first.service;
    const session = createSession({
      baseUrl: BASE,
      fetch: service.fetch,
      storage: first.b.storage.view(new EventTarget()),
      locks: null,
      channel: null,
      events: null,
      dpop: true,
      indexedDB: new IDBFactory(),
    });
    sessions.push(session);
    session.on("session_ended", (reason) => ended.push(reason));
    await session.ready;
    await refreshed(first.b, session).catch(() => undefined);
    expect(service.refused).toEqual(["refresh_token_bound"]);
    expect(ended).toEqual(["refresh_token_bound"]);
    expect(server.rotations).toBe(0);
  });

  it("without IndexedDB, lives in the tab's memory", async () => {
    const { b, service } = dpopBrowser(null);
    const session = await signedIn(b);
    expect((await refreshed(b, session)).status).toBe(200);
    expect(service.refused).toEqual([]);
  });
});

describe("nonces", () => {
  it("a use_dpop_nonce answer is sent once more with the nonce; later proofs carry it at once", async () => {
    const { b, service } = dpopBrowser();
    service.nonce = "n-1";
    const session = await signedIn(b);
    expect(b.server.calls("/auth/login")).toHaveLength(1); // the first was refused before the service
    expect(service.seen.map((s) => s.claims.nonce)).toEqual([undefined, "n-1"]);
    expect((await refreshed(b, session)).status).toBe(200);
    expect(service.seen.map((s) => s.claims.nonce)).toEqual([undefined, "n-1", "n-1"]);
    service.nonce = "n-2"; // the service's nonce moved on
    expect((await refreshed(b, session)).status).toBe(200);
    expect(service.seen.slice(3).map((s) => s.claims.nonce)).toEqual(["n-1", "n-2"]);
    expect(service.refused).toEqual([]);
  });

  it("a resource's 401 use_dpop_nonce (WWW-Authenticate: DPoP) is sent once more with the nonce, no refresh", async () => {
    const { b, service } = dpopBrowser();
    service.bindAccess = true;
    const session = await signedIn(b);
    service.nonce = "n-r"; // the resource asks for a nonce the session has not seen
    const res = await session.fetch(BASE + "/api/orders");
    expect(res.status).toBe(200);
    expect(b.server.refreshes).toBe(0);
    expect(b.server.calls("/api/orders")).toHaveLength(1); // the first was refused before the API
    expect(service.seen.slice(-2).map((s) => [s.path, s.claims.nonce])).toEqual([
      ["/api/orders", undefined],
      ["/api/orders", "n-r"],
    ]);
  });

  it("only once: a second use_dpop_nonce is the answer", async () => {
    let calls = 0;
    const stubborn = async () => (calls++, json(400, { error: "use_dpop_nonce" }, { "dpop-nonce": `n-${calls}` }));
    const dpop = createSession({ baseUrl: BASE, fetch: stubborn, storage: null, locks: null, channel: null, events: null, dpop: true, indexedDB: null });
    sessions.push(dpop);
    await expect(dpop.login("alice", "pw")).rejects.toMatchObject({ status: 400, code: "use_dpop_nonce" });
    expect(calls).toBe(2);
  });
});

describe("bound access tokens", () => {
  it("go to the API as DPoP with a proof carrying ath, for the URL without its query and fragment", async () => {
    const { b, service } = dpopBrowser();
    service.bindAccess = true;
    const session = await signedIn(b);
    const res = await session.fetch(BASE + "/api/orders?page=2&sort=new#top", { method: "PUT", body: "x" });
    expect(res.status).toBe(200);
    expect(service.refused).toEqual([]);
    const call = b.server.calls("/api/orders")[0]!;
    expect(call.headers.authorization).toMatch(/^DPoP ey/);
    const proof = service.seen.at(-1)!;
    expect(proof.claims).toMatchObject({ htm: "PUT", htu: BASE + "/api/orders" });
    expect(proof.claims.ath).toMatch(/^[\w-]{43}$/);
    expect(proof.jkt).toBe(service.jkt);
  });

  it("go through the axios adapter as DPoP with a proof carrying ath, never as Bearer", async () => {
    const { b, service } = dpopBrowser();
    service.bindAccess = true;
    const session = await signedIn(b);
    const http = axiosTo(service.fetch);
    attachAxios(session, http);
    const res = await http.put("/api/orders?page=2#top", "x");
    expect(res.status).toBe(200);
    expect(service.refused).toEqual([]);
    const call = b.server.calls("/api/orders")[0]!;
    const token = await session.getAccessToken();
    expect(call.headers.authorization).toBe("DPoP " + token);
    const proof = service.seen.at(-1)!;
    expect(proof.path).toBe("/api/orders");
    expect(proof.claims).toMatchObject({ htm: "PUT", htu: BASE + "/api/orders" });
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
    expect(proof.claims.ath).toBe(base64url.encode(new Uint8Array(digest)));
    expect(proof.jkt).toBe(service.jkt);
  });

  it("through the axios adapter, a refused bound token is refreshed and resent with a new proof", async () => {
    const { b, service } = dpopBrowser();
    service.bindAccess = true;
    const session = await signedIn(b);
    const http = axiosTo(service.fetch);
    attachAxios(session, http);
    b.server.expireAccessTokens();
    expect((await http.get("/api/orders")).status).toBe(200);
    expect(service.refused).toEqual([]);
    const calls = b.server.calls("/api/orders");
    expect(calls).toHaveLength(2);
    expect(calls.map((c) => c.headers.authorization?.split(" ")[0])).toEqual(["DPoP", "DPoP"]);
    const proofs = service.seen.filter((seen) => seen.path == "/api/orders");
    expect(new Set(proofs.map((seen) => seen.claims.jti)).size).toBe(2);
    expect(proofs[1]!.claims.ath).not.toBe(proofs[0]!.claims.ath);
  });

  it("an access token not bound to the key goes through the axios adapter as Bearer, without a proof", async () => {
    const { b, service } = dpopBrowser();
    const session = await signedIn(b);
    const http = axiosTo(service.fetch);
    attachAxios(session, http);
    expect((await http.get("/api/orders")).status).toBe(200);
    const call = b.server.calls("/api/orders").at(-1)!;
    expect(call.headers.authorization).toBe("Bearer " + (await session.getAccessToken()));
    expect(call.headers.dpop).toBeUndefined();
  });

  it("an access token bound to another key, or none, goes untouched", async () => {
    const { b, service } = dpopBrowser();
    service.bindAccess = true;
    const session = await signedIn(b);
    b.server.claims = { cnf: { jkt: "A".repeat(43) } };
    expect((await refreshed(b, session)).status).toBe(200);
    const calls = b.server.calls("/api/orders");
    expect(calls.at(-1)!.headers.authorization).toMatch(/^Bearer /);
    expect(calls.at(-1)!.headers.dpop).toBeUndefined();
  });
});
