import type { Clock } from '../../bus/clock.js';
import { TooManyWatchesError } from '../../protocol/errors.js';
import { DEFAULT_WATCH_LEASE } from '../../protocol/requests.js';

/** `watched`: patches only of sessions some client watches (and of shards just taken up); `always`: every patch. */
export type PatchPublishing = 'always' | 'watched';

export interface InterestOptions {
  readonly clock: Clock;
  readonly patches?: PatchPublishing;
  /** Most sessions one client may watch on this worker at once (default 10 000). */
  readonly perClient?: number;
  /** Most leases held in all (default 200 000): past it every patch is published until there is room again. */
  readonly capacity?: number;
  /**
   * How long every patch of a shard is published after this worker takes
   * it up (ms): a watcher renews at a third of its lease (at most 20 s), so
   * its renewal reaches the new primary within this (default 30 000).
   */
  readonly takeoverGrace?: number;
}

/** One watched session: each client's lease end, and the latest of them (what a commit asks). */
interface Watched {
  readonly leases: Map<string, number>;
  until: number;
}

/**
 * Which sessions some client is watching now, so a commit publishes its
 * patch only then. Kept by the worker, not by the session, so a watch
 * outlives the session's passivation. Leases are on the injected clock;
 * lapsed ones go as they are met and in a sweep every `takeoverGrace`.
 * Correctness does not rest on the timing: every watch's answer carries the
 * session's seq, and a subscriber behind it catches up from the journal.
 */
export class WatchInterest {
  readonly #clock: Clock;
  readonly #always: boolean;
  readonly #perClient: number;
  readonly #capacity: number;
  readonly #grace: number;
  /** app → id → leases: two lookups, no key built per commit. */
  readonly #apps = new Map<string, Map<string, Watched>>();
  /** Leases per client, for its limit. */
  readonly #perClientCount = new Map<string, number>();
  /** Shard → until when all its patches are published (taken up lately). */
  readonly #takenUp = new Map<number, number>();
  #size = 0;
  /** Full: every patch is published until then. */
  #fullUntil = 0;
  #nextSweep: number;

  constructor(options: InterestOptions) {
    this.#clock = options.clock;
    this.#always = options.patches === 'always';
    this.#perClient = options.perClient ?? 10_000;
    this.#capacity = options.capacity ?? 200_000;
    this.#grace = options.takeoverGrace ?? DEFAULT_WATCH_LEASE;
    this.#nextSweep = this.#clock.now() + this.#grace;
  }

  /** Leases held now (lapsed ones not yet swept included). */
  get size(): number {
    return this.#size;
  }

  /**
   * `client` watches `app/id` for `lease` ms from now; returns the lease
   * granted, or TooManyWatchesError when the client holds its limit.
   */
  watch(app: string, id: string, client: string, lease: number = DEFAULT_WATCH_LEASE): number | TooManyWatchesError {
    const now = this.#clock.now();
    if (now >= this.#nextSweep || this.#size >= this.#capacity) this.#sweep(now);
    let ids = this.#apps.get(app);
    const watched = ids?.get(id);
    const renewal = watched?.leases.has(client) === true;
    if (!renewal) {
      const held = this.#perClientCount.get(client) ?? 0;
      if (held >= this.#perClient) return new TooManyWatchesError(client, this.#perClient);
      if (this.#size >= this.#capacity) {
        // Full of other clients' leases: publish everything a lease long rather than refuse a well-behaved one.
        this.#fullUntil = now + lease;
        return lease;
      }
      this.#perClientCount.set(client, held + 1);
      this.#size++;
    }
    const until = now + lease;
    if (watched !== undefined) {
      watched.leases.set(client, until);
      if (until > watched.until) watched.until = until;
      return lease;
    }
    if (ids === undefined) {
      ids = new Map();
      this.#apps.set(app, ids);
    }
    ids.set(id, { leases: new Map([[client, until]]), until });
    return lease;
  }

  /** `client` no longer watches `app/id`. */
  unwatch(app: string, id: string, client: string): void {
    const ids = this.#apps.get(app);
    const watched = ids?.get(id);
    if (ids === undefined || watched === undefined || !watched.leases.delete(client)) return;
    this.#released(client);
    if (watched.leases.size === 0) return this.#drop(app, ids, id);
    watched.until = 0;
    for (const until of watched.leases.values()) if (until > watched.until) watched.until = until;
  }

  /** This worker took these shards up (started, promoted, or given them): publish all their patches a while. */
  takenUp(shards: Iterable<number>): void {
    const until = this.#clock.now() + this.#grace;
    for (const shard of shards) this.#takenUp.set(shard, until);
  }

  /** Whether a commit of `app/id` on `shard` publishes its patch: on every commit, so no allocation. */
  wants(app: string, id: string, shard: number): boolean {
    if (this.#always) return true;
    const now = this.#clock.now();
    if (now < this.#fullUntil) return true;
    const grace = this.#takenUp.get(shard);
    if (grace !== undefined) {
      if (now < grace) return true;
      this.#takenUp.delete(shard);
    }
    const watched = this.#apps.get(app)?.get(id);
    return watched !== undefined && now < watched.until;
  }

  #sweep(now: number): void {
    this.#nextSweep = now + this.#grace;
    for (const [app, ids] of this.#apps) {
      for (const [id, watched] of ids) {
        if (now < watched.until) {
          for (const [client, until] of watched.leases) {
            if (until > now) continue;
            watched.leases.delete(client);
            this.#released(client);
          }
          continue;
        }
        for (const client of watched.leases.keys()) this.#released(client);
        this.#drop(app, ids, id);
      }
    }
  }

  #drop(app: string, ids: Map<string, Watched>, id: string): void {
    ids.delete(id);
    if (ids.size === 0) this.#apps.delete(app);
  }

  #released(client: string): void {
    this.#size--;
    const held = (this.#perClientCount.get(client) ?? 1) - 1;
    if (held <= 0) this.#perClientCount.delete(client);
    else this.#perClientCount.set(client, held);
  }
}
