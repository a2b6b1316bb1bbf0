import type { Clock } from '../../bus/clock.js';

/**
 * A call's deadline over work the cluster may never finish (a KV reservation,
 * a blob fetch, a connection being made): the caller hears `timedOut()` at
 * the deadline whatever the work does, and the work, left running, is
 * ignored when it ends. Time comes from the client's clock, so virtual time
 * moves it as it moves everything else.
 */
export function withDeadline<T>(work: Promise<T>, clock: Clock, ms: number, timedOut: () => Error): Promise<T> {
  if (ms === Infinity) return work;
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(timedOut()), Math.max(0, ms));
    work.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Waits for `work` (its outcome ignored) no longer than `ms`: best-effort clean-up that must not hold a call past its deadline. */
export function atMost(work: Promise<unknown>, clock: Clock, ms: number): Promise<void> {
  if (ms <= 0) {
    void work.catch(() => undefined);
    return Promise.resolve();
  }
  return withDeadline(
    work.then(() => undefined),
    clock,
    ms,
    () => new Error('clean-up past its time'),
  ).catch(() => undefined);
}
