/**
 * Time enters the runtime only through a Clock, so the memory bus, the hosts
 * and the simulator can run on virtual time and replay exactly.
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export type TimerHandle = { readonly __timer: unique symbol } | number | object;

/** Node fires anything longer than this (about 24.8 days) at once; longer delays are re-armed in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

interface LongTimer {
  inner: ReturnType<typeof setTimeout>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // Not unref'd: a pending request keeps the process alive, as it does on nats.js.
  setTimeout: (callback, ms) => {
    const due = Date.now() + ms;
    const handle: LongTimer = { inner: undefined as unknown as ReturnType<typeof setTimeout> };
    const arm = (left: number): void => {
      handle.inner = setTimeout(
        () => {
          const rest = due - Date.now();
          if (rest > 0) arm(rest);
          else callback();
        },
        Math.min(Math.max(0, left), MAX_TIMEOUT_MS),
      );
    };
    arm(ms);
    return handle;
  },
  clearTimeout: (handle) => clearTimeout((handle as LongTimer).inner),
};

interface Pending {
  id: number;
  at: number;
  callback: () => void;
}

/**
 * Virtual time: nothing fires until `increment` (or `set`) moves the clock.
 * Timers due at the same instant fire in the order they were armed.
 */
export class SimulatedClock implements Clock {
  #now: number;
  #nextId = 1;
  #pending: Pending[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#pending.push({ id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#pending = this.#pending.filter((p) => p.id !== handle);
  }

  /** Timers still armed. */
  get pendingTimers(): number {
    return this.#pending.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  increment(ms: number): void {
    this.set(this.#now + ms);
  }

  set(time: number): void {
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending) {
        if (p.at <= time && (next === undefined || p.at < next.at || (p.at === next.at && p.id < next.id))) next = p;
      }
      if (next === undefined) break;
      this.#pending = this.#pending.filter((p) => p !== next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = Math.max(this.#now, time);
  }
}
