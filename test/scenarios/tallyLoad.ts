import type { Client } from '../../index.js';
import type { History } from '../../harness/history.js';

export interface TallyLoad {
  /** Acknowledged so far. */
  readonly acknowledged: number;
  /** Resolves once `more` further commands have been acknowledged from now; rejects after `timeoutMs`. */
  progress(more: number, timeoutMs?: number): Promise<void>;
  /** No new commands; resolves once every one in flight has settled. */
  stop(): Promise<void>;
}

/**
 * `lanes` loops, each with one command in flight, adding fresh tokens to
 * `sessions` tally sessions in turn; every outcome goes into `history`.
 */
export function startTallyLoad(
  client: Client,
  history: History,
  options: { sessions: number; lanes: number },
): TallyLoad {
  let stopping = false;
  let acknowledged = 0;
  const waiters = new Set<{ at: number; resolve: () => void }>();
  const lane = async (n: number): Promise<void> => {
    for (let i = 0; !stopping; i++) {
      const session = `t${(n * 7 + i) % options.sessions}`;
      const token = `L${n}-${i}`;
      const op = await history.track(session, token, () =>
        client.session('tally', session).send({ type: 'ADD', token }),
      );
      if ('error' in op.outcome) continue;
      acknowledged++;
      for (const w of [...waiters]) {
        if (acknowledged < w.at) continue;
        waiters.delete(w);
        w.resolve();
      }
    }
  };
  const lanes = Array.from({ length: options.lanes }, (_, n) => lane(n));
  return {
    get acknowledged() {
      return acknowledged;
    },
    progress: (more, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const w = {
          at: acknowledged + more,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          const errors = history.operations.filter((op) => 'error' in op.outcome).slice(-5);
          reject(
            new Error(
              `only ${acknowledged - w.at + more} of ${more} more commands acknowledged in ${timeoutMs} ms; last errors: ${JSON.stringify(errors)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(w);
      }),
    stop: async () => {
      stopping = true;
      await Promise.all(lanes);
    },
  };
}
