/**
 * Where every shard's copies live (DESIGN.md section 4), after Couchbase's
 * rebalance goals: primaries and secondaries spread evenly, a shard's copies
 * on different workers and, where the evenness allows, different zones,
 * minimal movement from the previous map, at most K hand-offs at once.
 *
 * Pure: the leader computes the next view from the last one, and any member
 * (or a test) recomputing it gets the same map.
 */
import type { Member, ShardAssignment } from './view.js';

/** Input no cluster could produce (a caller bug): thrown, never turned into a map. */
export class PlacementError extends Error {
  override readonly name = 'PlacementError';
}

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
}

const NONE = -1;

/** A shard while it is being planned; workers are indexes into the member list. */
interface Draft {
  primary: number;
  /** The hand-off target; NONE unless PENDING. */
  next: number;
  replicas: number[];
  epoch: number;
  /** Its primary changed in this placement (failover): not handed off again before the next one. */
  promoted: boolean;
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
  rebalancePrimaries(drafts, members, maxMoves - pending);
  new SecondaryPlanner(drafts, members, input.replicas).run();
  return drafts.map((d) => ({
    primary: d.primary === NONE ? null : members[d.primary]!.id,
    replicas: d.replicas.map((m) => members[m]!.id),
    state: d.primary === NONE ? 'DEAD' : d.next === NONE ? 'ACTIVE' : 'PENDING',
    next: d.next === NONE ? null : members[d.next]!.id,
    epoch: d.epoch,
  }));
}

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

/** Summary for status and tests: primaries and secondaries per member id (members holding nothing are absent). */
export function shardCounts(shards: readonly ShardAssignment[]): Map<string, { primaries: number; replicas: number }> {
  const counts = new Map<string, { primaries: number; replicas: number }>();
  const of = (id: string) => {
    let c = counts.get(id);
    if (c === undefined) counts.set(id, (c = { primaries: 0, replicas: 0 }));
    return c;
  };
  for (const shard of shards) {
    if (shard.primary !== null) of(shard.primary).primaries++;
    for (const r of shard.replicas) of(r).replicas++;
  }
  return counts;
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

/**
 * The previous map restricted to live members. A hand-off survives only if
 * both ends are still here (and the target still promotable); if its target
 * left it falls back to the old primary, if the old primary left the target
 * has caught up enough to take over. A shard with no live primary is left
 * for failOver.
 */
function resolvePrevious(input: PlacementInput): Draft[] {
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
function failOver(drafts: Draft[], input: PlacementInput): void {
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
 */
function rebalancePrimaries(drafts: Draft[], members: readonly Member[], budget: number): void {
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
      const to = mostWanting(warmOnly ? [...d.replicas].sort((a, b) => a - b) : promotable);
      if (to === NONE) continue;
      d.next = to;
      surplus[d.primary] = surplus[d.primary]! - 1;
      deficit[to] = deficit[to]! - 1;
      budget--;
    }
  }
}

/**
 * Secondaries. Evenness is the hard goal: every member ends within a band
 * [lo, hi] (hi - lo <= 1) found by water-filling, lower only for a member
 * that holds a copy of every shard it can; where greedy choice falls short,
 * chains of moves (shift) restore it. Zones are the soft goal: a shard's
 * copies go to different zones wherever moves and swaps that keep the band
 * allow. Existing secondaries are kept where the band allows.
 *
 * A PENDING shard's target keeps its secondary (it is catching up) but gets
 * no new one; the old primary gets none either.
 */
class SecondaryPlanner {
  /** Per member: its zone (as an index), secondaries held (count, and which shards), and its band. */
  private readonly zone: Int32Array;
  private readonly count: Int32Array;
  private readonly held: Set<number>[];
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  /** Per shard: how many secondaries it gets. */
  private readonly need: number[];
  private readonly zoneCount: number;
  /** Per zone, shards that may have no copy there (see shardsLacking). */
  private readonly lacking = new Map<number, number[]>();
  /** Scratch for bestNew: per zone, 1 while a copy of the shard at hand is there. */
  private readonly taken: Uint8Array;

  constructor(
    private readonly drafts: Draft[],
    private readonly members: readonly Member[],
    replicas: number,
  ) {
    const zones = new Map<string, number>();
    this.zone = Int32Array.from(members, (m) => {
      if (!zones.has(m.zone)) zones.set(m.zone, zones.size);
      return zones.get(m.zone)!;
    });
    this.zoneCount = zones.size;
    this.taken = new Uint8Array(zones.size);
    const n = members.length;
    this.count = new Int32Array(n);
    this.held = members.map(() => new Set<number>());
    const capacity = new Array<number>(n).fill(drafts.length);
    this.need = drafts.map((d) => {
      let candidates = n;
      for (const m of [d.primary, this.blockedNext(d)]) {
        if (m !== NONE) {
          candidates--;
          capacity[m] = capacity[m]! - 1;
        }
      }
      return Math.min(replicas, candidates);
    });
    const total = this.need.reduce((a, b) => a + b, 0);
    const filled = (level: number) => capacity.reduce((sum, c) => sum + Math.min(c, level), 0);
    let [low, high] = [0, drafts.length];
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (filled(mid) <= total) low = mid;
      else high = mid - 1;
    }
    this.lo = Int32Array.from(capacity, (c) => Math.min(c, low));
    this.hi = Int32Array.from(capacity, (c) => Math.min(c, low + 1));
  }

  run(): void {
    const previous = this.drafts.map((d) => d.replicas);
    this.drafts.forEach((d) => (d.replicas = []));
    this.keep(previous);
    this.drafts.forEach((_, s) => this.fill(s));
    this.raiseLow();
    this.separateZones();
  }

  /** The PENDING target if it is not already a secondary: it may not become one. */
  private blockedNext(d: Draft): number {
    return d.next !== NONE && !d.replicas.includes(d.next) ? d.next : NONE;
  }

  private pinned(s: number, m: number): boolean {
    return this.drafts[s]!.next === m;
  }

  private canHold(s: number, m: number): boolean {
    const d = this.drafts[s]!;
    return m !== d.primary && m !== d.next && !d.replicas.includes(m);
  }

  /** Whether a copy of shard s other than `except` is in zone z. */
  private zoneTaken(s: number, z: number, except = NONE): boolean {
    const d = this.drafts[s]!;
    if (d.primary !== NONE && d.primary !== except && this.zone[d.primary] === z) return true;
    for (const r of d.replicas) if (r !== except && this.zone[r] === z) return true;
    return false;
  }

  private room(m: number): boolean {
    return this.count[m]! < this.hi[m]!;
  }

  private owed(m: number): boolean {
    return this.count[m]! < this.lo[m]!;
  }

  private add(s: number, m: number): void {
    this.drafts[s]!.replicas.push(m);
    this.count[m] = this.count[m]! + 1;
    this.held[m]!.add(s);
  }

  private replace(s: number, from: number, to: number): void {
    const replicas = this.drafts[s]!.replicas;
    replicas[replicas.indexOf(from)] = to;
    this.count[from] = this.count[from]! - 1;
    this.count[to] = this.count[to]! + 1;
    this.held[from]!.delete(s);
    this.held[to]!.add(s);
  }

  /** Keeps existing secondaries up to each member's hi, zone-separated ones first; previous order preserved. */
  private keep(previous: readonly (readonly number[])[]): void {
    previous.forEach((replicas, s) => {
      const next = this.drafts[s]!.next;
      if (replicas.includes(next)) this.add(s, next);
    });
    for (const separatedOnly of [true, false]) {
      previous.forEach((replicas, s) => {
        for (const m of replicas) {
          if (this.drafts[s]!.replicas.length >= this.need[s]!) break;
          if (!this.canHold(s, m) || !this.room(m)) continue;
          if (separatedOnly && this.zoneTaken(s, this.zone[m]!)) continue;
          this.add(s, m);
        }
      });
    }
    this.drafts.forEach((d, s) => d.replicas.sort((a, b) => previous[s]!.indexOf(a) - previous[s]!.indexOf(b)));
  }

  /** New secondaries; if everyone with room is excluded from the shard, one without room joins and passes a secondary on. */
  private fill(s: number): void {
    const replicas = this.drafts[s]!.replicas;
    while (replicas.length < this.need[s]!) {
      const best = this.bestNew(s, true);
      if (best !== NONE) {
        this.add(s, best);
      } else {
        const over = this.bestNew(s, false);
        this.add(s, over);
        this.shift(this.members.flatMap((_, m) => (this.room(m) ? [m] : [])), (m) => m === over);
      }
    }
  }

  /** A fresh zone first, then a member still below lo, then the least loaded, then join order. (Hot: plain loops.) */
  private bestNew(s: number, withinBand: boolean): number {
    const d = this.drafts[s]!;
    const { count, lo, hi, zone, taken } = this;
    const copies = d.primary === NONE ? d.replicas : [d.primary, ...d.replicas];
    for (const m of copies) taken[zone[m]!] = 1;
    const shards = this.drafts.length;
    let best = NONE;
    let bestScore = Infinity;
    for (let m = 0; m < count.length; m++) {
      const c = count[m]!;
      if (withinBand && c >= hi[m]!) continue;
      const score = (taken[zone[m]!]! * 2 + (c < lo[m]! ? 0 : 1)) * shards + c;
      if (score < bestScore && this.canHold(s, m)) {
        best = m;
        bestScore = score;
      }
    }
    for (const m of copies) taken[zone[m]!] = 0;
    return best;
  }

  /** Members left below lo take a secondary from one above its lo: first where that separates zones, then along chains. */
  private raiseLow(): void {
    const above = (m: number) => this.count[m]! > this.lo[m]!;
    this.members.forEach((_, u) => {
      for (let s = 0; s < this.drafts.length && this.owed(u); s++) {
        if (!this.canHold(s, u)) continue;
        const z = this.zone[u]!;
        const x = this.drafts[s]!.replicas.find(
          (x) => above(x) && !this.pinned(s, x) && this.zoneTaken(s, this.zone[x]!, x) && !this.zoneTaken(s, z, x),
        );
        if (x !== undefined) this.replace(s, x, u);
      }
      while (this.owed(u) && this.shift([u], above)) {
        // one more moved to u
      }
    });
  }

  /**
   * Moves one secondary's worth of load from a donor to one of `receivers`,
   * along the shortest chain: the receiver takes a secondary from a member
   * that takes one from another ... that takes one from the donor. Returns
   * false if no chain exists.
   */
  private shift(receivers: readonly number[], isDonor: (m: number) => boolean): boolean {
    const via = new Map<number, { from: number; shard: number }>(); // member -> who takes its secondary, on which shard
    const queue = [...receivers];
    const seen = new Set(receivers);
    for (let i = 0; i < queue.length; i++) {
      const taker = queue[i]!;
      for (let s = 0; s < this.drafts.length; s++) {
        if (!this.canHold(s, taker)) continue;
        for (const giver of this.drafts[s]!.replicas) {
          if (seen.has(giver) || this.pinned(s, giver)) continue;
          seen.add(giver);
          via.set(giver, { from: taker, shard: s });
          if (!isDonor(giver)) {
            queue.push(giver);
            continue;
          }
          // Donor end first, so every step still finds its giver in place.
          for (let m = giver, step = via.get(m); step !== undefined; m = step.from, step = via.get(m)) {
            this.replace(step.shard, m, step.from);
          }
          return true;
        }
      }
    }
    return false;
  }

  /**
   * Removes zone collisions (a secondary in a zone another copy of its shard
   * uses) while the band holds: by moving the secondary to a member with room
   * in a zone the shard lacks, or by swapping it with a secondary of another
   * shard that lacks its zone. Every change removes a collision, so it ends;
   * it stops when no such move or swap is left.
   */
  private separateZones(): void {
    if (this.zoneCount < 2) return;
    for (let changed = true; changed; ) {
      changed = false;
      // Secondaries found stuck in this pass, by what the search depends on (besides the secondary): the
      // shard's zones and PENDING target. A change may unstick one, but then there is another pass, and
      // the last pass has no change: it is exact.
      const stuck = new Map<string, Set<number>>();
      this.drafts.forEach((d, s) => {
        const zones = this.zonesOfCopies(s);
        if (zones.length === d.replicas.length + (d.primary === NONE ? 0 : 1) || zones.length === this.zoneCount) return;
        const key = `${d.next} ${zones.join()}`;
        const stuckHere = stuck.get(key) ?? new Set<number>();
        stuck.set(key, stuckHere);
        for (const x of d.replicas) {
          if (this.pinned(s, x) || stuckHere.has(x) || !this.zoneTaken(s, this.zone[x]!, x)) continue;
          if (this.separate(s, x, zones)) {
            changed = true;
            return; // its zones changed: the next pass looks at this shard again
          }
          stuckHere.add(x);
        }
      });
    }
  }

  /** One move or swap that puts secondary x of shard s, which shares a zone, into a zone not among `zones` (the shard's). */
  private separate(s: number, x: number, zones: readonly number[]): boolean {
    const next = this.drafts[s]!.next;
    const fresh = (m: number) => m !== next && !zones.includes(this.zone[m]!);
    if (this.count[x]! > this.lo[x]!) {
      let y = NONE;
      for (let m = 0; m < this.members.length; m++) {
        if (fresh(m) && this.room(m) && (y === NONE || this.count[m]! < this.count[y]!)) y = m;
      }
      if (y !== NONE) {
        this.replace(s, x, y);
        return true;
      }
    }
    const z = this.zone[x]!;
    for (const [t, y] of this.swapCandidates(z, fresh)) {
      if (this.pinned(t, y) || !this.canHold(t, x) || this.zoneTaken(t, z)) continue;
      this.replace(s, x, y);
      this.replace(t, y, x);
      if (!this.zoneTaken(t, this.zone[y]!)) this.shardsLacking(this.zone[y]!).push(t);
      return true;
    }
    return false;
  }

  /**
   * Secondaries y (on shard t) passing `fresh`, on shards that may lack zone z:
   * every one, listed from whichever side is shorter.
   */
  private *swapCandidates(z: number, fresh: (m: number) => boolean): Generator<[number, number]> {
    const lacking = this.shardsLacking(z);
    const holders = this.members.flatMap((_, y) => (fresh(y) ? [y] : []));
    if (holders.reduce((sum, y) => sum + this.count[y]!, 0) < lacking.length) {
      for (const y of holders) for (const t of this.held[y]!) yield [t, y];
    } else {
      for (const t of lacking) for (const y of this.drafts[t]!.replicas) if (fresh(y)) yield [t, y];
    }
  }

  /** Distinct zones of the copies of shard s, ascending. */
  private zonesOfCopies(s: number): number[] {
    const d = this.drafts[s]!;
    const zones = d.primary === NONE ? [] : [this.zone[d.primary]!];
    for (const m of d.replicas) if (!zones.includes(this.zone[m]!)) zones.push(this.zone[m]!);
    return zones.sort((a, b) => a - b);
  }

  /** Shards that may have no copy in zone z (a superset: callers check again); listed when first asked. */
  private shardsLacking(z: number): number[] {
    let list = this.lacking.get(z);
    if (list === undefined) {
      list = [];
      for (let t = 0; t < this.drafts.length; t++) if (!this.zoneTaken(t, z)) list.push(t);
      this.lacking.set(z, list);
    }
    return list;
  }
}
