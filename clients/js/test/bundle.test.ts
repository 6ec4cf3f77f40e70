/**
 * The built bundles together, as a page loads them: `dpop.js` reaches the base bundle's session by the
 * minified names of its internal members (the axios adapter asks the session's `_dpop` hook), so the two
 * must be built with the same names. Built here by the build's own code (`scripts/bundles.mjs`, which
 * `npm run build` runs for dist/), into node_modules/.bundle-test; and once more with each bundle naming
 * its members on its own, to show that this check tells the difference.
 *
 * Real timers: WebCrypto settles on the real event loop. The fake service answers in 20 ms.
 */
import { calculateJwkThumbprint, decodeProtectedHeader, type JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildBundles } from "../scripts/bundles.mjs";
import { axiosTo } from "./axios-fake";
import { BASE, FakeServer } from "./fakes";

/** The part of a built bundle's API used here (the built files carry no types). */
interface BuiltSession {
  login(username: string, password: string): Promise<void>;
  getAccessToken(): Promise<string>;
  fetch(input: string, init?: RequestInit): Promise<Response>;
  close(): void;
}
interface Built {
  createSession(o: object): BuiltSession;
  attachAxios(session: BuiltSession, axios: unknown): () => void;
}

const OUT = "node_modules/.bundle-test";

/** Builds both bundles into `OUT/<name>` and loads them: `dpop.js` imports its `./keyturn.js`. */
async function built(name: string, shareNames: boolean): Promise<Built> {
  await buildBundles(`${OUT}/${name}`, { shareNames });
  const dir = new URL(`../${OUT}/${name}/`, import.meta.url);
  const dpop = (await import(/* @vite-ignore */ new URL("dpop.js", dir).href)) as Pick<Built, "createSession">;
  const base = (await import(/* @vite-ignore */ new URL("keyturn.js", dir).href)) as Pick<Built, "attachAxios">;
  return { createSession: dpop.createSession, attachAxios: base.attachAxios };
}

let shared: Built;
let separate: Built;
beforeAll(async () => {
  shared = await built("shared", true);
  separate = await built("separate", false);
}, 60_000);

const sessions: BuiltSession[] = [];
afterEach(() => {
  for (const session of sessions.splice(0)) session.close();
});

/** A session of `bundles` bound to its key, signed in at a service that binds access tokens to the login proof's key. */
async function boundSession(bundles: Built) {
  const server = new FakeServer();
  const send = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const request = new Request(input, init);
    const proof = request.headers.get("dpop");
    if (new URL(request.url).pathname == "/auth/login" && proof) {
      server.claims = { cnf: { jkt: await calculateJwkThumbprint(decodeProtectedHeader(proof).jwk as JWK) } };
    }
    return server.fetch(input, init);
  };
  const session = bundles.createSession({ baseUrl: BASE, fetch: send, storage: null, locks: null, channel: null, events: null, dpop: true, indexedDB: null });
  sessions.push(session);
  await session.login("alice", "pw");
  expect(server.claims).toHaveProperty("cnf.jkt"); // the login carried a proof: the access token is bound
  return { server, session, send };
}

describe("the built bundles, dpop.js over keyturn.js", () => {
  it("send a bound access token as DPoP through the axios adapter", async () => {
    const { server, session, send } = await boundSession(shared);
    const http = axiosTo(send);
    shared.attachAxios(session, http);
    expect((await http.get("/api/orders")).status).toBe(200);
    const call = server.calls("/api/orders")[0]!;
    expect(call.headers.authorization).toBe("DPoP " + (await session.getAccessToken()));
    expect(call.headers.dpop).toMatch(/^ey/);
  });

  it("send a bound access token as DPoP through session.fetch", async () => {
    const { server, session } = await boundSession(shared);
    expect((await session.fetch(BASE + "/api/orders")).status).toBe(200);
    const call = server.calls("/api/orders")[0]!;
    expect(call.headers.authorization).toBe("DPoP " + (await session.getAccessToken()));
    expect(call.headers.dpop).toMatch(/^ey/);
  });

  it("built without the base's names, the axios adapter sends the bound token as Bearer (what this check catches)", async () => {
    const { server, session, send } = await boundSession(separate);
    const http = axiosTo(send);
    separate.attachAxios(session, http);
    await http.get("/api/orders").catch(() => undefined);
    expect(server.calls("/api/orders")[0]?.headers.authorization).not.toMatch(/^DPoP /);
  });
});
