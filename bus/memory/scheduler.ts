/**
 * The server's single delivery queue. Every delivery (to a subscription, a
 * request's inbox or a kv watcher) goes through it, so publishing never runs a
 * handler synchronously, each subscription sees messages in publish order, and
 * the whole server is one deterministic sequence the simulator can replay.
 */
/** Turns run on microtasks before one waits for the event loop (timers and I/O). */
const MICROTASK_TURNS = 256;

export class DeliveryQueue {
  #tasks: Array<(() => void) | undefined> = [];
  #head = 0;
  #scheduled = false;
  /** Turns run back to back on microtasks since timers last had a chance. */
  #turns = 0;

  /** Nothing queued and no turn scheduled. */
  get idle(): boolean {
    return !this.#scheduled && this.#head === this.#tasks.length;
  }

  push(task: () => void): void {
    this.#tasks.push(task);
    this.#schedule();
  }

  /** Resolves once every task queued before this call has run. */
  flush(): Promise<void> {
    return new Promise((resolve) => this.push(resolve));
  }

  // Microtasks keep a busy in-process cluster fast, but a client loop that
  // only awaits deliveries would starve every timer (heartbeats, ticks,
  // timeouts); so every so often a turn waits for the event loop instead.
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (++this.#turns < MICROTASK_TURNS) {
      queueMicrotask(() => this.#run());
    } else {
      this.#turns = 0;
      setImmediate(() => this.#run());
    }
  }

  // Runs the tasks present now; tasks they queue wait for the next turn, so
  // promise continuations (a test awaiting flush) interleave fairly.
  #run(): void {
    this.#scheduled = false;
    const end = this.#tasks.length;
    try {
      while (this.#head < end) {
        const task = this.#tasks[this.#head];
        this.#tasks[this.#head++] = undefined;
        task?.();
      }
    } finally {
      if (this.#head === this.#tasks.length) {
        this.#tasks = [];
        this.#head = 0;
      } else {
        this.#schedule();
      }
    }
  }
}
