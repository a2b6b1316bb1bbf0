/**
 * The cluster view (DESIGN.md section 4): who is in the cluster, who leads,
 * and where every shard's copies live. One key-value entry holds it; only
 * the leader writes it, with compare-and-set on its revision, so every
 * member sees the same sequence of views. Plain data (msgpack-safe: null,
 * never undefined).
 */

/** A worker as the view knows it. */
export interface Member {
  /** Unique per process life: a restarted worker joins as a new member. */
  readonly id: string;
  readonly zone: string;
  /** False for remote disaster-recovery replicas: they host secondaries only. */
  readonly promotable: boolean;
  /** Join order, increasing: the live member that joined first leads. */
  readonly joined: number;
}

/**
 * Per shard, after Couchbase's vBucket states: ACTIVE (the primary serves
 * reads and writes), PENDING (handing off from `primary` to `next`: nobody
 * serves), DEAD (no copy can serve: no promotable member is left).
 * Secondaries are the REPLICA copies.
 */
export type ShardState = 'ACTIVE' | 'PENDING' | 'DEAD';

export interface ShardAssignment {
  /** The worker serving the shard (ACTIVE) or handing it off (PENDING); null when DEAD. */
  readonly primary: string | null;
  /** Secondaries, each on a different worker than the primary and each other. */
  readonly replicas: readonly string[];
  readonly state: ShardState;
  /** PENDING only: the worker taking the shard over. */
  readonly next: string | null;
  /** Increases every time the shard's primary changes, so a deposed primary's epoch is visibly old. */
  readonly epoch: number;
}

export interface View {
  /** Increases by one with every view written. */
  readonly viewId: number;
  /** Live members, in join order. */
  readonly members: readonly Member[];
  readonly leader: string;
  /** Secondaries per shard (cluster setting; 0: a shard fails over by cold activation from the journal). */
  readonly replicas: number;
  readonly shardCount: number;
  /** Index = shard. */
  readonly shards: readonly ShardAssignment[];
  /** Written first when members are lost: survivors only, before shards are reassigned. */
  readonly transitional: boolean;
  /** Shards promoted without a synchronized copy (forced failover): acknowledged writes may be missing. */
  readonly possibleDataLoss: readonly number[];
  /** The safeguards against cascading failover, as the leader last decided them (safeguards.ts). */
  readonly safeguards: Safeguards;
}

/**
 * Why a silent member is kept in the view instead of dropped: the quota of
 * automatic failovers ran out (`quota`), dropping it would leave fewer live
 * members than the minimum (`minimum`), or no live promotable member could
 * take its shards over (`last-copy`).
 */
export type HoldReason = 'quota' | 'minimum' | 'last-copy';

export const HOLD_REASONS: readonly HoldReason[] = ['quota', 'minimum', 'last-copy'];

/**
 * The safeguards against cascading failover (Couchbase's auto-failover
 * quota and minimum cluster size, Akka's down-all-when-unstable), in the
 * view so that a new leader carries them on and every reader sees them.
 * Times are the writing leader's clock, in ms.
 */
export interface Safeguards {
  /** Members dropped for silence (graceful leaves are not counted), oldest first: what the quota is counted on. */
  readonly dropped: readonly { readonly member: string; readonly at: number }[];
  /** When automatic failover stopped because the quota ran out; null while it runs. Only an operator's reset clears it. */
  readonly failoverHalted: number | null;
  /** Silent members kept in the view instead of dropped: their shards stay with them, unserved, until they speak or may go. */
  readonly held: readonly { readonly member: string; readonly reason: HoldReason }[];
  /** The current run of membership changes: when it began, and when the latest came. Null before the first. */
  readonly churn: { readonly since: number; readonly last: number } | null;
  /** When the leader stopped rebalancing primaries because the membership kept changing too long; null while it rebalances. */
  readonly unstable: number | null;
}

/** Nothing dropped, nothing held, nothing halted: a new cluster's safeguards, and those of a view written before they existed. */
export const NO_SAFEGUARDS: Safeguards = Object.freeze({
  dropped: [],
  failoverHalted: null,
  held: [],
  churn: null,
  unstable: null,
});

/**
 * The view as versions before the JSON document stored it (msgpack), and
 * the form every stored view is checked in (protocol/viewDocument.ts turns
 * a document into it): members by index and each shard as a short array of
 * small integers, `[primary, state, next, epoch, ...replicas]`, -1 for none.
 */
export interface PackedView {
  readonly v: 1;
  readonly viewId: number;
  readonly members: readonly [id: string, zone: string, promotable: boolean, joined: number][];
  readonly leader: string;
  readonly replicas: number;
  readonly transitional: boolean;
  readonly possibleDataLoss: readonly number[];
  readonly shards: readonly (readonly number[])[];
  /** Absent in views written before safeguards existed (read as NO_SAFEGUARDS). Held members by id, times in ms. */
  readonly safeguards?: PackedSafeguards;
}

export interface PackedSafeguards {
  readonly dropped: readonly [member: string, at: number][];
  readonly failoverHalted: number | null;
  readonly held: readonly [member: string, reason: HoldReason][];
  readonly churn: readonly [since: number, last: number] | null;
  readonly unstable: number | null;
}

const STATES: readonly ShardState[] = ['ACTIVE', 'PENDING', 'DEAD'];

export function packView(view: View): PackedView {
  const index = new Map<string, number>(view.members.map((m, i) => [m.id, i]));
  const ix = (id: string | null): number => {
    if (id === null) return -1;
    const i = index.get(id);
    if (i === undefined) throw new RangeError(`view ${view.viewId}: shard copy on ${id}, who is not a member`);
    return i;
  };
  return {
    v: 1,
    viewId: view.viewId,
    members: view.members.map((m) => [m.id, m.zone, m.promotable, m.joined]),
    leader: view.leader,
    replicas: view.replicas,
    transitional: view.transitional,
    possibleDataLoss: view.possibleDataLoss,
    shards: view.shards.map((s) => [
      ix(s.primary),
      STATES.indexOf(s.state),
      ix(s.next),
      s.epoch,
      ...s.replicas.map(ix),
    ]),
    safeguards: packSafeguards(view),
  };
}

function packSafeguards(view: View): PackedSafeguards {
  const g = view.safeguards;
  for (const h of g.held) {
    if (!view.members.some((m) => m.id === h.member))
      throw new RangeError(`view ${view.viewId}: ${h.member} is held but not a member`);
  }
  return {
    dropped: g.dropped.map((d) => [d.member, d.at]),
    failoverHalted: g.failoverHalted,
    held: g.held.map((h) => [h.member, h.reason]),
    churn: g.churn === null ? null : [g.churn.since, g.churn.last],
    unstable: g.unstable,
  };
}

const count = (n: unknown, least = 0): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= least;

/** Throws a RangeError naming what is wrong when `packed` is not a view this version wrote. */
export function unpackView(packed: unknown): View {
  const p = packed as PackedView;
  if (typeof p !== 'object' || p === null || p.v !== 1 || !Array.isArray(p.members) || !Array.isArray(p.shards)) {
    throw new RangeError('not a packed cluster view (version 1)');
  }
  // Every number the membership machine steers by is checked: a view id that is no count would never be overtaken.
  if (!count(p.viewId, 1)) throw new RangeError(`view id ${JSON.stringify(p.viewId)} is not a whole number from 1`);
  const where = `view ${p.viewId}`;
  if (typeof p.leader !== 'string') throw new RangeError(`${where}: no leader`);
  if (!count(p.replicas)) throw new RangeError(`${where}: replicas is not a count`);
  if (typeof p.transitional !== 'boolean') throw new RangeError(`${where}: transitional is not a boolean`);
  if (!Array.isArray(p.possibleDataLoss) || !p.possibleDataLoss.every((n) => count(n)))
    throw new RangeError(`${where}: possibleDataLoss is not a list of shards`);
  const members: Member[] = p.members.map((m, i) => {
    const [id, zone, promotable, joined] = Array.isArray(m) ? m : [];
    if (typeof id !== 'string' || id.length === 0 || typeof zone !== 'string' || typeof promotable !== 'boolean')
      throw new RangeError(`${where}: member ${i} is malformed`);
    if (!count(joined)) throw new RangeError(`${where}: member ${i} has no join order`);
    return { id, zone, promotable, joined };
  });
  const id = (i: number | undefined): string | null => {
    if (i === undefined || i === -1) return null;
    const m = typeof i === 'number' ? members[i] : undefined;
    if (m === undefined) throw new RangeError(`${where}: member index ${i} out of range`);
    return m.id;
  };
  const shards = p.shards.map((s, n): ShardAssignment => {
    if (!Array.isArray(s)) throw new RangeError(`${where}: shard ${n} is malformed`);
    const [primary, state, next, epoch, ...replicas] = s;
    const st = STATES[state ?? -1];
    if (st === undefined || !count(epoch)) throw new RangeError(`${where}: shard ${n} is malformed`);
    const copies = replicas.map((r: number) => id(r));
    if (copies.some((r) => r === null)) throw new RangeError(`${where}: shard ${n} lists a missing secondary`);
    return { primary: id(primary), state: st, next: id(next), epoch, replicas: copies as string[] };
  });
  return {
    viewId: p.viewId,
    members,
    leader: p.leader,
    replicas: p.replicas,
    shardCount: shards.length,
    shards,
    transitional: p.transitional,
    possibleDataLoss: p.possibleDataLoss,
    safeguards: p.safeguards === undefined ? NO_SAFEGUARDS : unpackSafeguards(p.safeguards, members, where),
  };
}

/** A time in ms from the epoch: a finite number from 0 (a clock may give fractions: virtual ones do). */
const time = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
const timeOrNull = (n: unknown): n is number | null => n === null || time(n);

/** Throws a RangeError naming what is wrong; every member it names as held must be in `members`. */
function unpackSafeguards(packed: unknown, members: readonly Member[], where: string): Safeguards {
  const g = packed as PackedSafeguards;
  const bad = (what: string): RangeError => new RangeError(`${where}: safeguards ${what}`);
  if (typeof g !== 'object' || g === null || Array.isArray(g)) throw bad('is not a map');
  if (!Array.isArray(g.dropped)) throw bad('dropped is not a list');
  const dropped = g.dropped.map((d, i) => {
    const [member, at] = Array.isArray(d) ? d : [];
    if (typeof member !== 'string' || member.length === 0 || !time(at)) throw bad(`dropped ${i} is malformed`);
    return { member, at };
  });
  if (!timeOrNull(g.failoverHalted)) throw bad('failoverHalted is not a time or null');
  if (!Array.isArray(g.held)) throw bad('held is not a list');
  const held = g.held.map((h, i) => {
    const [member, reason] = Array.isArray(h) ? h : [];
    if (typeof member !== 'string' || !members.some((m) => m.id === member))
      throw bad(`held ${i} is not a member of the view`);
    if (!HOLD_REASONS.includes(reason as HoldReason)) throw bad(`held ${i} has no known reason`);
    return { member, reason: reason as HoldReason };
  });
  let churn: Safeguards['churn'] = null;
  if (g.churn !== null) {
    const [since, last] = Array.isArray(g.churn) ? g.churn : [];
    if (!time(since) || !time(last) || last < since) throw bad('churn is not [since, last] with since <= last');
    churn = { since, last };
  }
  if (!timeOrNull(g.unstable)) throw bad('unstable is not a time or null');
  return { dropped, failoverHalted: g.failoverHalted, held, churn, unstable: g.unstable };
}
