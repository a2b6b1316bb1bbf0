/**
 * Primary placement: who serves each shard. The previous map is carried
 * over, shards without a live primary fail over at once, and surplus
 * primaries are handed off towards the balance target, within the budget
 * of concurrent moves.
 */
import type { PlacementInput } from './placement.js';
import { type Draft, NONE } from './shardDraft.js';
import type { Member } from './view.js';

/**
 * The previous map restricted to live members. A hand-off survives only if
 * both ends are still here (and the target still promotable); if its target
 * left it falls back to the old primary, if the old primary left the target
 * has caught up enough to take over. A shard with no live primary is left
 * for failOver.
 */
export function resolvePrevious(input: PlacementInput): Draft[] {
  const { members, previous } = input;
  const index = new Map(members.map((m, i) => [m.id, i]));
  const live = (id: string | null) => (id === null ? NONE : (index.get(id) ?? NONE));
  const drafts: Draft[] = [];
  for (let s = 0; s < input.shardCount; s++) {
    const prev = previous?.[s];
    if (prev === undefined) {
      drafts.push({ primary: NONE, next: NONE, replicas: [], epoch: 0, promoted: false });
      continue;
    }
    let primary = live(prev.primary);
    let next = prev.state === 'PENDING' ? live(prev.next) : NONE;
    if (next !== NONE && (next === primary || !members[next]!.promotable)) next = NONE;
    const promoted = primary === NONE && next !== NONE;
    if (promoted) [primary, next] = [next, NONE];
    const replicas: number[] = [];
    for (const id of prev.replicas) {
      const m = live(id);
      if (m !== NONE && m !== primary && !replicas.includes(m)) replicas.push(m);
    }
    drafts.push({ primary, next, replicas, epoch: prev.epoch + (promoted ? 1 : 0), promoted });
  }
  return drafts;
}

/** Whoever will own the shard once hand-offs complete: what balance is measured on. */
const owner = (d: Draft) => (d.next === NONE ? d.primary : d.next);

function primaryLoads(drafts: readonly Draft[], memberCount: number): number[] {
  const load = new Array<number>(memberCount).fill(0);
  for (const d of drafts) {
    const o = owner(d);
    if (o !== NONE) load[o] = load[o]! + 1;
  }
  return load;
}

/**
 * Shards without a live primary get one at once: a synchronized promotable
 * secondary if there is one (it has the data warm), else any promotable
 * member (it activates cold from the journal). Least loaded first, so a lost
 * member's primaries spread over the survivors.
 */
export function failOver(drafts: Draft[], input: PlacementInput): void {
  const { members } = input;
  const synchronized = input.synchronized ?? (() => true);
  const promotable = members.flatMap((m, i) => (m.promotable ? [i] : []));
  const load = primaryLoads(drafts, members.length);
  const leastLoaded = (candidates: readonly number[]) =>
    candidates.reduce((best, m) => (best === NONE || load[m]! < load[best]! ? m : best), NONE);
  drafts.forEach((d, s) => {
    if (d.primary !== NONE) return;
    const warm = d.replicas
      .filter((m) => members[m]!.promotable && synchronized(s, members[m]!.id))
      .sort((a, b) => a - b);
    const chosen = leastLoaded(warm.length > 0 ? warm : promotable);
    if (chosen === NONE) return;
    d.primary = chosen;
    d.replicas = d.replicas.filter((m) => m !== chosen);
    d.epoch++;
    d.promoted = true;
    load[chosen] = load[chosen]! + 1;
  });
}

/**
 * Targets: floor or ceil of S/p per promotable member, the ceilings going to
 * the members that already hold the most (fewest moves). Surplus shards are
 * handed off, first to a member that already has a secondary of the shard,
 * and no more than `budget` of them. A shard that just failed over stays put
 * this time, so a failover view never also starts a hand-off of that shard.
 * With `drainOnly`, only shards on members that may not be primaries move.
 */
export function rebalancePrimaries(
  drafts: Draft[],
  members: readonly Member[],
  budget: number,
  drainOnly = false,
): void {
  const promotable = members.flatMap((m, i) => (m.promotable ? [i] : []));
  if (promotable.length === 0 || budget <= 0) return;
  const load = primaryLoads(drafts, members.length);
  const target = new Array<number>(members.length).fill(0);
  const base = Math.floor(drafts.length / promotable.length);
  let extra = drafts.length % promotable.length;
  for (const m of [...promotable].sort((a, b) => load[b]! - load[a]! || a - b)) {
    target[m] = base + (extra-- > 0 ? 1 : 0);
  }
  const surplus = load.map((l, m) => Math.max(0, l - target[m]!));
  const deficit = load.map((l, m) => Math.max(0, target[m]! - l));
  const mostWanting = (candidates: readonly number[]) =>
    candidates.reduce((best, m) => (deficit[m]! > (best === NONE ? 0 : deficit[best]!) ? m : best), NONE);
  for (const warmOnly of [true, false]) {
    for (const d of drafts) {
      if (budget <= 0) return;
      if (d.primary === NONE || d.next !== NONE || d.promoted || surplus[d.primary]! === 0) continue;
      if (drainOnly && members[d.primary]!.promotable) continue;
      const to = mostWanting(warmOnly ? [...d.replicas].sort((a, b) => a - b) : promotable);
      if (to === NONE) continue;
      d.next = to;
      surplus[d.primary] = surplus[d.primary]! - 1;
      deficit[to] = deficit[to]! - 1;
      budget--;
    }
  }
}
