import { decode } from '../../bus/codec.js';
import { eventSubject } from '../../bus/subjects.js';
import type { Bus, Subscription } from '../../bus/types.js';
import type { PatchMessage } from '../../protocol/messages.js';
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
}

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
}

/**
 * The client's subscriptions: patches by others, delivered in order to
 * listeners. A patch that does not follow the last one seen is a gap: it is
 * held, the session is read whole and delivered as one `resync` patch, and
 * what was held and is newer follows.
 */
export class Patches {
  readonly #watches = new Map<string, Watch>();
  readonly #cluster: string;
  readonly #connection: Connection;
  readonly #cache: DocumentCache;
  readonly #ownIds: ReadonlySet<string>;
  readonly #connect: () => Promise<void>;
  readonly #read: PatchesOptions['read'];

  constructor(options: PatchesOptions) {
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
      };
      // Not connected now (after DISABLED): it subscribes when the next connection is made.
      if (bus !== undefined) watch.sub = this.#listen(bus, watch);
      else void this.#connect().catch(() => undefined);
      w = watch;
      this.#watches.set(key, w);
    }
    const watch = w;
    watch.listeners.add(listener);
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size > 0) return;
      watch.sub.unsubscribe();
      if (this.#watches.get(key) === watch) this.#watches.delete(key);
    };
  }

  /** A new connection: every subscription is made again on its bus. */
  resubscribe(): void {
    const bus = this.#connection.bus;
    if (bus === undefined) return;
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

  close(): void {
    for (const w of this.#watches.values()) w.sub.unsubscribe();
    this.#watches.clear();
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
    const later = w.held.filter((p) => p.seq > seq).sort((a, b) => a.seq - b.seq);
    w.held = [];
    w.resyncing = false;
    for (const p of later) this.#deliver(w, p);
  }
}
