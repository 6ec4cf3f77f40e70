/**
 * What the tabs of one origin share (the lowest layer of a session, see `state.ts`): a lock so that one tab refreshes at a time (Web Locks), a channel that
 * carries the new tokens to the others (BroadcastChannel), and the last state in storage (re-read after
 * taking the lock, and the `storage` event where there is no channel). Each has a fallback: without Web
 * Locks a tab refreshes under its own single flight only, and the token service's grace period makes
 * concurrent refreshes converge on one chain; without a channel, tabs learn from the storage event.
 *
 * Storage and the channel may reach a tab after the lock does (in Chromium each renderer reads its own copy
 * of `localStorage`, updated a moment later), so a tab that refreshed also says so through the lock manager,
 * which every tab sees alike: before releasing the lock it holds a second lock, `<name>:<generation>`, for a
 * few seconds; the next holder asks the lock manager for the newest such generation (`_newest`) and, if it
 * is ahead of its own, waits for those tokens rather than present a refresh token already rotated.
 */

/** The part of `navigator.locks` used here. */
export interface LockManagerLike {
  /** Exclusive locks for the refresh; shared ones (`mode: "shared"`) to publish a generation. */
  request<T>(name: string, options: { signal?: AbortSignal; mode?: LockMode }, callback: (lock: unknown) => Promise<T>): Promise<T>;
  /** The locks held (browsers have it; without it a tab cannot tell that another has just refreshed). */
  query?(): Promise<{ held?: { name?: string }[] }>;
}

/** The part of `BroadcastChannel` used here. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

/**
 * How long a tab waits for another to finish refreshing before it goes on without the lock. Longer than a
 * refresh may take (its 10 s timeout and the wait for another tab's broadcast), so it only fires when the
 * holder hangs.
 */
const LOCK_TIMEOUT = 15_000;
/**
 * How long a tab that refreshed keeps its generation's lock: storage and the channel reach every tab long
 * before (milliseconds); held longer, the lock would keep the page out of the back/forward cache.
 */
const PUBLISH_TIME = 5000;

export abstract class Tabs {
  protected readonly _channel: ChannelLike | undefined;
  private readonly _storage: Storage | null;
  private readonly _locks: LockManagerLike | null;

  constructor(
    protected readonly _name: string,
    storage: Storage | null,
    locks: LockManagerLike | null,
    Channel: (new (name: string) => ChannelLike) | null,
  ) {
    this._storage = storage;
    this._locks = locks;
    if (Channel) {
      this._channel = new Channel(_name);
      this._channel.onmessage = (event) => this._onMessage(event.data);
    }
  }

  /** What another tab posted. */
  protected abstract _onMessage(data: unknown): void;

  protected _read(): unknown {
    try {
      return JSON.parse(this._storage?.getItem(this._name) ?? "null");
    } catch {
      return undefined; // unreadable or not JSON: treated as nothing stored
    }
  }

  protected _write(value: object): void {
    try {
      this._storage?.setItem(this._name, JSON.stringify(value));
    } catch {
      // full or forbidden storage: the tabs still have the channel, and this tab its memory
    }
  }

  protected _post(message: object): void {
    this._channel?.postMessage(message);
  }

  /**
   * Runs `fn` holding the lock shared by every tab. If the lock cannot be had within `LOCK_TIMEOUT` (a hung
   * holder) or at all, `fn` runs without it.
   */
  protected async _lock<T>(fn: () => Promise<T>): Promise<T> {
    const locks = this._locks;
    if (!locks) return fn();
    let granted = false;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LOCK_TIMEOUT);
    try {
      return await locks.request(this._name, { signal: abort.signal }, () => ((granted = true), fn()));
    } catch (error) {
      if (granted) throw error;
      return fn();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Tells the other tabs, through the lock manager, that tokens of `generation` exist; settles once told. */
  protected _publish(generation: number): Promise<unknown> {
    return new Promise((told) => {
      const hold = () => (told(0), new Promise((done) => setTimeout(done, PUBLISH_TIME)));
      this._locks!.request(`${this._name}:${generation}`, { mode: "shared" }, hold).catch(told);
    }).catch(() => {}); // no Web Locks: no one to tell
  }

  /** The newest generation a tab published in the last few seconds (0: none), `undefined` if unknown. */
  protected async _newest(): Promise<number | undefined> {
    try {
      const { held = [] } = await this._locks!.query!();
      const prefix = this._name + ":";
      return Math.max(0, ...held.map(({ name = "" }) => (name.startsWith(prefix) && +name.slice(prefix.length)) || 0));
    } catch {
      return undefined; // no Web Locks, or no query
    }
  }

  protected _close(): void {
    this._channel?.close();
  }
}
