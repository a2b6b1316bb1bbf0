import type { Logger } from 'pino';
import { throttledWarn } from '../../log/throttle.js';
import { createActor, type Actor } from 'xstate';
import type { TimerHandle } from '../../bus/clock.js';
import type { Environment } from '../../bus/environment.js';
import { decode, encode } from '../../bus/codec.js';
import { KeyExistsError, StaleRevisionError, TimeoutError } from '../../bus/errors.js';
import { controlSubject, heartbeatFilter, heartbeatSubject } from '../../bus/subjects.js';
import { isFailoverRequest, isRebalanceRequest, isResetFailoverRequest } from '../../protocol/control.js';
import type { Bus, Delivery, KvStore, KvWatch, Subscription } from '../../bus/types.js';
import { nextDue } from '../../machines/heartbeats.js';
import { membershipMachine, type Heartbeat, type MembershipConfig, type Self } from '../../machines/membership.js';
import { bucketName, storeDescription, VIEW_KEY } from '../../protocol/names.js';
import { HEADER, headerText } from '../../protocol/headers.js';
import type { SafeguardDecision } from '../../machines/safeguards.js';
import type { View } from '../../machines/view.js';
import { readView, watchView } from '../../protocol/viewWatch.js';
import { encodeView } from '../../protocol/viewDocument.js';
import { Lease } from './lease.js';
import type { UnhealthyReason } from '../../machines/health.js';

const UNHEALTHY_REASONS: ReadonlySet<unknown> = new Set<UnhealthyReason>([
  'unresponsive',
  'commits-failing',
  'lease-lost',
]);

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
  /**
   * The cluster dropped this member (it was cut off too long), or it
   * stepped down because it could not hear its own heartbeats (`deaf`): it
   * must rejoin as a new one, once it can hear again.
   */
  removed?(why: 'removed' | 'deaf' | 'unhealthy'): void;
  /** What the worker's health monitor finds wrong now, at its failure condition (undefined: healthy). */
  health?(): UnhealthyReason | undefined;
  /**
   * Unhealthy, it leaves as a planned leave would; not out of the view
   * within this many ms (its release stuck behind the fault), it stops
   * heartbeating, and a silent leaver is let go without counting as a
   * failure (default 3 session timeouts).
   */
  readonly stepDownBound?: number;
}

/** Heartbeats ignored are logged at most this often, with how many went unlogged: a flood must not flood the log. */
const IGNORED_LOG_EVERY_MS = 10_000;

function onOwnSubject(cluster: string, id: string, subject: string): boolean {
  try {
    return heartbeatSubject(cluster, id) === subject;
  } catch {
    return false; // an id no subject can carry
  }
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
    (h['notSynchronized'] === undefined ||
      (Array.isArray(h['notSynchronized']) && h['notSynchronized'].every((x) => typeof x === 'string'))) &&
    (h['unhealthy'] === undefined || UNHEALTHY_REASONS.has(h['unhealthy']))
  );
}

/**
 * Hosts one worker's membership machine: heartbeats out and in on core
 * NATS, the view entry watched and written with compare-and-set, and a
 * tick whenever the machine has something due (nextDue), at least once a
 * heartbeat interval. Views are applied one at a time, in order.
 * It feeds the member's lease (lease.ts) its heartbeats and their echoes.
 */
export class MembershipHost {
  readonly #bus: Bus;
  readonly #cluster: string;
  readonly #self: MembershipHostOptions['self'];
  readonly #config: MembershipConfig;
  readonly #storageReplicas: number;
  readonly #environment: Environment;
  readonly #log: Logger;
  readonly #takeUp: MembershipHostOptions['apply'];
  readonly #notSynchronized: (() => readonly string[]) | undefined;
  readonly #removed: ((why: 'removed' | 'deaf' | 'unhealthy') => void) | undefined;
  readonly #health: (() => UnhealthyReason | undefined) | undefined;
  readonly #stepDownBound: number;
  #stepDownTimer: TimerHandle | undefined;
  /** This member's proof of primacy, for the sessions it hosts. */
  readonly lease: Lease;
  readonly #actor: Actor<typeof membershipMachine>;
  #kv: KvStore | undefined;
  #watch: KvWatch | undefined;
  #sub: Subscription | undefined;
  #control: Subscription | undefined;
  #resetControl: Subscription | undefined;
  #rebalanceControl: Subscription | undefined;
  readonly #asking = new Map<string, Delivery>();
  #tick: TimerHandle | undefined;
  /** `bus.received` at the last tick. */
  #received = 0;
  #applying: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #joined: Promise<void>;
  readonly #left: Promise<'left' | 'removed' | 'deaf' | 'unhealthy'>;
  #onJoined!: () => void;
  #onLeft!: (why: 'left' | 'removed' | 'deaf' | 'unhealthy') => void;

  constructor({
    bus,
    cluster,
    self,
    config,
    storageReplicas,
    environment,
    log,
    apply,
    notSynchronized,
    removed,
    health,
    stepDownBound,
  }: MembershipHostOptions) {
    this.#bus = bus;
    this.#cluster = cluster;
    this.#self = self;
    this.#config = config;
    this.#storageReplicas = storageReplicas ?? 1;
    this.#environment = environment;
    this.#log = log;
    this.#takeUp = apply;
    this.#notSynchronized = notSynchronized;
    this.#removed = removed;
    this.#health = health;
    this.#stepDownBound = stepDownBound ?? 3 * config.sessionTimeout;
    const startedAt = environment.clock.now();
    this.#actor = createActor(membershipMachine, { input: { self: { ...self, startedAt }, config } });
    this.lease = new Lease({
      self: self.id,
      config,
      clock: environment.clock,
      log,
      view: () => this.view,
      storedView: () => this.#storedView(),
    });
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

  /** The member id this incarnation joined under. */
  get memberId(): string {
    return this.#self.id;
  }

  get isLeader(): boolean {
    return this.view?.leader === this.#self.id;
  }

  /** Resolves once a view lists this worker and that view's shard roles are taken up. */
  async start(): Promise<void> {
    const bus = this.#bus;
    const cluster = this.#cluster;
    const log = this.#log;
    const clock = this.#environment.clock;
    this.#kv = await bus.kv({
      bucket: bucketName(cluster, 'cluster'),
      replicas: this.#storageReplicas,
      description: storeDescription(cluster, 'cluster'),
    });
    const now = (): number => clock.now();
    const ownBeats = heartbeatSubject(cluster, this.#self.id);
    const sender = headerText(this.#self.id);
    this.#actor.on('heartbeat', (e) => {
      if (this.#stopped) return;
      try {
        const beat = this.lease.sent();
        bus.publish(ownBeats, encode(e.heartbeat), {
          headers: { [HEADER.worker]: sender, [HEADER.beat]: String(beat) },
        });
      } catch (err) {
        log.warn({ err }, 'heartbeat not sent');
      }
    });
    this.#actor.on('writeView', (e) => void this.#write(e.view, e.revision));
    this.#actor.on('view', (e) => this.#apply(e.view));
    this.#actor.on('left', (e) => this.#onLeft(e.reason));
    this.#actor.on('steppingDown', (e) => {
      log.warn(
        { reason: e.reason, bound: this.#stepDownBound },
        `unhealthy (${e.reason}) while another member is healthy: stepping down, its shards handed off; rejoining once healthy`,
      );
      this.#stepDownTimer = clock.setTimeout(() => {
        if (this.#stopped || this.status === 'left') return;
        log.warn({ bound: this.#stepDownBound }, 'step-down not confirmed in time: going silent');
        // Silent, a leaver is let go by the leader; the worker rejoins as a new member once healthy.
        this.stop();
        this.#onLeft('unhealthy');
      }, this.#stepDownBound);
    });
    this.#actor.on('moveAnswer', (e) => {
      const m = this.#asking.get(e.id);
      this.#asking.delete(e.id);
      // Only the leader answers: every member hears the request, the others stay silent.
      if (m !== undefined && (e.ok || this.isLeader))
        m.respond(encode({ ok: e.ok, reason: e.reason, leader: this.view?.leader ?? '' }));
    });
    this.#actor.on('resetAnswer', (e) => {
      const m = this.#asking.get(e.id);
      this.#asking.delete(e.id);
      if (m !== undefined && (e.ok || this.isLeader))
        m.respond(encode({ ok: e.ok, reason: e.reason, changed: e.changed, leader: this.view?.leader ?? '' }));
      if (e.ok && e.changed) log.info('failover quota reset asked for by an operator: accepted');
    });
    this.#actor.on('rebalanceAnswer', (e) => {
      const m = this.#asking.get(e.id);
      this.#asking.delete(e.id);
      if (m !== undefined && (e.ok || this.isLeader))
        m.respond(encode({ ok: e.ok, reason: e.reason, changed: e.changed, leader: this.view?.leader ?? '' }));
      if (e.ok && e.changed) log.warn('rebalance asked for by an operator: the membership is recorded stable');
    });
    this.#actor.on('safeguard', (e) => this.#logDecision(e.decision));
    this.#actor.subscribe((s) => {
      if (s.value === 'member' || s.value === 'leaving') this.#onJoined();
    });
    this.#actor.start();
    this.#sub = bus.subscribe(heartbeatFilter(cluster), (m) => {
      if (m.subject === ownBeats) this.lease.confirm(Number(m.headers[HEADER.beat]), now());
      let hb: unknown;
      try {
        hb = decode(m.data, { where: `heartbeat ${m.subject}` });
      } catch (err) {
        this.#ignored(m.subject, 'unreadable', err);
        return;
      }
      if (!isHeartbeat(hb)) return this.#ignored(m.subject, 'malformed');
      // A member speaks only on its own subject: a heartbeat naming another is forged or misrouted.
      if (!onOwnSubject(cluster, hb.id, m.subject))
        return this.#ignored(m.subject, `sent for ${JSON.stringify(hb.id)}`);
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
        if (this.isLeader)
          m.respond(
            encode({
              ok: false,
              reason: 'malformed request: needs { shard: integer, to: string, force?: boolean }',
              leader: this.#self.id,
            }),
          );
        return;
      }
      const id = this.#environment.newId();
      this.#asking.set(id, m);
      this.#send({
        type: 'MOVE',
        request: { id, shard: body.shard, to: body.to, force: body.force === true },
        now: now(),
      });
    });
    this.#resetControl = bus.subscribe(controlSubject(cluster, 'reset-failover'), (m) => {
      let body: unknown;
      try {
        body = decode(m.data, { where: 'failover reset request' });
      } catch {
        body = undefined;
      }
      if (!isResetFailoverRequest(body)) {
        if (this.isLeader)
          m.respond(
            encode({
              ok: false,
              changed: false,
              reason: 'malformed request: needs exactly { reset: "quota" }',
              leader: this.#self.id,
            }),
          );
        return;
      }
      const id = this.#environment.newId();
      this.#asking.set(id, m);
      this.#send({ type: 'RESET_FAILOVER', id, now: now() });
    });
    this.#rebalanceControl = bus.subscribe(controlSubject(cluster, 'rebalance'), (m) => {
      let body: unknown;
      try {
        body = decode(m.data, { where: 'rebalance request' });
      } catch {
        body = undefined;
      }
      if (!isRebalanceRequest(body)) {
        if (this.isLeader)
          m.respond(
            encode({
              ok: false,
              changed: false,
              reason: 'malformed request: needs exactly { rebalance: "now" }',
              leader: this.#self.id,
            }),
          );
        return;
      }
      const id = this.#environment.newId();
      this.#asking.set(id, m);
      this.#send({ type: 'REBALANCE', id, now: now() });
    });
    await bus.flush();
    this.#send({ type: 'START', now: now() });
    let seen = false;
    this.#watch = await watchView(
      this.#kv,
      (view, revision) => {
        seen = true;
        this.#send({ type: 'VIEW', view, revision, now: now() });
      },
      (err, revision) => {
        seen = true;
        log.error({ err, revision }, 'the view key holds no readable view: the leader writes back the view it knows');
        this.#send({ type: 'VIEW_SPOILED', revision, now: now() });
      },
    );
    if (!seen) this.#send({ type: 'VIEW', view: null, revision: 0, now: now() });
    this.#armTick();
    void this.#left.then((why) => {
      if (why === 'removed') {
        log.warn('removed from the cluster view: rejoining as a new member');
        this.#removed?.(why);
      } else if (why === 'unhealthy') {
        this.#removed?.(why);
      } else if (why === 'deaf') {
        log.warn(
          { unheardMs: Math.round(now() - this.#actor.getSnapshot().context.heardAt) },
          'nothing heard from the server, not even its own heartbeats (cut off, maybe one way): stepped down; rejoining once it hears again',
        );
        this.#removed?.(why);
      }
    });
    await Promise.race([this.#joined, this.#left]);
    // The view that admitted this worker is applied before start() resolves: it serves its shards from then on.
    await this.#applying;
  }

  #warnIgnored: ReturnType<typeof throttledWarn> | undefined;

  /** A heartbeat not taken: counted, and logged at most once per IGNORED_LOG_EVERY_MS. */
  #ignored(subject: string, why: string, err?: unknown): void {
    this.#warnIgnored ??= throttledWarn(this.#log, this.#environment.clock, IGNORED_LOG_EVERY_MS);
    this.#warnIgnored({ err, subject }, `heartbeat ignored (${why})`);
  }

  /** Each decision of the safeguards, once, by the leader that wrote it into a view. */
  #logDecision(d: SafeguardDecision): void {
    const log = this.#log;
    const { failoverQuota, failoverWindow, unstableAfter, stableAfter } = this.#config;
    switch (d.kind) {
      case 'dropped':
        return log.warn(
          { member: d.member, recent: d.recent, quota: failoverQuota, window: failoverWindow },
          `automatic failover: ${d.member} dropped for silence (${d.recent} of at most ${failoverQuota} within ${failoverWindow} ms)`,
        );
      case 'held':
        return log.warn(
          { member: d.member, reason: d.reason },
          `automatic failover: ${d.member} is silent but kept in the view (${d.reason}); its shards stay with it, unserved`,
        );
      case 'released':
        return log.info({ member: d.member }, `${d.member}, held in the view, speaks again and serves its shards`);
      case 'halted':
        return log.error(
          { since: d.since, dropped: d.dropped, quota: failoverQuota, window: failoverWindow },
          `automatic failover halted: more than ${failoverQuota} members lost within ${failoverWindow} ms; ` +
            'silent members stay in the view until an operator resets the quota (cohort reset-failover)',
        );
      case 'reset':
        return log.warn('failover quota reset: dropped members no longer counted, automatic failover runs');
      case 'unstable':
        return log.warn(
          { since: d.since, changingSince: d.changingSince, unstableAfter, stableAfter },
          `membership unstable: changing for more than ${unstableAfter} ms; primaries are not moved to rebalance ` +
            `until it has not changed for ${stableAfter} ms (failovers and hand-offs of leavers go on)`,
        );
      case 'stable':
        return log.info(
          { unstableSince: d.unstableSince, stableAfter },
          `membership stable again (no change for ${stableAfter} ms): rebalancing resumes`,
        );
    }
  }

  /** The view as the store has it now: what a write outside the lease is proved against. */
  async #storedView(): Promise<View | null> {
    return (await readView(this.#kv!))?.view ?? null;
  }

  #armTick(): void {
    if (this.#stopped) return;
    const { clock } = this.#environment;
    // Events in between only push deadlines later (a heartbeat heard, a peer seen): the one computed now stands.
    const wait = nextDue(this.#actor.getSnapshot().context) - clock.now();
    this.#tick = clock.setTimeout(
      () => {
        // Anything that reached this connection since the last tick says the server can reach it.
        const received = this.#bus.received;
        const heard = received !== this.#received;
        this.#received = received;
        const unhealthy = this.#health?.();
        this.#send({
          type: 'TICK',
          now: clock.now(),
          notSynchronized: this.#notSynchronized?.() ?? [],
          heard,
          ...(unhealthy !== undefined && { unhealthy }),
        });
        this.#armTick();
      },
      Math.min(this.#config.heartbeatInterval, Math.max(1, wait)),
    );
  }

  async #write(view: View, revision: number): Promise<void> {
    const kv = this.#kv!;
    try {
      // Room kept for the headers and subject a KV put adds.
      const data = encodeView(view, this.#bus.server.maxPayload - 1_024);
      const written = revision === 0 ? await kv.create(VIEW_KEY, data) : await kv.update(VIEW_KEY, data, revision);
      this.#log.info(
        {
          viewId: view.viewId,
          members: view.members.map((m) => m.id),
          transitional: view.transitional,
          ...(view.safeguards.held.length > 0 && { held: view.safeguards.held.map((h) => h.member) }),
          ...(view.safeguards.failoverHalted !== null && { failoverHalted: view.safeguards.failoverHalted }),
          ...(view.safeguards.unstable !== null && { unstable: view.safeguards.unstable }),
        },
        view.transitional ? 'transitional view written' : 'view written',
      );
      this.#send({ type: 'WRITE_DONE', view, revision: written, now: this.#environment.clock.now() });
    } catch (err) {
      // Someone else wrote first: the watch brings their view, and the plan is made again from it.
      if (!(err instanceof StaleRevisionError || err instanceof KeyExistsError))
        this.#log.error({ err, viewId: view.viewId }, 'view not written');
      this.#send({ type: 'WRITE_FAILED', now: this.#environment.clock.now() });
    }
  }

  /** Resolves with the first view (the current one included) that satisfies `test`; rejects after `timeout`. */
  waitForView(test: (view: View) => boolean, timeout: number, what: string): Promise<View> {
    const current = this.view;
    if (current !== null && test(current)) return Promise.resolve(current);
    return new Promise((resolve, reject) => {
      const timer = this.#environment.clock.setTimeout(() => {
        this.#viewListeners.delete(listener);
        reject(new TimeoutError(`waiting for ${what}`, timeout));
      }, timeout);
      const listener = (view: View): void => {
        if (!test(view)) return;
        this.#environment.clock.clearTimeout(timer);
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
        serving = await this.#takeUp(view);
      } catch (err) {
        this.#log.error({ err, viewId: view.viewId }, 'view not applied');
      }
      this.#send({ type: 'APPLIED', viewId: view.viewId, serving, now: this.#environment.clock.now() });
    });
  }

  /**
   * A planned hand-off: the leader moves this worker's shards away, then
   * drops it from the view. Gives up waiting after `bound` ms (say, no
   * leader is reachable): the others then treat it as failed.
   */
  async leave(bound: number): Promise<void> {
    if (this.#stopped) return;
    this.#send({ type: 'LEAVE', now: this.#environment.clock.now() });
    let timer: TimerHandle | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = this.#environment.clock.setTimeout(() => {
        this.#log.warn({ bound }, 'leave not confirmed in time: stopping anyway');
        resolve();
      }, bound);
    });
    await Promise.race([this.#left, gaveUp]);
    if (timer !== undefined) this.#environment.clock.clearTimeout(timer);
    await this.#applying;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tick !== undefined) this.#environment.clock.clearTimeout(this.#tick);
    if (this.#stepDownTimer !== undefined) this.#environment.clock.clearTimeout(this.#stepDownTimer);
    this.#sub?.unsubscribe();
    this.#control?.unsubscribe();
    this.#resetControl?.unsubscribe();
    this.#rebalanceControl?.unsubscribe();
    this.#watch?.stop();
    this.#actor.stop();
  }
}
