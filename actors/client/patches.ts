import type { Clock, TimerHandle } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import { eventSubject, readSubject } from '../../bus/subjects.js';
import type { Bus, Subscription } from '../../bus/types.js';
import { labelOf } from '../../protocol/clientId.js';
import type { PatchMessage, VerifyReply } from '../../protocol/messages.js';
import { unwatchRequest, watchRequest } from '../../protocol/requests.js';
import { shardOf } from '../../protocol/shard.js';
import type { Patch } from './client.js';
import type { Connection } from './connection.js';
import type { DocumentCache } from './documentCache.js';

/** One subscribed session: the seq its listeners have seen, and what is held while a re-read heals a gap. */
interface Watch {
  readonly app: string;
  readonly id: string;
  readonly listeners: Set<(p: Patch) => void>;
  /** On the bus of the connection it was made on; a new connection subscribes again. */
  sub: Pick<Subscription, 'unsubscribe'>;
  bus: Bus | undefined;
  last: number | undefined;
  resyncing: boolean;
  held: PatchMessage[];
  /** The seq the worker last said it publishes every patch after (-1: no answer yet): the subscriber must reach it. */
  floor: number;
  /** The next renewal of its watch. */
  timer: TimerHandle | undefined;
  /** Counts watches sent: only the latest one's answer schedules the next. */
  renewals: number;
}

/** What the primary says of a copy at some seq (verification), for a subscriber behind its watch's seq. */
export type CatchUp = Extract<VerifyReply, { ok: true }>;

export interface PatchesOptions {
  readonly cluster: string;
  readonly connection: Connection;
  /** Patches bring cached copies forward too; one they cannot is dropped. */
  readonly cache: DocumentCache;
  /** Every id the client has had: its own patches are not delivered to it, across reconnects too. */
  readonly ownIds: ReadonlySet<string>;
  /** Connects: a subscription made while not connected starts with the next connection. */
  readonly connect: () => Promise<void>;
  /** A whole copy of the session, to heal a gap. */
  readonly read: (app: string, id: string) => Promise<{ readonly seq: number; readonly document: unknown }>;
  /** The patches the journal still has after `since` (or the copy whole): a subscriber behind its watch catches up. */
  readonly catchUp: (app: string, id: string, since: number) => Promise<CatchUp>;
  readonly clock: Clock;
  readonly shardCount: number;
  /** The watch's lease (ms): renewed at a third of it. */
  readonly lease: number;
  /** How long one watch waits for its answer (ms). */
  readonly attemptTimeout: number;
}

/** A watch that went unanswered is sent again after this (ms), or a third of the lease if shorter. */
const WATCH_RETRY = 1_000;

/**
 * The client's subscriptions: patches by others, delivered in order to
 * listeners. A patch that does not follow the last one seen is a gap: it is
 * held, the session is read whole and delivered as one `resync` patch, and
 * what was held and is newer follows.
 *
 * Workers publish a session's patches only while someone watches it: each
 * subscription subscribes first, then sends a watch to the session's
 * primary and renews it at a third of its lease (at once after a new
 * connection or a recovery). The answer is the seq from which the worker
 * publishes every patch; a subscriber behind it catches up from the journal
 * (verification), so nothing after the seq it had is missed, whatever the
 * timing of leases, reconnects and failovers.
 */
export class Patches {
  readonly #watches = new Map<string, Watch>();
  readonly #cluster: string;
  readonly #connection: Connection;
  readonly #cache: DocumentCache;
  readonly #ownIds: ReadonlySet<string>;
  readonly #connect: () => Promise<void>;
  readonly #read: PatchesOptions['read'];
  readonly #catchUp: PatchesOptions['catchUp'];
  readonly #clock: Clock;
  readonly #shardCount: number;
  readonly #lease: number;
  readonly #attemptTimeout: number;
  /** The bus whose reconnects renew every watch, and how to stop hearing them. */
  #followed: Bus | undefined;
  #unfollow: (() => void) | undefined;

  constructor(options: PatchesOptions) {
    this.#catchUp = options.catchUp;
    this.#clock = options.clock;
    this.#shardCount = options.shardCount;
    this.#lease = options.lease;
    this.#attemptTimeout = options.attemptTimeout;
    this.#cluster = options.cluster;
    this.#connection = options.connection;
    this.#cache = options.cache;
    this.#ownIds = options.ownIds;
    this.#connect = options.connect;
    this.#read = options.read;
  }

  subscribe(app: string, id: string, listener: (p: Patch) => void): () => void {
    const key = `${app}/${id}`;
    let w = this.#watches.get(key);
    if (w === undefined) {
      const bus = this.#connection.bus;
      const watch: Watch = {
        app,
        id,
        listeners: new Set(),
        last: this.#cache.peek(app, id)?.seq,
        resyncing: false,
        held: [],
        bus,
        sub: { unsubscribe: () => undefined },
        floor: -1,
        timer: undefined,
        renewals: 0,
      };
      w = watch;
      this.#watches.set(key, w);
      // Not connected now (after DISABLED): it subscribes (and watches) when the next connection is made.
      if (bus !== undefined) {
        this.#follow(bus);
        watch.sub = this.#listen(bus, watch);
        // Subscribed first: every patch the worker publishes from its answer on reaches this subscription.
        void this.#watch(watch);
      } else void this.#connect().catch(() => undefined);
    }
    const watch = w;
    watch.listeners.add(listener);
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size > 0) return;
      watch.sub.unsubscribe();
      if (this.#watches.get(key) !== watch) return;
      this.#watches.delete(key);
      this.#stopWatching(watch);
    };
  }

  /** Every watch renewed now: after a recovery the worker may have let a lease lapse meanwhile. */
  renewAll(): void {
    for (const w of this.#watches.values()) void this.#watch(w);
  }

  /** A new connection: every subscription is made again on its bus. */
  resubscribe(): void {
    const bus = this.#connection.bus;
    if (bus === undefined) return;
    this.#follow(bus);
    for (const w of this.#watches.values()) {
      if (w.bus === bus) continue;
      try {
        w.sub.unsubscribe();
      } catch {
        // its bus is closed already
      }
      w.bus = bus;
      w.sub = this.#listen(bus, w);
    }
    this.renewAll();
  }

  /** Subscribed sessions whose listeners have seen a seq, keyed `app/id`: verification checks them too. */
  seen(): Map<string, { app: string; id: string; seq: number }> {
    const out = new Map<string, { app: string; id: string; seq: number }>();
    for (const [key, w] of this.#watches) if (w.last !== undefined) out.set(key, { app: w.app, id: w.id, seq: w.last });
    return out;
  }

  /** Patches the journal still had (verification): as if they had come on the subject, or to the cache alone when not subscribed. */
  replay(app: string, id: string, patches: readonly PatchMessage[]): void {
    const w = this.#watches.get(`${app}/${id}`);
    for (const p of patches) {
      if (w !== undefined) this.#onPatch(w, p);
      else this.#patchCache(app, id, p);
    }
  }

  /** A whole new copy (verification): listeners get it as one `resync` patch. */
  replace(app: string, id: string, seq: number, document: unknown): void {
    const w = this.#watches.get(`${app}/${id}`);
    if (w !== undefined) this.#replaceWith(w, seq, document);
  }

  /**
   * The bus's own reconnects (the same connection, back): the worker may
   * have published patches it never got, or let its watches lapse. The
   * watches go again at once; their answers show what was missed.
   */
  #follow(bus: Bus): void {
    if (this.#followed === bus) return;
    this.#unfollow?.();
    this.#followed = bus;
    this.#unfollow = bus.onStatus((s) => {
      if (s.type === 'reconnect') this.renewAll();
    });
  }

  close(): void {
    this.#unfollow?.();
    this.#unfollow = undefined;
    this.#followed = undefined;
    for (const w of this.#watches.values()) {
      w.sub.unsubscribe();
      if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
      w.timer = undefined;
    }
    this.#watches.clear();
  }

  #watchSubject(w: Watch): string {
    const shard = shardOf(w.app, w.id, this.#shardCount);
    return readSubject(this.#cluster, shard, w.app, w.id, labelOf(this.#connection.clientId));
  }

  /**
   * Sends the watch (straight on the bus: a renewal that goes unanswered is
   * not the user's request failing) and schedules the next; its answer says
   * from which seq the worker publishes.
   */
  async #watch(w: Watch): Promise<void> {
    if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
    w.timer = undefined;
    const renewal = ++w.renewals;
    const bus = this.#connection.bus;
    let next = Math.min(WATCH_RETRY, this.#lease / 3);
    if (bus !== undefined) {
      try {
        const m = await bus.request(
          this.#watchSubject(w),
          encode(watchRequest(this.#connection.clientId, this.#lease)),
          { timeout: this.#attemptTimeout },
        );
        const reply = decode(m.data, { where: `watch of ${w.app}/${w.id}` }) as {
          ok?: unknown;
          seq?: unknown;
          error?: { retryable?: unknown };
        };
        if (reply?.ok === true && typeof reply.seq === 'number' && Number.isSafeInteger(reply.seq)) {
          next = this.#lease / 3;
          if (this.#watches.get(`${w.app}/${w.id}`) === w) this.#published(w, reply.seq);
        } else if (reply?.ok === false && reply.error?.retryable !== true) {
          // Refused for good (this client watches too many sessions there): asked again only at the renewal.
          next = this.#lease / 3;
        }
      } catch {
        // Unanswered (no primary now, a failover, a reconnect): sent again soon.
      }
    }
    if (renewal !== w.renewals || this.#watches.get(`${w.app}/${w.id}`) !== w) return;
    w.timer = this.#clock.setTimeout(() => void this.#watch(w), next);
  }

  /** Unsubscribed: the worker may stop publishing now rather than when the lease ends. */
  #stopWatching(w: Watch): void {
    if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
    w.timer = undefined;
    w.renewals++;
    const bus = this.#connection.bus;
    if (bus === undefined) return;
    bus
      .request(this.#watchSubject(w), encode(unwatchRequest(this.#connection.clientId)), {
        timeout: this.#attemptTimeout,
      })
      .catch(() => undefined);
  }

  /** The worker publishes every patch after `seq`: a subscriber behind it catches up from there. */
  #published(w: Watch, seq: number): void {
    w.floor = Math.max(w.floor, seq);
    this.#reachFloor(w);
  }

  #reachFloor(w: Watch): void {
    if (w.resyncing || w.floor < 0) return; // its end looks again; no watch answered yet
    w.last ??= this.#cache.peek(w.app, w.id)?.seq;
    // Nothing seen, nothing read: it starts at the seq the worker publishes after.
    if (w.last === undefined) w.last = w.floor;
    if (w.last >= w.floor) return;
    w.resyncing = true;
    const since = w.last;
    this.#catchUp(w.app, w.id, since).then(
      (r) => {
        if (r.outcome === 'replayed') {
          for (const p of r.patches ?? []) {
            // A replay that is not patches following on is not trusted: the whole copy instead.
            if (typeof p?.seq !== 'number' || typeof p.prev !== 'number' || !Array.isArray(p.ops))
              return this.#resyncNow(w);
            if (p.seq <= w.last!) continue;
            if (p.prev !== w.last) return this.#resyncNow(w);
            this.#deliver(w, p);
          }
          this.#release(w);
        } else if (r.outcome === 'cleared' || r.outcome === 'newer-than-server') {
          this.#cache.set(w.app, w.id, { seq: r.seq, document: r.document, state: r.state }, { force: true });
          this.#replaceWith(w, r.seq, r.document);
        } else this.#release(w);
      },
      () => this.#resyncNow(w),
    );
  }

  #resyncNow(w: Watch): void {
    w.resyncing = false;
    this.#resync(w);
  }

  #listen(bus: Bus, watch: Watch): Subscription {
    const subject = eventSubject(this.#cluster, watch.app, watch.id);
    return bus.subscribe(subject, (m) => {
      let p: PatchMessage;
      try {
        p = decode(m.data, { where: `patch on ${subject}` }) as PatchMessage;
      } catch {
        return; // not a patch of ours: ignore it, keep listening
      }
      this.#onPatch(watch, p);
    });
  }

  #onPatch(w: Watch, p: PatchMessage): void {
    if (typeof p?.seq !== 'number' || typeof p.prev !== 'number' || !Array.isArray(p.ops)) return;
    // Subscribed before it read: what it read is where patches must follow on from.
    w.last ??= this.#cache.peek(w.app, w.id)?.seq;
    if (w.resyncing) {
      w.held.push(p);
      return;
    }
    if (w.last !== undefined && p.prev !== w.last && p.seq > w.last) {
      w.held.push(p);
      this.#resync(w);
      return;
    }
    this.#deliver(w, p);
  }

  #deliver(w: Watch, p: PatchMessage): void {
    if (w.last !== undefined && p.seq <= w.last) return;
    w.last = p.seq;
    this.#patchCache(w.app, w.id, p);
    if (this.#ownIds.has(p.setter)) return;
    for (const l of w.listeners) l({ seq: p.seq, ops: p.ops, setter: p.setter });
  }

  /** A cached copy a patch cannot bring forward is dropped: the next read or verification fetches it whole. */
  #patchCache(app: string, id: string, p: PatchMessage): void {
    const outcome = this.#cache.applyPatch(app, id, p);
    if (outcome === 'gap' || outcome === 'failed') this.#cache.delete(app, id);
  }

  #resync(w: Watch): void {
    w.resyncing = true;
    this.#read(w.app, w.id).then(
      (r) => this.#replaceWith(w, r.seq, r.document),
      () => {
        w.resyncing = false; // the next patch finds the gap again and retries
      },
    );
  }

  /** A whole new copy: listeners get it as one `resync` patch, then anything newer that was held. */
  #replaceWith(w: Watch, seq: number, document: unknown): void {
    w.last = seq;
    for (const l of w.listeners)
      l({ seq, ops: [{ op: 'replace', path: '', value: document }], setter: '', resync: true });
    this.#release(w);
  }

  /** A re-read or catch-up is over: what was held meanwhile follows, still checked for gaps, then the floor. */
  #release(w: Watch): void {
    const later = w.held.filter((p) => w.last === undefined || p.seq > w.last).sort((a, b) => a.seq - b.seq);
    w.held = [];
    w.resyncing = false;
    for (const p of later) this.#onPatch(w, p);
    this.#reachFloor(w);
  }
}
