import type { MemoryServer } from '../../internal.js';
import type { VirtualClock } from './clock.js';

/** What the loop waits on between timers: a macrotask, so every promise chain queued before has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The run loop: let everything that can happen now happen (deliveries and
 * the promise chains they start, until the server has nothing ready to
 * deliver), then fire the next timer on the virtual clock, and again.
 *
 * Quiescence is decided without the wall clock: the server's delivery
 * queue is the only thing in a simulation that runs outside a promise
 * chain or a virtual timer (no real timers, no real I/O), and it is idle
 * only when it has nothing ready and no turn scheduled. The order of
 * setImmediate callbacks with no I/O in between is first-in first-out, so
 * the same run takes the same turns.
 */
export class RunLoop {
  readonly #clock: VirtualClock;
  readonly #server: MemoryServer;
  readonly #afterSettle: () => void;
  #turns = 0;

  constructor(clock: VirtualClock, server: MemoryServer, afterSettle: () => void = () => undefined) {
    this.#clock = clock;
    this.#server = server;
    this.#afterSettle = afterSettle;
  }

  /** Macrotask turns taken so far. */
  get turns(): number {
    return this.#turns;
  }

  /** Until nothing more happens without time moving. */
  async settle(): Promise<void> {
    do {
      this.#turns++;
      await turn();
    } while (!this.#server.idle);
    this.#afterSettle();
  }

  /** Runs until `done()` holds or virtual time reaches `limit` (then it stands at `limit`). */
  async drive(done: () => boolean, limit: number): Promise<void> {
    for (;;) {
      await this.settle();
      if (done()) return;
      const next = this.#clock.next;
      if (next === undefined || next > limit) {
        this.#clock.advance(limit);
        return;
      }
      this.#clock.fire(limit);
    }
  }

  /** Drives until `promise` settles (its value or its error), or throws once time reaches `limit` first. */
  async run<T>(promise: Promise<T>, limit: number, what: string): Promise<T> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    promise.then(
      (value) => (outcome = { ok: true, value }),
      (error: unknown) => (outcome = { ok: false, error }),
    );
    await this.drive(() => outcome !== undefined, limit);
    if (outcome === undefined) throw new Error(`${what}: not done by virtual time ${limit}`);
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }
}
