/** Test doubles of what tabs share: `localStorage` with storage events, Web Locks, BroadcastChannel (see fakes.ts). */
import type { ChannelLike, LockManagerLike } from "../src/tabs";

/**
 * `localStorage` shared by the tabs of one test; a write fires `storage` at the other tabs' targets. With
 * `lag` ms, the other tabs see a write (and its event) only that much later, as in Chromium, where each
 * renderer reads its own copy.
 */
export class SharedStorage {
  /** The latest value of every key (what a tab without lag would read). */
  data = new Map<string, string>();
  private copies = new Map<EventTarget, Map<string, string>>();

  constructor(readonly lag = 0) {}

  view(target: EventTarget): Storage {
    const mine = this.lag ? new Map(this.data) : this.data;
    this.copies.set(target, mine);
    const put = (key: string, value: string | null) => {
      for (const [owner, copy] of this.copies) {
        const deliver = () => {
          apply(copy, key, value);
          if (owner != target) owner.dispatchEvent(Object.assign(new Event("storage"), { key, newValue: value }));
        };
        if (owner == target || !this.lag) deliver();
        else setTimeout(deliver, this.lag);
      }
      if (this.lag) apply(this.data, key, value);
    };
    return {
      get length() {
        return 0;
      },
      clear: () => mine.clear(),
      key: () => null,
      getItem: (key) => mine.get(key) ?? null,
      setItem: (key, value) => {
        if (mine.get(key) !== value) put(key, value);
      },
      removeItem: (key) => put(key, null),
    };
  }
}

function apply(map: Map<string, string>, key: string, value: string | null): void {
  if (value === null) map.delete(key);
  else map.set(key, value);
}

/**
 * Web Locks: exclusive locks granted in order, abortable while waiting; shared ones granted at once (none
 * here is ever held exclusively); `query` lists the held ones, as every tab sees them alike.
 */
export class FakeLocks implements LockManagerLike {
  grants = 0;
  isHeld(name = "keyturn"): boolean {
    return this.held.has(name);
  }
  /** Off: a browser (or an application's lock manager) without `query`. */
  queryable = true;
  private held = new Map<string, number>();
  private waiting = new Map<string, Array<() => void>>();

  async request<T>(
    name: string,
    options: { signal?: AbortSignal; mode?: LockMode },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T> {
    const handedOver = this.held.has(name) && options.mode != "shared";
    if (handedOver) {
      await new Promise<void>((resolve, reject) => {
        const queue = this.waiting.get(name) ?? [];
        this.waiting.set(name, queue);
        queue.push(resolve);
        options.signal?.addEventListener("abort", () => {
          queue.splice(queue.indexOf(resolve), 1);
          reject(new DOMException("aborted", "AbortError"));
        });
      });
    }
    if (!handedOver) this.held.set(name, (this.held.get(name) ?? 0) + 1);
    this.grants++;
    try {
      return await callback({ name });
    } finally {
      const next = this.waiting.get(name)?.shift();
      const count = this.held.get(name)! - 1;
      if (next) next(); // handed over at once, like a browser: before a message posted meanwhile arrives
      else if (count) this.held.set(name, count);
      else this.held.delete(name);
    }
  }

  query = async (): Promise<{ held: { name: string }[] }> => {
    if (!this.queryable) throw new TypeError("navigator.locks.query is not a function");
    return { held: [...this.held.keys()].map((name) => ({ name })) };
  };
}

/** BroadcastChannel between the tabs of one test; `delay` ms in transit (a macrotask, like a browser's). */
export function channels(delay = 0) {
  const members = new Set<FakeChannel>();
  const posted: unknown[] = [];
  class FakeChannel implements ChannelLike {
    onmessage: ((event: MessageEvent) => void) | null = null;
    constructor(readonly name: string) {
      members.add(this);
    }
    postMessage(message: unknown): void {
      const data: unknown = structuredClone(message);
      posted.push(data);
      for (const other of members) {
        if (other != this && other.name == this.name) {
          setTimeout(() => other.onmessage?.({ data } as MessageEvent), delay);
        }
      }
    }
    close(): void {
      members.delete(this);
    }
  }
  return { Channel: FakeChannel, posted };
}
