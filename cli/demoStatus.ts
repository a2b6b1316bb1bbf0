import type { View } from '../index.js';
import type { DepositLoad } from './demoLoad.js';
import type { LocalCluster } from './localCluster.js';
import type { ReplicaLag } from './replicaLag.js';
import { describeView, primariesByMember } from './up.js';

/**
 * What the demo prints while it runs: the views worth telling, and a status
 * line a second with what every worker serves and how the load is doing.
 */

export const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
export const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

const handingOff = (view: View): boolean => view.shards.some((s) => s.state === 'PENDING');

/**
 * Prints the views that tell the story: a change of members, leader or
 * transitional state, and the end of a wave of hand-offs (the views in
 * between move a few shards each and are skipped).
 */
export function viewNarrator(write: (line: string) => void): (view: View) => void {
  let last: View | undefined;
  const ids = (v: View): string => v.members.map((m) => m.id).join(',');
  return (view) => {
    const worth =
      last === undefined ||
      view.transitional !== last.transitional ||
      view.leader !== last.leader ||
      ids(view) !== ids(last) ||
      (handingOff(last) && !handingOff(view));
    last = view;
    if (worth) write(`  ${describeView(view)}`);
  };
}

export interface StatusLineOptions {
  readonly cluster: LocalCluster;
  readonly load: DepositLoad;
  readonly lag: ReplicaLag | undefined;
  /** performance.now() when the load started. */
  readonly loadStart: number;
  readonly write: (line: string) => void;
}

/** A status line every second until the returned stop is called. */
export function startStatusLine(options: StatusLineOptions): () => void {
  const { cluster, load, lag, loadStart, write } = options;
  let lastTick = loadStart;
  let lastAcked = 0;
  const status = setInterval(() => {
    const now = performance.now();
    const rate = ((load.acknowledged - lastAcked) * 1000) / (now - lastTick);
    lastTick = now;
    lastAcked = load.acknowledged;
    const view = cluster.views.latest;
    const counts = view === null ? new Map<string, number>() : primariesByMember(view);
    const shards = cluster.workers
      .map(
        (w) =>
          `${w.id} ${w.exit !== null || (view !== null && !counts.has(w.id)) ? (w.exit !== null ? 'down' : '-') : (counts.get(w.id) ?? 0)}`,
      )
      .join(' ');
    write(
      `${pad(secs(now - loadStart), 7)} view ${view?.viewId ?? '-'}  leader ${view?.leader ?? '-'}  ` +
        `members ${view?.members.length ?? 0}  shards ${shards}  ${pad(`${fmt(rate)} cmd/s`, 11)} ` +
        `acknowledged ${fmt(load.acknowledged)}  in flight ${load.inFlight}  ambiguous ${load.ambiguous}  replica lag ${lag === undefined ? '-' : lag.now()}`,
    );
  }, 1_000);
  return () => clearInterval(status);
}
