/**
 * The axios adapter: interceptors that give every request of an axios instance for an allowed origin the
 * session's access token at send time and act on the answers as `session.fetch` does. Typed structurally, so the package needs no
 * axios of its own.
 */
import type { Attempt, Session } from "./session.js";

// `any` stands for axios's own config, error and response types, which this package does not import.
/* eslint-disable @typescript-eslint/no-explicit-any */
interface Interceptors {
  use(onFulfilled?: ((value: any) => any) | null, onRejected?: ((error: any) => any) | null): number;
  eject(id: number): void;
}

/** The part of an axios instance the adapter uses. */
export interface AxiosLike {
  interceptors: { request: Interceptors; response: Interceptors };
  request(config: any): Promise<any>;
  /** The full URL of a request (`baseURL` and `url`); axios instances have it. */
  getUri?(config: any): string;
}

/** Where a request's resends and retries are counted: a plain property survives axios's config merge. */
const KEY = "_keyturn";

/** Attaches `session` to `axios`; returns the function that detaches it. */
export function attachAxios(session: Session, axios: AxiosLike): () => void {
  const { request, response } = axios.interceptors;
  const onRequest = request.use(async (config) => {
    const url = axios.getUri?.(config) ?? config.url;
    if (!session._sendsTokenTo(url)) return config;
    const attempt: Attempt = (config[KEY] ??= session._attempt(config.method ?? "get"));
    const token = await session._tokenFor(attempt);
    // a token bound to the session's DPoP key goes as `DPoP` with a proof (`@keyturn/client/dpop`)
    const headers = (await session._dpop?.(config, url, token)) ?? { Authorization: "Bearer " + token };
    if (config.headers?.set) config.headers.set(headers);
    else config.headers = { ...config.headers, ...headers };
    return config;
  });
  const onResponse = response.use(null, async (error) => {
    const config = error?.config;
    const attempt: Attempt | undefined = config?.[KEY];
    // no attempt: the error came before sending (the session ended, say); ERR_CANCELED: the application's abort
    if (!attempt || error.code == "ERR_CANCELED") throw error;
    const res = error.response;
    const header = (name: string): string | undefined => res?.headers?.get?.(name) ?? res?.headers?.[name];
    // axios gives the body parsed, or as text if it is not JSON (the code may still be in WWW-Authenticate)
    const body = () => (typeof res?.data == "string" ? JSON.parse(res.data) : res?.data);
    if (await session._handle(attempt, res?.status, body, header)) return axios.request(config);
    throw error;
  });
  return () => {
    request.eject(onRequest);
    response.eject(onResponse);
  };
}
