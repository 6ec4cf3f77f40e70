/**
 * What the tabs of one origin share: a lock so that one tab refreshes at a time (Web Locks), a channel that
 * carries the new tokens to the others (BroadcastChannel), and the last state in storage (re-read after
 * taking the lock, and the `storage` event where there is no channel). Each has a fallback: without Web
 * Locks a tab refreshes under its own single flight only, and the token service's grace period makes
 * concurrent refreshes converge on one chain; without a channel, tabs learn from the storage event.
 */

/** The part of `navigator.locks` used here. */
export interface LockManagerLike {
  /** With `ifAvailable`, the callback gets `null` at once when another holds the lock. */
  request<T>(
    name: string,
    options: { signal?: AbortSignal; ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T>;
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

export class Tabs {
  readonly channel: ChannelLike | undefined;

  constructor(
    readonly name: string,
    private readonly storage: Storage | null,
    private readonly locks: LockManagerLike | null,
    Channel: (new (name: string) => ChannelLike) | null,
    onMessage: (data: unknown) => void,
  ) {
    if (Channel) {
      this.channel = new Channel(name);
      this.channel.onmessage = (event) => onMessage(event.data);
    }
  }

  read(): unknown {
    try {
      return JSON.parse(this.storage?.getItem(this.name) ?? "null");
    } catch {
      return undefined; // unreadable or not JSON: treated as nothing stored
    }
  }

  write(value: object): void {
    try {
      this.storage?.setItem(this.name, JSON.stringify(value));
    } catch {
      // full or forbidden storage: the tabs still have the channel, and this tab its memory
    }
  }

  post(message: object): void {
    this.channel?.postMessage(message);
  }

  /**
   * Runs `fn` holding the lock shared by every tab; `contended` tells it whether another tab held the lock
   * when this one asked (then it was probably refreshing, and its news may reach this tab only after the
   * lock does). If the lock cannot be had within `LOCK_TIMEOUT` (a hung holder) or at all, `fn` runs
   * without it.
   */
  async lock<T>(fn: (contended: boolean) => Promise<T>): Promise<T> {
    const locks = this.locks;
    if (!locks) return fn(false);
    let granted = false;
    const run = (contended: boolean) => ((granted = true), fn(contended));
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LOCK_TIMEOUT);
    try {
      // Asking with `ifAvailable` first tells, atomically, whether another tab holds the lock.
      const busy = {} as T;
      const free = await locks.request(this.name, { ifAvailable: true }, async (lock) => (lock ? run(false) : busy));
      return free !== busy ? free : await locks.request(this.name, { signal: abort.signal }, () => run(true));
    } catch (error) {
      if (granted) throw error;
      return fn(false);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.channel?.close();
  }
}
