/**
 * Where every shard's copies live (DESIGN.md section 4), after Couchbase's
 * rebalance goals: primaries and secondaries spread evenly, a shard's copies
 * on different workers and, where the evenness allows, different zones,
 * minimal movement from the previous map, at most K hand-offs at once.
 *
 * Pure: the leader computes the next view from the last one, and any member
 * (or a test) recomputing it gets the same map.
 *
 * This file is the entry: the input, its checks, and the order of the
 * steps; each step lives in its own file.
 */
import { PlacementError } from './placementError.js';
import { failOver, rebalancePrimaries, resolvePrevious } from './primaryPlacement.js';
import { SecondaryPlanner } from './secondaryPlacement.js';
import { NONE } from './shardDraft.js';
import type { Member, ShardAssignment } from './view.js';

export { completeHandoff } from './completeHandoff.js';
export { PlacementError } from './placementError.js';
export { withoutMembers } from './withoutMembers.js';

export interface PlacementInput {
  shardCount: number;
  /** Live members in join order. */
  members: readonly Member[];
  /** Secondaries wanted per shard (capped by how many other members exist). */
  replicas: number;
  /** The current map (from the previous view), if any; length shardCount. */
  previous?: readonly ShardAssignment[];
  /** At most this many shards in hand-off (PENDING) at once, counting ones already PENDING in `previous`. Default 8. */
  maxConcurrentMoves?: number;
  /** Whether a worker's copy of a shard is synchronized (default: all are). Used to choose whom to promote. */
  synchronized?: (shard: number, worker: string) => boolean;
  /**
   * `full` (default): primaries are handed off towards the balance. `drain`:
   * only off members that may not hold primaries (leavers, made
   * non-promotable), so nothing else moves; failovers happen either way.
   */
  rebalance?: 'full' | 'drain';
}

/**
 * The shard map for the next regular view. Failovers happen at once; moves
 * of a live primary become hand-offs (PENDING), at most maxConcurrentMoves
 * at a time, so later views continue a rebalance. Placing its own result
 * again returns it unchanged, so the leader writes a view only when
 * something happened.
 */
export function placeShards(input: PlacementInput): ShardAssignment[] {
  const maxMoves = validate(input);
  const { members } = input;
  const drafts = resolvePrevious(input);
  failOver(drafts, input);
  const pending = drafts.filter((d) => d.next !== NONE).length;
  rebalancePrimaries(drafts, members, maxMoves - pending, input.rebalance === 'drain');
  new SecondaryPlanner(drafts, members, input.replicas).run();
  return drafts.map((d) => ({
    primary: d.primary === NONE ? null : members[d.primary]!.id,
    replicas: d.replicas.map((m) => members[m]!.id),
    state: d.primary === NONE ? 'DEAD' : d.next === NONE ? 'ACTIVE' : 'PENDING',
    next: d.next === NONE ? null : members[d.next]!.id,
    epoch: d.epoch,
  }));
}

/** Returns the effective maxConcurrentMoves. */
function validate(input: PlacementInput): number {
  const { shardCount, replicas, members, previous } = input;
  const maxMoves = input.maxConcurrentMoves ?? 8;
  if (!Number.isInteger(shardCount) || shardCount < 1) {
    throw new PlacementError(`shardCount must be a positive integer, got ${shardCount}`);
  }
  if (!Number.isInteger(replicas) || replicas < 0) {
    throw new PlacementError(`replicas must be a non-negative integer, got ${replicas}`);
  }
  const ids = new Set<string>();
  for (const m of members) {
    if (ids.has(m.id)) throw new PlacementError(`duplicate member id ${JSON.stringify(m.id)}`);
    ids.add(m.id);
  }
  if (previous !== undefined && previous.length !== shardCount) {
    throw new PlacementError(`previous has ${previous.length} shards but shardCount is ${shardCount}`);
  }
  if (!(maxMoves >= 1) || !(Number.isInteger(maxMoves) || maxMoves === Infinity)) {
    throw new PlacementError(`maxConcurrentMoves must be an integer >= 1 or Infinity, got ${maxMoves}`);
  }
  return maxMoves;
}
