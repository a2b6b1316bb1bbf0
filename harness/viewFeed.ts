import { BucketNotFoundError, type Bus, CohortError, type KvWatch, type View } from '../index.js';
import { bucketName, watchView } from '../internal.js';

/**
 * The local cluster's views as an onlooker (not a member) sees them, fed by
 * one watch and shared by everything in this process that follows them: the
 * status lines, the demo's kill, the tests' waits.
 */

export interface ViewFeed {
  /** The newest view seen; null before the first is written. */
  readonly latest: View | null;
  /** Called with every newer view, in order. Returns an unsubscribe. */
  subscribe(listener: (view: View) => void): () => void;
  /** The latest view if it passes `test`, else the first newer one that does; rejects after `timeoutMs`. */
  until(test: (view: View) => boolean, timeoutMs: number, what: string): Promise<View>;
}

/** `view 7 of w1, w2~2 (transitional), 3 shards not ACTIVE`: enough to tell why a wait failed. */
function describeBriefly(view: View): string {
  const unsettled = view.shards.filter((s) => s.state !== 'ACTIVE').length;
  return (
    `view ${view.viewId} of ${view.members.map((m) => m.id).join(', ') || 'nobody'}` +
    (view.transitional ? ' (transitional)' : '') +
    (unsettled > 0 ? `, ${unsettled} shards not ACTIVE` : '')
  );
}

export class Views implements ViewFeed {
  latest: View | null = null;
  readonly #listeners = new Set<(view: View) => void>();

  offer(view: View): void {
    if (this.latest !== null && view.viewId <= this.latest.viewId) return;
    this.latest = view;
    for (const l of [...this.#listeners]) l(view);
  }

  subscribe(listener: (view: View) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  until(test: (view: View) => boolean, timeoutMs: number, what: string): Promise<View> {
    if (this.latest !== null && test(this.latest)) return Promise.resolve(this.latest);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(
          new Error(
            `no view with ${what} after ${timeoutMs} ms (latest: ${this.latest === null ? 'none' : describeBriefly(this.latest)})`,
          ),
        );
      }, timeoutMs);
      const stop = this.subscribe((view) => {
        if (!test(view)) return;
        clearTimeout(timer);
        stop();
        resolve(view);
      });
    });
  }
}

/**
 * Watches once the first worker has made the cluster bucket (retrying what
 * may pass, such as a timed-out call, until the deadline): an onlooker
 * never creates it (its user may not, and a bucket made here would carry
 * this process's settings, not the workers' storage replicas).
 */
export async function watchViews(bus: Bus, cluster: string, views: Views, timeoutMs = 30_000): Promise<KvWatch> {
  const bucket = bucketName(cluster, 'cluster');
  const deadline = performance.now() + timeoutMs;
  let kv;
  for (;;) {
    try {
      kv = await bus.kv({ bucket, create: false });
      break;
    } catch (err) {
      // Not made yet, or a JetStream call that timed out while a replicated stream is still being
      // created (a fresh 3-node cluster): wait and ask again, until the deadline.
      const again = err instanceof BucketNotFoundError || (err instanceof CohortError && err.retryable);
      if (!again || performance.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return watchView(
    kv,
    (view) => views.offer(view),
    () => {
      // Not a view this version reads: the workers say so in their logs.
    },
  );
}
