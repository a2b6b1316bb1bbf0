import type { Bus, Subscription } from '../index.js';
import {
  decode,
  type JournalFollow,
  journalStreamFilter,
  journalStreamName,
  parseSubject,
  replicaReportFilter,
} from '../internal.js';

/**
 * Replica lag as an onlooker sees it: per shard, how many journal entries
 * its secondaries have not reported applied yet (the most behind of them).
 * It follows the journal and listens to the secondaries' reports; it is not
 * a member and changes nothing.
 */
export interface ReplicaLag {
  /** Entries behind on the most lagging shard now (0 when every secondary is caught up). */
  now(): number;
  /** The largest lag seen so far. */
  readonly max: number;
  /** Per secondary that reported lately: entries behind on its most lagging shard, as far as entries seen since the start tell. */
  byWorker(): Map<string, number>;
  stop(): void;
}

export async function watchReplicaLag(bus: Bus, cluster: string, silentAfterMs = 2_000): Promise<ReplicaLag> {
  /** Per shard: journal sequences not yet applied by all of its reporting secondaries. */
  const pending = new Map<number, number[]>();
  /** Per shard and secondary: the last sequence it reported applied, and when. A silent one (dead, moved) no longer counts. */
  const applied = new Map<number, Map<string, { seq: number; at: number }>>();
  let max = 0;
  const lagOf = (shard: number): number => {
    const seqs = pending.get(shard) ?? [];
    const now = performance.now();
    const live = [...(applied.get(shard)?.values() ?? [])].filter((r) => now - r.at < silentAfterMs);
    if (live.length === 0) return 0;
    const slowest = Math.min(...live.map((r) => r.seq));
    const keep = seqs.filter((s) => s > slowest);
    pending.set(shard, keep);
    return keep.length;
  };
  const sub: Subscription = bus.subscribe(replicaReportFilter(cluster), (m) => {
    const r = decode(m.data, { where: 'replica report' }) as { w?: unknown; s?: unknown; q?: unknown };
    if (typeof r.w !== 'string' || typeof r.s !== 'number' || typeof r.q !== 'number') return;
    let byWorker = applied.get(r.s);
    if (byWorker === undefined) applied.set(r.s, (byWorker = new Map()));
    byWorker.set(r.w, { seq: Math.max(byWorker.get(r.w)?.seq ?? 0, r.q), at: performance.now() });
  });
  const journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const follow: JournalFollow = await journal.follow(journalStreamFilter(cluster), {}, (e) => {
    const target = parseSubject(e.subject);
    if (target.kind !== 'jrnl') return;
    const seqs = pending.get(target.shard) ?? [];
    seqs.push(e.seq);
    pending.set(target.shard, seqs);
  });
  return {
    now: () => {
      let worst = 0;
      for (const shard of pending.keys()) worst = Math.max(worst, lagOf(shard));
      max = Math.max(max, worst);
      return worst;
    },
    get max() {
      return max;
    },
    byWorker: () => {
      const now = performance.now();
      const out = new Map<string, number>();
      for (const [shard, byWorker] of applied) {
        const seqs = pending.get(shard) ?? [];
        for (const [worker, r] of byWorker) {
          if (now - r.at >= silentAfterMs) continue;
          const behind = seqs.filter((s) => s > r.seq).length;
          out.set(worker, Math.max(out.get(worker) ?? 0, behind));
        }
      }
      return out;
    },
    stop: () => {
      follow.stop();
      sub.unsubscribe();
    },
  };
}
