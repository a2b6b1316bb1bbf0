import type { Logger } from 'pino';
import { cmdShardFilter, readOnlyShardFilter, readShardFilter } from '../../bus/subjects.js';
import type { Bus, Subscription } from '../../bus/types.js';
import type { Catalog } from './catalog.js';
import type { Dispatch } from './dispatch.js';
import type { WatchInterest } from './interest.js';
import { READ_ONLY_QUEUE } from './replica.js';
import type { Wakeups } from './wakeups.js';

export interface ShardsOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly log: Logger;
  /** Where a shard's requests go. */
  readonly dispatch: Dispatch;
  /** Whose sessions go with a shard given up. */
  readonly catalog: Catalog;
  /** Whose wake-ups follow the shards served. */
  readonly wakeups: Wakeups;
  /** Told of each shard taken up: its watchers' renewals went to the last primary until now. */
  readonly interest: WatchInterest;
}

/**
 * The shards this worker serves as primary: per shard its cmd and read
 * subscriptions, and the read-only one for shards without secondaries.
 */
export class Shards {
  readonly #bus: Bus;
  readonly #cluster: string;
  readonly #log: Logger;
  readonly #dispatch: Dispatch;
  readonly #catalog: Catalog;
  readonly #wakeups: Wakeups;
  readonly #interest: WatchInterest;
  /** Per served shard, its cmd and read subscriptions. */
  readonly #subs = new Map<number, Subscription[]>();
  readonly #readOnly = new Map<number, Subscription>();
  #stopped = false;
  /** The change under way; the next waits for it. */
  #changing: Promise<unknown> = Promise.resolve();

  constructor({ bus, cluster, log, dispatch, catalog, wakeups, interest }: ShardsOptions) {
    this.#interest = interest;
    this.#bus = bus;
    this.#cluster = cluster;
    this.#log = log;
    this.#dispatch = dispatch;
    this.#catalog = catalog;
    this.#wakeups = wakeups;
  }

  /** Shards it serves as primary now. */
  get serving(): number[] {
    return [...this.#subs.keys()].sort((a, b) => a - b);
  }

  /**
   * Serves exactly `target` as primary from now on. A shard given up is
   * unsubscribed first, then its sessions drain and passivate, so the next
   * primary starts from everything this one acknowledged. One given up in a
   * planned hand-off (`handingOff`) is served a while longer first, until the
   * transactions open on it have ended (bounded: Catalog.handOff).
   */
  serve(target: ReadonlySet<number>, handingOff: ReadonlySet<number> = new Set()): Promise<number[]> {
    // One change at a time: two interleaved would each subscribe a shard the other had not yet.
    const run = this.#changing.then(() => this.#serve(target, handingOff));
    this.#changing = run.catch(() => undefined);
    return run;
  }

  async #serve(target: ReadonlySet<number>, handingOff: ReadonlySet<number>): Promise<number[]> {
    const planned = [...this.#subs.keys()].filter((s) => !target.has(s) && handingOff.has(s));
    if (planned.length > 0 && !this.#stopped) await this.#catalog.handOff(new Set(planned));
    const gone = [...this.#subs.keys()].filter((s) => !target.has(s));
    const added = [...target].filter((s) => !this.#subs.has(s));
    // Drained, not dropped: a request already routed here is still answered.
    const draining = gone.flatMap((shard) => this.#subs.get(shard) ?? []);
    for (const shard of gone) this.#subs.delete(shard);
    this.#wakeups.unserve(gone);
    await Promise.all(
      draining.map((sub) =>
        sub.drain().catch((err: unknown) => this.#log.warn({ err, subject: sub.subject }, 'drain failed')),
      ),
    );
    if (gone.length > 0) await this.#catalog.release(new Set(gone));
    if (this.#stopped) return this.serving;
    // Before the first request it takes: until the watchers have renewed here, it publishes every patch.
    this.#interest.takenUp(added);
    for (const shard of added) {
      this.#subs.set(shard, [
        this.#bus.subscribe(cmdShardFilter(this.#cluster, shard), (m) => this.#dispatch.onMessage(m, 'cmd')),
        this.#bus.subscribe(readShardFilter(this.#cluster, shard), (m) => this.#dispatch.onMessage(m, 'read')),
      ]);
    }
    this.#catalog.serve(added);
    this.#wakeups.serve(added);
    if (added.length > 0) {
      await this.#bus.flush();
      await this.#wakeups.arm(new Set(added));
    }
    if (gone.length > 0 || added.length > 0)
      this.#log.info({ gone: gone.length, added: added.length, serving: this.#subs.size }, 'shards changed');
    return this.serving;
  }

  /**
   * Read-only routing goes to secondaries; the primary answers it only for
   * shards that have none (static sharding, replicas 0, or all lost).
   */
  serveReadOnly(shards: ReadonlySet<number>): void {
    for (const [shard, sub] of this.#readOnly) {
      if (shards.has(shard)) continue;
      void sub.drain().catch(() => undefined);
      this.#readOnly.delete(shard);
    }
    for (const shard of shards) {
      if (this.#readOnly.has(shard) || this.#stopped) continue;
      this.#readOnly.set(
        shard,
        this.#bus.subscribe(readOnlyShardFilter(this.#cluster, shard), (m) => this.#dispatch.onMessage(m, 'read'), {
          queue: READ_ONLY_QUEUE,
        }),
      );
    }
  }

  /** Unsubscribes everything; nothing is served from now on. */
  stop(): void {
    this.#stopped = true;
    for (const subs of this.#subs.values()) for (const sub of subs) sub.unsubscribe();
    this.#wakeups.unserve(this.#subs.keys());
    this.#subs.clear();
    for (const sub of this.#readOnly.values()) sub.unsubscribe();
    this.#readOnly.clear();
  }
}
