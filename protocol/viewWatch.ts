/**
 * Reading the cluster view from its key, for members and onlookers alike.
 * A value there that this version cannot read (a newer leader's format, a
 * stray write) must not end the watch: the next view written may be
 * readable, and a reader that stops at the first bad one would sit on a
 * stale view for good. So it is reported, the caller logs it, and the
 * watch goes on.
 */
import { systemClock, type Clock } from '../bus/clock.js';
import { CohortError } from '../bus/errors.js';
import type { Bus, KvStore, KvWatch, KvWatchOptions } from '../bus/types.js';
import type { View } from '../machines/view.js';
import { bucketName, VIEW_KEY } from './names.js';
import { decodeView } from './viewDocument.js';

/** The view key was deleted or purged (by someone who should not have): reported like an unreadable value. */
export class ViewDeletedError extends CohortError {
  constructor(readonly revision: number) {
    super(`the view was deleted at revision ${revision}`);
  }
}

/** A view and the revision of its key, which the leader's compare-and-set needs. */
export type ViewHandler = (view: View, revision: number) => void;

/** The value at `revision` was skipped: `err` says why (a DecodeError or RangeError). */
export type UnreadableViewHandler = (err: unknown, revision: number) => void;

function viewOf(value: Uint8Array, revision: number): View {
  return decodeView(value, `view revision ${revision}`);
}

/**
 * Every view written, in order; resolves once the watch is in place, having
 * handed over the current view first (unless `include` is `updates`), so a
 * view written after it is never missed. A delete is reported through
 * `onUnreadable` (ViewDeletedError). An exception from `onView` is the
 * caller's own and is not caught.
 */
export function watchView(
  kv: KvStore,
  onView: ViewHandler,
  onUnreadable: UnreadableViewHandler,
  options: { include?: KvWatchOptions['include'] } = {},
): Promise<KvWatch> {
  return kv.watch({ key: VIEW_KEY, ...(options.include !== undefined && { include: options.include }) }, (entry) => {
    if (entry.operation !== 'PUT') {
      // Gone is as unusable as garbage: a member that took it for "no view yet" would start the cluster over.
      onUnreadable(new ViewDeletedError(entry.revision), entry.revision);
      return;
    }
    let view: View;
    try {
      view = viewOf(entry.value, entry.revision);
    } catch (err) {
      onUnreadable(err, entry.revision);
      return;
    }
    onView(view, entry.revision);
  });
}

/** The current view, or null before the first is written; throws when the value there is unreadable (a one-off read has nothing to skip to). */
export async function readView(kv: KvStore): Promise<{ view: View; revision: number } | null> {
  const entry = await kv.get(VIEW_KEY);
  if (entry === null) return null;
  return { view: viewOf(entry.value, entry.revision), revision: entry.revision };
}

export interface ViewWaiter {
  /** The first view to pass the test since watching began (at once if one already has); null when none does within `timeoutMs` from this call, or once stopped. */
  until(timeoutMs: number): Promise<View | null>;
  stop(): void;
}

/**
 * Watches the view of `cluster` for one that passes `test`, which sees every
 * view in order until stop() (so it may also print them). Resolves once
 * watching: a change started after that cannot slip past, which is why the
 * wait itself is a second step, `until`.
 */
export async function waitForView(
  bus: Bus,
  cluster: string,
  test: (view: View) => boolean,
  options: { onUnreadable: UnreadableViewHandler; include?: KvWatchOptions['include']; clock?: Clock },
): Promise<ViewWaiter> {
  const kv = await bus.kv({ bucket: bucketName(cluster, 'cluster') });
  const clock = options.clock ?? systemClock;
  let found: View | undefined;
  let stopped = false;
  const waiting = new Set<(view: View | null) => void>();
  const settle = (view: View | null): void => {
    for (const w of [...waiting]) w(view);
  };
  const watch = await watchView(
    kv,
    (view) => {
      if (!test(view) || found !== undefined) return;
      found = view;
      settle(view);
    },
    options.onUnreadable,
    { include: options.include },
  );
  return {
    until(timeoutMs) {
      if (found !== undefined) return Promise.resolve(found);
      if (stopped) return Promise.resolve(null);
      return new Promise((resolve) => {
        const done = (view: View | null): void => {
          clock.clearTimeout(timer);
          waiting.delete(done);
          resolve(view);
        };
        const timer = clock.setTimeout(() => done(null), timeoutMs);
        waiting.add(done);
      });
    },
    stop() {
      stopped = true;
      watch.stop();
      settle(null);
    },
  };
}
