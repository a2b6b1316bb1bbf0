/**
 * Secondary placement: where each shard's other copies go once primaries
 * are settled. Its own file because it is most of placement and needs only
 * where the primaries ended up, not how they were chosen.
 */
import { type Draft, NONE } from './shardDraft.js';
import type { Member } from './view.js';

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
export class SecondaryPlanner {
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
        this.shift(
          this.members.flatMap((_, m) => (this.room(m) ? [m] : [])),
          (m) => m === over,
        );
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
    for (let changed = true; changed;) {
      changed = false;
      // Secondaries found stuck in this pass, by what the search depends on (besides the secondary): the
      // shard's zones and PENDING target. A change may unstick one, but then there is another pass, and
      // the last pass has no change: it is exact.
      const stuck = new Map<string, Set<number>>();
      this.drafts.forEach((d, s) => {
        const zones = this.zonesOfCopies(s);
        if (zones.length === d.replicas.length + (d.primary === NONE ? 0 : 1) || zones.length === this.zoneCount)
          return;
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
