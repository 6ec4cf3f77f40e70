/**
 * The refresh: one at a time in a tab (one promise every caller shares) and across tabs (the Web Lock).
 * Whoever takes the lock first takes on what the other tabs know; if another tab refreshed meanwhile, it
 * waits for those tokens instead of presenting a refresh token already rotated. The answer is judged by
 * the flow (`store` | `end` | `retry`) and applied to the state, which tells the other tabs. Here too is
 * the one way every call to the token service goes (refresh, login, logout).
 */
import { retryAfter } from "./backoff.js";
import { decideRefresh, errorCode } from "./flow.js";
import { SessionState } from "./state.js";
import { parseTokens, type TimedInit, type Tokens } from "./tokens.js";

export abstract class RefreshingSession extends SessionState {
  /** The refresh under way in this tab, if any. */
  protected _inflight: Promise<void> | undefined;

  /** Refreshes, unless another tab did or the tokens held now are not `rejected` and not due. */
  protected _refresh(rejected?: string): Promise<void> {
    const stale = rejected ?? this._tokens?.at;
    return (this._inflight ??= this._lock(async () => {
      this._held++;
      try {
        await this._refreshLocked(stale);
      } finally {
        this._held--;
      }
    }).finally(() => {
      this._inflight = undefined;
      this._flush();
      this._schedule();
    }));
  }

  private async _refreshLocked(stale: string | undefined): Promise<void> {
    const e = this.endpoints;
    const epoch = this._epoch;
    const stored = this._stored();
    this._consider(stored);
    // Another tab refreshed: it published a newer generation (the lock manager tells at once, where storage
    // and the channel may reach this tab after the lock did), or (cookie mode) its stored state is newer
    // but holds no token, or this tab has no access token yet. Wait for those tokens (asking the others
    // for them) rather than present a refresh token that was already rotated.
    const held = this._tokens;
    if (held && ((this._channel && (!held.at || (!!stored && this._newer(stored)))) || ((await this._newest()) ?? 0) > this._generation)) {
      await this._catchUp();
    }
    const t = this._tokens;
    if (!t || epoch != this._epoch || (t.at != stale && this._usable(t) && this._serverNow() < this._due)) return;
    const generation = this._generation;
    let res: Response, body: unknown, sent: number, received: number;
    try {
      [res, sent, received, body] = await this._call(e.refresh, t.rt ? { [e.refreshField]: t.rt } : {});
    } catch (error) {
      if (epoch == this._epoch) this._failed(String(error), undefined, "lost");
      return;
    }
    // Logged out or in meanwhile, here or (as storage tells before the channel does) in another tab:
    // this answer belongs to the past.
    this._consider(this._stored());
    if (epoch != this._epoch) return;
    const code = res.ok ? undefined : errorCode(body, null, e.errorField);
    const decision = decideRefresh(res.status, code, e);
    if (decision == "end") {
      // Refused for good, unless another tab refreshed with the same token first (no Web Locks, or a hung
      // holder): then its newer tokens keep the session. Without Web Locks to ask, ask the tabs.
      if (((await this._newest()) ?? Infinity) > generation) await this._catchUp();
      if (this._generation == generation) this._end(code!);
      return;
    }
    if (decision == "retry") {
      return this._failed(`HTTP ${res.status} ${code ?? ""}`, retryAfter(res.headers.get("retry-after"), this._now()));
    }
    let tokens: Omit<Tokens, "gen">;
    try {
      tokens = parseTokens(body, e, sent, received, this._cookie ? false : t.rt);
    } catch (error) {
      return this._failed(String(error), undefined, "lost"); // rotated, probably, but unreadable
    }
    const failures = this._failures;
    const fresh = { ...tokens, gen: this._nextGeneration() };
    this._install(fresh, false);
    if ((t.at && fresh.exp! <= t.exp!) || !this._usable(fresh)) {
      // Near the session's absolute end every refresh brings the same expiry: back off, growing, rather
      // than refresh again at once (not a failure, so not `degraded`).
      this._failures = failures;
      this._failed("", undefined, "quiet");
    }
    await this._publish(fresh.gen); // before the lock goes to another tab
  }

  /**
   * POSTs `body` to the token service's `path` (with `token` as the bearer, if given), abandoned after the
   * timeout; the answer's body is `undefined` if it is not JSON. Also when (local time) the call left and
   * its answer came: left is when the `fetch` the session was given says it sent it (`_sent`: the DPoP
   * wrapper, after making the proof and after a nonce round trip), else when it was handed that `fetch`;
   * came is when the answer's headers did, before its body is read. Their midpoint is where the clock
   * offset is measured, so neither the proof's signing nor reading the body may shift it.
   */
  protected async _call(path: string, body: object, token?: string): Promise<[Response, number, number, unknown]> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this._timeout);
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (this._cookie) headers[this.endpoints.csrfHeader] = "1";
    if (token) headers.Authorization = "Bearer " + token;
    let sent = this._now();
    try {
      const res = await this._send(this._baseUrl + path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: this._credentials,
        signal: abort.signal,
        _sent: () => (sent = this._now()),
      } as TimedInit);
      // Left to right: the answer's time is taken before its body is read.
      return [res, sent, this._now(), await res.json().catch(() => undefined)];
    } finally {
      clearTimeout(timer);
    }
  }
}
