/**
 * The working form of a shard while placement plans it: workers as indexes
 * into the member list, mutable, shared by primary and secondary placement
 * and turned back into a ShardAssignment at the end.
 */

/** No worker (a member index that is not there). */
export const NONE = -1;

/** A shard while it is being planned; workers are indexes into the member list. */
export interface Draft {
  primary: number;
  /** The hand-off target; NONE unless PENDING. */
  next: number;
  replicas: number[];
  epoch: number;
  /** Its primary changed in this placement (failover): not handed off again before the next one. */
  promoted: boolean;
}
