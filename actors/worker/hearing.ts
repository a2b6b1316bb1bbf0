import type { Clock } from '../../bus/clock.js';
import { probeSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';

export interface HearingOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly worker: string;
  readonly clock: Clock;
  /** How long to wait for each probe to come back before sending the next. */
  readonly every: number;
  /** A fresh token per probe: an old or forged one proves nothing. */
  readonly newId: () => string;
  readonly stopped: () => boolean;
}

/**
 * Resolves once a probe this worker sends itself comes back from the
 * server: it can hear again (a worker that stepped down as deaf rejoins
 * then, not before, so its `joining` heartbeats do not get it admitted
 * while it still cannot hear the view that admits it). Resolves at once
 * when the worker is stopping.
 */
export async function untilHeard(options: HearingOptions): Promise<void> {
  const { bus, clock, every } = options;
  const subject = probeSubject(options.cluster, options.worker);
  let expected = '';
  let heard: (() => void) | undefined;
  const sub = bus.subscribe(subject, (m) => {
    if (new TextDecoder().decode(m.data) === expected) heard?.();
  });
  try {
    while (!options.stopped()) {
      expected = options.newId();
      const back = await new Promise<boolean>((resolve) => {
        const timer = clock.setTimeout(() => resolve(false), every);
        heard = () => {
          clock.clearTimeout(timer);
          resolve(true);
        };
        try {
          bus.publish(subject, new TextEncoder().encode(expected));
        } catch {
          // Not sent (the bus is reconnecting): the wait ends and the next probe goes.
        }
      });
      if (back) return;
    }
  } finally {
    sub.unsubscribe();
  }
}
