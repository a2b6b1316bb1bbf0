import type { Logger } from 'pino';
import { createActor, type Actor } from 'xstate';
import type { TimerHandle } from '../../bus/clock.js';
import type { Environment } from '../../bus/environment.js';
import { decode, encode } from '../../bus/codec.js';
import { KeyExistsError, StaleRevisionError, TimeoutError } from '../../bus/errors.js';
import { controlSubject, heartbeatFilter, heartbeatSubject } from '../../bus/subjects.js';
import { isFailoverRequest } from '../../protocol/control.js';
import type { Bus, Delivery, KvStore, KvWatch, Subscription } from '../../bus/types.js';
import { membershipMachine, type Heartbeat, type MembershipConfig, type Self } from '../../machines/membership.js';
import { bucketName, VIEW_KEY } from '../../protocol/names.js';
import { HEADER } from '../../protocol/headers.js';
import { packView, unpackView, type View } from '../../machines/view.js';
import type { Primacy } from './session.js';

export interface MembershipHostOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly self: Omit<Self, 'startedAt'>;
  readonly config: MembershipConfig;
  /** Copies JetStream keeps of the view's bucket. */
  readonly storageReplicas?: number;
  /** Time for heartbeats, ticks and the lease; ids for failover requests in hand. */
  readonly environment: Environment;
  readonly log: Logger;
  /** Takes up a view's shard roles; resolves with the shards this worker now serves as primary. */
  apply(view: View): Promise<readonly number[]>;
  /** As primary, the `shard/worker` secondaries not synchronized now (told to the leader in heartbeats). */
  notSynchronized?(): readonly string[];
  /** The cluster dropped this member (it was cut off too long): it must rejoin as a new one. */
  removed?(): void;
}

function isHeartbeat(x: unknown): x is Heartbeat {
  if (typeof x !== 'object' || x === null) return false;
  const h = x as Record<string, unknown>;
  return (
    typeof h['id'] === 'string' &&
    typeof h['zone'] === 'string' &&
    typeof h['promotable'] === 'boolean' &&
    (h['status'] === 'joining' || h['status'] === 'member' || h['status'] === 'leaving') &&
    typeof h['viewId'] === 'number' &&
    typeof h['startedAt'] === 'number' &&
    Array.isArray(h['serving']) &&
    h['serving'].every((s) => Number.isInteger(s)) &&
    (h['notSynchronized'] === undefined || (Array.isArray(h['notSynchronized']) && h['notSynchronized'].every((x) => typeof x === 'string')))
  );
}

/** Silence is checked this often per heartbeat interval (the machine sends heartbeats only when due). */
const TICKS_PER_HEARTBEAT = 4;

/** Heartbeats sent and not yet seen back: enough for a long stall, bounded for a dead link. */
const MAX_BEATS_IN_FLIGHT = 1_024;

/**
 * Hosts one worker's membership machine: heartbeats out and in on core
 * NATS, the view entry watched and written with compare-and-set, and a
 * tick every heartbeat interval. Views are applied one at a time, in order.
 *
 * It also holds the worker's lease: the leader suspects a member only after
 * hearing nothing from it for a session timeout, so while this worker's own
 * heartbeats come back from the server, nobody else can have been made
 * primary of its shards. A write acknowledged inside the lease needs no
 * other proof; outside it (a stall, a cut link) each write is checked
 * against the view as the store has it now, for one session timeout after
 * the heartbeats come back.
 */
export class MembershipHost implements Primacy {
  readonly #o: MembershipHostOptions;
  readonly #actor: Actor<typeof membershipMachine>;
  #kv: KvStore | undefined;
  #watch: KvWatch | undefined;
  #sub: Subscription | undefined;
  #control: Subscription | undefined;
  readonly #asking = new Map<string, Delivery>();
  #tick: TimerHandle | undefined;
  #applying: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #joined: Promise<void>;
  readonly #left: Promise<'left' | 'removed'>;
  #onJoined!: () => void;
  #onLeft!: (why: 'left' | 'removed') => void;
  #beat = 0;
  readonly #sentAt = new Map<number, number>();
  /** When the latest heartbeat the server echoed back was sent. */
  #leaseFrom = 0;
  /** After a lapse, writes are proved against the stored view until then. */
  #provingUntil = 0;

  constructor(options: MembershipHostOptions) {
    this.#o = options;
    const startedAt = options.environment.clock.now();
    this.#actor = createActor(membershipMachine, { input: { self: { ...options.self, startedAt }, config: options.config } });
    this.#joined = new Promise((resolve) => (this.#onJoined = resolve));
    this.#left = new Promise((resolve) => (this.#onLeft = resolve));
  }

  /** After `left` the machine is done: late outcomes (a write, an apply) have nobody to tell. */
  #send(event: Parameters<Actor<typeof membershipMachine>['send']>[0]): void {
    if (this.#actor.getSnapshot().status === 'active') this.#actor.send(event);
  }

  get view(): View | null {
    return this.#actor.getSnapshot().context.view;
  }

  /** joining, member, leaving or left. */
  get status(): string {
    return String(this.#actor.getSnapshot().value);
  }

  get isLeader(): boolean {
    return this.view?.leader === this.#o.self.id;
  }

  /** Resolves once a view lists this worker and that view's shard roles are taken up. */
  async start(): Promise<void> {
    const { bus, cluster, log } = this.#o;
    const clock = this.#o.environment.clock;
    this.#kv = await bus.kv({ bucket: bucketName(cluster, 'cluster'), replicas: this.#o.storageReplicas ?? 1 });
    const now = (): number => clock.now();
    const ownBeats = heartbeatSubject(cluster, this.#o.self.id);
    this.#actor.on('heartbeat', (e) => {
      if (this.#stopped) return;
      try {
        const beat = ++this.#beat;
        this.#sentAt.set(beat, clock.now());
        if (this.#sentAt.size > MAX_BEATS_IN_FLIGHT) this.#sentAt.delete(this.#sentAt.keys().next().value!);
        bus.publish(ownBeats, encode(e.heartbeat), { headers: { [HEADER.beat]: String(beat) } });
      } catch (err) {
        log.warn({ err }, 'heartbeat not sent');
      }
    });
    this.#actor.on('writeView', (e) => void this.#write(e.view, e.revision));
    this.#actor.on('view', (e) => this.#apply(e.view));
    this.#actor.on('left', (e) => this.#onLeft(e.reason));
    this.#actor.on('moveAnswer', (e) => {
      const m = this.#asking.get(e.id);
      this.#asking.delete(e.id);
      // Only the leader answers: every member hears the request, the others stay silent.
      if (m !== undefined && (e.ok || this.isLeader)) m.respond(encode({ ok: e.ok, reason: e.reason, leader: this.view?.leader ?? '' }));
    });
    this.#actor.subscribe((s) => {
      if (s.value === 'member' || s.value === 'leaving') this.#onJoined();
    });
    this.#actor.start();
    this.#sub = bus.subscribe(heartbeatFilter(cluster), (m) => {
      if (m.subject === ownBeats) this.#confirm(Number(m.headers[HEADER.beat]), now());
      let hb: unknown;
      try {
        hb = decode(m.data, { where: `heartbeat ${m.subject}` });
      } catch (err) {
        log.warn({ err, subject: m.subject }, 'unreadable heartbeat ignored');
        return;
      }
      if (!isHeartbeat(hb)) {
        log.warn({ subject: m.subject }, 'malformed heartbeat ignored');
        return;
      }
      this.#send({ type: 'HEARTBEAT', heartbeat: hb, now: now() });
    });
    this.#control = bus.subscribe(controlSubject(cluster, 'failover'), (m) => {
      let body: unknown;
      try {
        body = decode(m.data, { where: 'failover request' });
      } catch {
        body = undefined;
      }
      if (!isFailoverRequest(body)) {
        if (this.isLeader) m.respond(encode({ ok: false, reason: 'malformed request: needs { shard: integer, to: string, force?: boolean }', leader: this.#o.self.id }));
        return;
      }
      const id = this.#o.environment.newId();
      this.#asking.set(id, m);
      this.#send({ type: 'MOVE', request: { id, shard: body.shard, to: body.to, force: body.force === true }, now: now() });
    });
    await bus.flush();
    this.#send({ type: 'START', now: now() });
    let seen = false;
    this.#watch = await this.#kv.watch({ key: VIEW_KEY }, (entry) => {
      if (entry.operation !== 'PUT') return;
      seen = true;
      let view: View;
      try {
        view = unpackView(decode(entry.value, { where: `view revision ${entry.revision}` }));
      } catch (err) {
        log.error({ err, revision: entry.revision }, 'unreadable view ignored');
        return;
      }
      this.#send({ type: 'VIEW', view, revision: entry.revision, now: now() });
    });
    if (!seen) this.#send({ type: 'VIEW', view: null, revision: 0, now: now() });
    this.#armTick();
    void this.#left.then((why) => {
      if (why === 'removed') {
        log.warn('removed from the cluster view: rejoining as a new member');
        this.#o.removed?.();
      }
    });
    await Promise.race([this.#joined, this.#left]);
    // The view that admitted this worker is applied before start() resolves: it serves its shards from then on.
    await this.#applying;
  }

  /** The server has heartbeat `beat`: the leader cannot count this worker silent from before it was sent. */
  #confirm(beat: number, now: number): void {
    const sent = this.#sentAt.get(beat);
    if (sent === undefined) return;
    for (const n of this.#sentAt.keys()) {
      if (n > beat) break;
      this.#sentAt.delete(n);
    }
    if (this.#leaseFrom > 0 && now >= this.#leaseFrom + this.#leaseSpan) {
      this.#noticeLapse(now);
      this.#provingUntil = now + this.#o.config.sessionTimeout;
    }
    this.#leaseFrom = Math.max(this.#leaseFrom, sent);
    this.#lapseNoticed = false;
  }

  /** Short of the session timeout by a heartbeat (at most a quarter of it): the leader's tick and clock drift. */
  get #leaseSpan(): number {
    const { sessionTimeout, heartbeatInterval } = this.#o.config;
    return sessionTimeout - Math.min(heartbeatInterval, sessionTimeout / 4);
  }

  get self(): string {
    return this.#o.self.id;
  }

  leaseHeld(): boolean {
    const now = this.#o.environment.clock.now();
    if (now >= this.#leaseFrom + this.#leaseSpan) this.#noticeLapse(now);
    return now < this.#leaseFrom + this.#leaseSpan && now >= this.#provingUntil;
  }

  #lapseNoticed = false;

  /** Once per lapse: an operator wants to know a primary went unheard long enough to be replaced. */
  #noticeLapse(now: number): void {
    if (this.#lapseNoticed || this.#leaseFrom === 0) return;
    this.#lapseNoticed = true;
    this.#o.log.warn(
      { unconfirmedMs: Math.round(now - this.#leaseFrom) },
      'lease lapsed (stopped, starved or cut off): writes are proved against the stored view until heartbeats are confirmed again',
    );
  }

  epochOf(shard: number): number | null {
    const s = this.view?.shards[shard];
    return s !== undefined && s.primary === this.#o.self.id && s.state !== 'DEAD' ? s.epoch : null;
  }

  async stillPrimary(shard: number, epoch: number): Promise<boolean> {
    try {
      const entry = await this.#kv!.get(VIEW_KEY);
      if (entry === null) return false;
      const s = unpackView(decode(entry.value, { where: 'view' })).shards[shard];
      return s !== undefined && s.primary === this.#o.self.id && s.epoch === epoch && s.state !== 'DEAD';
    } catch (err) {
      this.#o.log.warn({ err, shard }, 'could not read the view to prove a write: refusing it');
      return false;
    }
  }

  #armTick(): void {
    if (this.#stopped) return;
    this.#tick = this.#o.environment.clock.setTimeout(() => {
      this.#send({ type: 'TICK', now: this.#o.environment.clock.now(), notSynchronized: this.#o.notSynchronized?.() ?? [] });
      this.#armTick();
    }, this.#o.config.heartbeatInterval / TICKS_PER_HEARTBEAT);
  }

  async #write(view: View, revision: number): Promise<void> {
    const kv = this.#kv!;
    try {
      const data = encode(packView(view));
      const written = revision === 0 ? await kv.create(VIEW_KEY, data) : await kv.update(VIEW_KEY, data, revision);
      this.#o.log.info(
        { viewId: view.viewId, members: view.members.map((m) => m.id), transitional: view.transitional },
        view.transitional ? 'transitional view written' : 'view written',
      );
      this.#send({ type: 'WRITE_DONE', view, revision: written, now: this.#o.environment.clock.now() });
    } catch (err) {
      // Someone else wrote first: the watch brings their view, and the plan is made again from it.
      if (!(err instanceof StaleRevisionError || err instanceof KeyExistsError)) this.#o.log.error({ err, viewId: view.viewId }, 'view not written');
      this.#send({ type: 'WRITE_FAILED', now: this.#o.environment.clock.now() });
    }
  }

  /** Resolves with the first view (the current one included) that satisfies `test`; rejects after `timeout`. */
  waitForView(test: (view: View) => boolean, timeout: number, what: string): Promise<View> {
    const current = this.view;
    if (current !== null && test(current)) return Promise.resolve(current);
    return new Promise((resolve, reject) => {
      const timer = this.#o.environment.clock.setTimeout(() => {
        this.#viewListeners.delete(listener);
        reject(new TimeoutError(`waiting for ${what}`, timeout));
      }, timeout);
      const listener = (view: View): void => {
        if (!test(view)) return;
        this.#o.environment.clock.clearTimeout(timer);
        this.#viewListeners.delete(listener);
        resolve(view);
      };
      this.#viewListeners.add(listener);
    });
  }

  readonly #viewListeners = new Set<(view: View) => void>();

  #apply(view: View): void {
    for (const l of [...this.#viewListeners]) l(view);
    this.#applying = this.#applying.then(async () => {
      let serving: readonly number[] = [];
      try {
        serving = await this.#o.apply(view);
      } catch (err) {
        this.#o.log.error({ err, viewId: view.viewId }, 'view not applied');
      }
      this.#send({ type: 'APPLIED', viewId: view.viewId, serving, now: this.#o.environment.clock.now() });
    });
  }

  /**
   * A planned hand-off: the leader moves this worker's shards away, then
   * drops it from the view. Gives up waiting after `bound` ms (say, no
   * leader is reachable): the others then treat it as failed.
   */
  async leave(bound: number): Promise<void> {
    if (this.#stopped) return;
    this.#send({ type: 'LEAVE', now: this.#o.environment.clock.now() });
    let timer: TimerHandle | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = this.#o.environment.clock.setTimeout(() => {
        this.#o.log.warn({ bound }, 'leave not confirmed in time: stopping anyway');
        resolve();
      }, bound);
    });
    await Promise.race([this.#left, gaveUp]);
    if (timer !== undefined) this.#o.environment.clock.clearTimeout(timer);
    await this.#applying;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tick !== undefined) this.#o.environment.clock.clearTimeout(this.#tick);
    this.#sub?.unsubscribe();
    this.#control?.unsubscribe();
    this.#watch?.stop();
    this.#actor.stop();
  }
}
