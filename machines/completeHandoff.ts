/**
 * Hand-off completion: the one change to a PENDING shard the leader makes
 * outside placement, once the old primary has let go.
 */
import { PlacementError } from './placementError.js';
import type { ShardAssignment } from './view.js';

/**
 * The old primary has released a PENDING shard: `next` becomes the ACTIVE
 * primary with epoch + 1. The old primary is dropped from the shard and
 * `next` from its secondaries; the next placement refills them.
 */
export function completeHandoff(shards: readonly ShardAssignment[], shard: number): ShardAssignment[] {
  const current = shards[shard];
  if (current === undefined) throw new PlacementError(`shard ${shard} does not exist (shardCount ${shards.length})`);
  const next = current.next;
  if (current.state !== 'PENDING' || next === null) {
    throw new PlacementError(`shard ${shard} is ${current.state}, not PENDING with a next primary`);
  }
  const done: ShardAssignment = {
    primary: next,
    replicas: current.replicas.filter((r) => r !== next && r !== current.primary),
    state: 'ACTIVE',
    next: null,
    epoch: current.epoch + 1,
  };
  return shards.map((s, i) => (i === shard ? done : s));
}
