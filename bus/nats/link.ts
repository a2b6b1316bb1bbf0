import { ConnectionLostError } from '../errors.js';

/**
 * Whether the connection to the server is up, as its status events say.
 * A call in flight when it drops cannot be answered (the reply would come
 * to a socket that is gone): it fails at once with ConnectionLostError
 * instead of waiting out its timeout, and what is safe to repeat is tried
 * again when the connection is back.
 */
export class Link {
  #up = true;
  /** Rejected by the next drop; replaced once it has been. */
  #lost: { promise: Promise<never>; reject: (err: Error) => void } = lostSignal();
  readonly #waiters = new Set<(up: boolean) => void>();

  get up(): boolean {
    return this.#up;
  }

  down(): void {
    if (!this.#up) return;
    this.#up = false;
    const lost = this.#lost;
    this.#lost = lostSignal();
    lost.reject(new ConnectionLostError());
  }

  restored(): void {
    if (this.#up) return;
    this.#up = true;
    for (const wake of [...this.#waiters]) wake(true);
  }

  /** Resolves true once the connection is up (at once if it is), false after `ms` without. */
  whenUp(ms: number): Promise<boolean> {
    if (this.#up) return Promise.resolve(true);
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (up: boolean): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(up);
      };
      const timer = setTimeout(() => done(false), ms);
      this.#waiters.add(done);
    });
  }

  /**
   * A call safe to repeat (a read; an append, by its message id): made
   * again whenever the connection drops while it is out and comes back
   * within `ms` of the first try; otherwise the drop's ConnectionLostError.
   * `call` is given the ms left, for its own timeout.
   */
  async repeatable<T>(call: (left: number) => Promise<T>, ms: number): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      try {
        return await this.race(call(Math.max(1, Math.min(ms, Math.round(deadline - performance.now())))));
      } catch (err) {
        if (!(err instanceof ConnectionLostError) || !(await this.whenUp(deadline - performance.now()))) throw err;
      }
    }
  }

  /** `call`'s outcome, or ConnectionLostError as soon as the connection drops while it is out. */
  race<T>(call: Promise<T>): Promise<T> {
    // The call may still settle after the drop: nobody is waiting for it then.
    call.catch(() => undefined);
    return Promise.race([call, this.#lost.promise]);
  }
}

function lostSignal(): { promise: Promise<never>; reject: (err: Error) => void } {
  let reject!: (err: Error) => void;
  const promise = new Promise<never>((_, r) => (reject = r));
  promise.catch(() => undefined);
  return { promise, reject };
}
