/**
 * `@keyturn/client/dpop`: sessions bound to a key the page cannot export (DPoP, RFC 9449). Its own entry
 * point, built to its own file, so pages without DPoP do not carry it.
 *
 * `createSession({ dpop: true, ... })` makes a P-256 key with WebCrypto (`extractable: false`) once per
 * origin and session name, keeps it in IndexedDB (every tab of the origin uses the same key: IndexedDB
 * stores the `CryptoKey` itself, never its private part in any readable form), and signs a proof
 * (`typ: dpop+jwt`, ES256, the public `jwk`, `htm`, `htu` without query and fragment, `iat` in the
 * service's time by the least clock offset the last login or refresh allows, so never ahead of the
 * service's clock, a random `jti`, the service's `nonce` once it gave one) for every login and refresh.
 * An access token bound to the key (its `cnf.jkt` claim: the service answered `token_type: DPoP`) is
 * sent by `session.fetch` and the axios adapter as `Authorization: DPoP` with a proof carrying `ath`
 * (`boundHeaders`, the one place that decides it).
 * A `use_dpop_nonce` answer is sent once more with the `DPoP-Nonce` it carried.
 *
 * The base session is not changed: the proofs are added by the `fetch` the session is given, a wrapper
 * around the application's, and, for the axios adapter (which sends through axios), by the session's
 * `_dpop` hook. A refresh refused with `refresh_token_bound` (this origin lost its key) ends
 * the session.
 */
import { createSession as createBase, KEYTURN, type Session, type SessionOptions } from "./index.js";
import type { TimedInit } from "./tokens.js";

export interface DpopSessionOptions extends SessionOptions {
  /** `true`: bind the session to a non-extractable P-256 key kept in IndexedDB. Default false. */
  dpop?: boolean;
  /** Where the key is kept. Default `indexedDB`; `null` (or none): in this tab's memory only. */
  indexedDB?: IDBFactory | null;
}

/** The IndexedDB database and object store holding the keys, one per session name. */
export const DPOP_DATABASE = "keyturn-dpop";
const STORE = "keys";

const g = globalThis as unknown as Partial<Window & typeof globalThis>;
const subtle = () => crypto.subtle;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

const b64url = (bytes: ArrayBuffer | Uint8Array): string =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

const text = (value: unknown): string => b64url(new TextEncoder().encode(JSON.stringify(value)));

const sha256 = async (value: string): Promise<string> =>
  b64url(await subtle().digest("SHA-256", new TextEncoder().encode(value)));

/**
 * The key pair kept under `name`, made (non-extractable) and stored if there is none. The read and the
 * write are one IndexedDB transaction, so tabs starting together agree on one key. Without IndexedDB (or
 * if it fails), a key in memory.
 */
export async function dpopKey(name: string, idb: IDBFactory | null | undefined): Promise<CryptoKeyPair> {
  const fresh = (await subtle().generateKey(ALGORITHM, false, ["sign", "verify"])) as CryptoKeyPair;
  if (!idb) return fresh;
  return new Promise<CryptoKeyPair>((resolve, reject) => {
    const open = idb.open(DPOP_DATABASE, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      const get = store.get(name);
      let pair = fresh;
      get.onsuccess = () => {
        const found = get.result as CryptoKeyPair | undefined;
        if (found?.privateKey && found.publicKey) pair = found;
        else store.put(fresh, name);
      };
      tx.oncomplete = () => (db.close(), resolve(pair));
      tx.onerror = tx.onabort = () => (db.close(), reject(tx.error));
    };
  }).catch(() => fresh);
}

/** Signs the proofs of one session's key: `proof(method, url, accessToken?)`, and the key's thumbprint. */
export class DpopSigner {
  /** The service's last nonce, per origin. */
  readonly nonces = new Map<string, string>();
  #key: Promise<[CryptoKeyPair, JsonWebKey, string]> | undefined;

  constructor(
    readonly name: string,
    readonly idb: IDBFactory | null | undefined,
    /** The service's time (ms), as the session reckons it, never ahead of the service's clock. */
    readonly now: () => number,
  ) {}

  /** The key pair, its public JWK and its RFC 7638 thumbprint (`jkt`), loaded once. */
  key(): Promise<[CryptoKeyPair, JsonWebKey, string]> {
    return (this.#key ??= dpopKey(this.name, this.idb).then(async (pair) => {
      const { crv, kty, x, y } = await subtle().exportKey("jwk", pair.publicKey);
      const jwk = { crv, kty, x, y }; // the members of RFC 7638, in its order
      return [pair, jwk, await sha256(JSON.stringify(jwk))];
    }));
  }

  /** A proof for `method` on `url` (its query and fragment left out), with `ath` for `accessToken`. */
  async proof(method: string, url: URL, accessToken?: string): Promise<string> {
    const [pair, jwk] = await this.key();
    const random = crypto.getRandomValues(new Uint8Array(16));
    const claims = {
      jti: b64url(random),
      htm: method,
      htu: url.origin + url.pathname,
      iat: Math.floor(this.now() / 1000),
      nonce: this.nonces.get(url.origin),
      ath: accessToken && (await sha256(accessToken)),
    };
    const input = text({ typ: "dpop+jwt", alg: "ES256", jwk }) + "." + text(claims);
    const signature = await subtle().sign(ALGORITHM, pair.privateKey, new TextEncoder().encode(input));
    return input + "." + b64url(signature);
  }
}

/** The `cnf.jkt` claim of a JWT (not verified: it only says which scheme the token is sent with). */
function boundTo(jwt: string): unknown {
  try {
    return JSON.parse(atob(jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))).cnf?.jkt;
  } catch {
    return undefined;
  }
}

/**
 * The headers that carry the access token `token` on a `method` request for `url`: `Authorization: DPoP` and
 * a proof with `ath` when the token is bound to the signer's key (RFC 9449 section 7.1: a bound token is
 * never sent as `Bearer`), `undefined` when it is not (it goes as `Bearer`).
 */
export async function boundHeaders(signer: DpopSigner, method: string, url: URL, token: string): Promise<Record<string, string> | undefined> {
  if (boundTo(token) != (await signer.key())[2]) return undefined;
  return { Authorization: "DPoP " + token, DPoP: await signer.proof(method, url, token) };
}

/** Whether an answer asks for the service's nonce (RFC 9449 section 8 and 9). */
async function wantsNonce(res: Response, field: string): Promise<boolean> {
  if (/use_dpop_nonce/.test(res.headers.get("www-authenticate") ?? "")) return true;
  const body: unknown = res.status == 400 || res.status == 401 ? await res.clone().json().catch(() => null) : null;
  return (body as Record<string, unknown> | null)?.[field] == "use_dpop_nonce";
}

/**
 * `send` with DPoP: a proof on every call to `signed` (the login, refresh and logout URLs: a bound session's
 * refresh token ends it only with a proof of its key), and on every request
 * carrying an access token bound to the key, then sent as `DPoP`; once more with the service's nonce when
 * it asks for one. Other requests go untouched.
 */
export function dpopFetch(send: typeof fetch, signer: DpopSigner, signed: string[], errorField: string): typeof fetch {
  return async (input, init = {}) => {
    const request = typeof Request != "undefined" && input instanceof Request ? input : undefined;
    const url = new URL(request?.url ?? String(input), g.location?.href);
    const method = (init.method ?? request?.method ?? "GET").toUpperCase();
    const headers = new Headers(init.headers ?? request?.headers);
    const [scheme, token] = (headers.get("authorization") ?? "").split(" ");
    const bound = async () => (scheme == "Bearer" && token ? boundHeaders(signer, method, url, token) : undefined);
    let carried = await bound();
    if (!carried && !signed.includes(url.origin + url.pathname)) return send(input, init);
    for (let retried = false; ; retried = true, carried = await bound()) {
      carried ??= { DPoP: await signer.proof(method, url) };
      for (const [name, value] of Object.entries(carried)) headers.set(name, value);
      (init as TimedInit)._sent?.(); // the proof is made: the call leaves now
      const res = await send(request ? request.clone() : input, { ...init, headers });
      const nonce = res.headers.get("dpop-nonce");
      if (nonce) signer.nonces.set(url.origin, nonce);
      if (retried || !nonce || res.ok || !(await wantsNonce(res, errorField))) return res;
    }
  };
}

/**
 * `createSession` of the base package, with the `dpop` option: `true` binds the session to this origin's
 * key (see the module's description); without it, the base session as it is.
 */
export function createSession(o: DpopSessionOptions = {}): Session {
  if (!o.dpop) return createBase(o);
  const e = { ...KEYTURN, ...o.endpoints };
  const now = o.now ?? (() => Date.now());
  const name = o.name ?? "keyturn";
  let session: Session | undefined;
  // A proof's iat is never ahead of the service's clock: the least offset the last login or refresh allows
  // (`server_time - received`), not the midpoint estimate scheduling uses, which runs ahead when a request
  // took longer to get there than its answer took to come back (a queue, a busy machine).
  const offset = (least = session?.minClockOffset) => (Number.isFinite(least) ? least! : (session?.clockOffset ?? 0));
  const signer = new DpopSigner(name, o.indexedDB === undefined ? g.indexedDB : o.indexedDB, () => now() + offset());
  const base = o.fetch ?? ((input, init) => fetch(input, init));
  const signed = [e.login, e.refresh, e.logout, e.logoutAll].filter((path): path is string => path != null).map((path) => {
    const url = new URL((o.baseUrl ?? "") + path, g.location?.href);
    return url.origin + url.pathname;
  });
  session = createBase({
    ...o,
    endpoints: { ...o.endpoints, definitive: [...e.definitive, "refresh_token_bound"] },
    fetch: dpopFetch(base, signer, signed, e.errorField),
  });
  // the axios adapter sends through axios, not through that `fetch`: it asks here (the same rule)
  session._dpop = (request, url, token) =>
    boundHeaders(signer, (request.method ?? "GET").toUpperCase(), new URL(url, g.location?.href), token);
  return session;
}
