/**
 * Member removal: the shard map of a transitional view, written as soon as
 * members are lost and before any new placement.
 */
import type { ShardAssignment } from './view.js';

/**
 * The transitional map when members are lost: their copies removed; a shard
 * whose primary was lost keeps primary null and state DEAD until the regular
 * view promotes someone, and a hand-off to a lost member is called off.
 */
export function withoutMembers(shards: readonly ShardAssignment[], lost: ReadonlySet<string>): ShardAssignment[] {
  return shards.map((shard) => {
    const replicas = shard.replicas.filter((r) => !lost.has(r));
    if (shard.primary === null || lost.has(shard.primary)) {
      return { primary: null, replicas, state: 'DEAD', next: null, epoch: shard.epoch };
    }
    if (shard.next !== null && lost.has(shard.next)) {
      return { primary: shard.primary, replicas, state: 'ACTIVE', next: null, epoch: shard.epoch };
    }
    return { ...shard, replicas };
  });
}
