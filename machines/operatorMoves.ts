/**
 * Operator failovers (MOVE): whether the leader can carry one out, and how
 * accepted ones are laid onto the shard map before placement. Separate from
 * view planning because the statechart answers a MOVE at once, before any
 * view is planned.
 */
import { alive, leaderOf } from './heartbeats.js';
import type { MembershipContext, MoveRequest } from './membership.js';
import type { ShardAssignment } from './view.js';

/** Why this leader cannot carry out `r` now, or null when it can. */
export function refuseMove(ctx: MembershipContext, r: MoveRequest): string | null {
  if (leaderOf(ctx) !== ctx.self.id) return `not the leader (${leaderOf(ctx) ?? 'none'} is)`;
  const view = ctx.view;
  if (view === null) return 'no view yet';
  const s = view.shards[r.shard];
  if (!Number.isInteger(r.shard) || s === undefined) return `no shard ${r.shard} (0..${view.shardCount - 1})`;
  const target = view.members.find((m) => m.id === r.to);
  if (target === undefined || !alive(ctx, r.to)) return `${r.to} is not a live member`;
  if (!target.promotable) return `${r.to} is not promotable`;
  if (s.primary === r.to && s.state === 'ACTIVE') return `${r.to} is already the primary of shard ${r.shard}`;
  if (!r.force && s.state !== 'ACTIVE')
    return `shard ${r.shard} is ${s.state}; only an ACTIVE shard can be swapped (use force)`;
  // A held member (silent, kept by the safeguards) would never let go of the shard: only force moves it.
  if (!r.force && s.primary !== null && !alive(ctx, s.primary))
    return `shard ${r.shard}'s primary ${s.primary} is silent (held in the view); only a forced failover moves it`;
  return null;
}

/** The operator's moves laid onto the map before placement, which then keeps them (they leave it balanced). */
export function applyMoves(
  ctx: MembershipContext,
  shards: ShardAssignment[],
  possibleDataLoss: number[],
): ShardAssignment[] {
  const out = shards.slice();
  for (const r of ctx.moves) {
    const s = out[r.shard];
    if (s === undefined || refuseMove(ctx, r) !== null) continue;
    if (r.force) {
      // One new primary per view: several forced moves of a shard in one view raise its epoch once, so an
      // epoch never passes the view id (which a first view over a spoiled key counts on).
      out[r.shard] = {
        primary: r.to,
        replicas: s.replicas.filter((w) => w !== r.to),
        state: 'ACTIVE',
        next: null,
        epoch: shards[r.shard]!.epoch + 1,
      };
      if (!possibleDataLoss.includes(r.shard)) possibleDataLoss.push(r.shard);
      continue;
    }
    const from = s.primary!;
    out[r.shard] = { ...s, state: 'PENDING', next: r.to };
    // One of the target's shards goes the other way, preferably one the old primary already holds a copy of.
    const back = out
      .map((x, i) => ({ x, i }))
      .filter(({ x, i }) => i !== r.shard && x.state === 'ACTIVE' && x.primary === r.to)
      .sort((a, b) => Number(b.x.replicas.includes(from)) - Number(a.x.replicas.includes(from)) || a.i - b.i)[0];
    if (back !== undefined) out[back.i] = { ...back.x, state: 'PENDING', next: from };
  }
  return out;
}
