/**
 * Placement around held members (safeguards.ts): silent members kept in
 * the view because they may not be dropped. Their primaries stay theirs,
 * unserved, and nothing new goes to them; the rest of the map is placed
 * among the live members as usual.
 */
import { placeShards, type PlacementInput } from './placement.js';
import type { ShardAssignment } from './view.js';

/**
 * The map placed with `held` members kept out of it: a shard whose primary
 * is held stays as it is (less any copy on a held member); on every other
 * shard a hand-off to a held member is called off and its copies there are
 * dropped, and placement (on `input.members`, the live members) decides the
 * rest. Without held members this is placeShards itself.
 */
export function placeAroundHeld(
  held: ReadonlySet<string>,
  previous: readonly ShardAssignment[] | undefined,
  input: Omit<PlacementInput, 'previous'>,
): ShardAssignment[] {
  if (held.size === 0 || previous === undefined) return placeShards({ ...input, previous });
  const cleared = previous.map((s): ShardAssignment => {
    const replicas = s.replicas.filter((r) => !held.has(r));
    if (s.primary !== null && held.has(s.primary)) return { ...s, replicas };
    if (s.next !== null && held.has(s.next)) return { ...s, replicas, state: 'ACTIVE', next: null };
    return { ...s, replicas };
  });
  const open = cleared.flatMap((s, i) => (s.primary !== null && held.has(s.primary) ? [] : [i]));
  if (open.length === 0) return cleared;
  const synchronized = input.synchronized;
  const placed = placeShards({
    ...input,
    shardCount: open.length,
    previous: open.map((i) => cleared[i]!),
    ...(synchronized !== undefined && { synchronized: (s: number, w: string) => synchronized(open[s]!, w) }),
  });
  const out = cleared.slice();
  open.forEach((shard, k) => (out[shard] = placed[k]!));
  return out;
}
