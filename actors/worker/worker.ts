import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import { resolveEnvironment, type Environment } from '../../bus/environment.js';
import { encodeBody } from '../../bus/claimCheck.js';
import { decode, encode } from '../../bus/codec.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import {
  clientSubject,
  cmdShardFilter,
  escapeToken,
  journalStreamFilter,
  journalStreamName,
  metaSubject,
  parseSubject,
  readOnlyShardFilter,
  readShardFilter,
  unescapeToken,
  validateCluster,
} from '../../bus/subjects.js';
import type { BlobStore, Bus, Delivery, Journal, KvStore, Subscription } from '../../bus/types.js';
import { createLogger } from '../../log/logger.js';
import { HEADER } from '../../protocol/headers.js';
import type { ClientNotice } from '../../protocol/control.js';
import { type CommandReply, type ReadReply, type TxReply, type VerifyReply } from '../../protocol/messages.js';
import type { Application } from './application.js';
import { ClientRecords, clientOptions, type ClientRecordInfo } from './clientRecords.js';
import { InvalidRequestError, UnknownApplicationError, toErrorBody, type RollbackReason } from '../../protocol/errors.js';
import { HostedSession, type SessionHost } from './session.js';
import { loadSession } from './replay.js';
import { requestFailover } from '../../protocol/control.js';
import { READ_ONLY_QUEUE, Replication, type ReplicaStatus } from './replica.js';
import { MembershipHost } from './membership.js';
import type { Lease } from './lease.js';
import { MEMBERSHIP_DEFAULTS, type MembershipConfig } from '../../machines/membership.js';
import { membershipConfig } from '../../machines/membershipConfig.js';
import type { View } from '../../machines/view.js';
import { parseRequest } from '../../protocol/requests.js';
import { DEFAULT_SHARD_COUNT } from '../../protocol/shard.js';
import { SessionStore } from './sessionStore.js';

export interface WorkerOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  bus?: Bus;
  cluster: string;
  applications: Application[];
  /**
   * Static sharding: exactly these shards, no membership. Without it the
   * worker joins the cluster and serves what the view gives it.
   */
  shards?: number[];
  shardCount?: number;
  /** Time, randomness and ids (default the system's): virtual time and seeded ids make a run replay. */
  environment?: Partial<Environment>;
  logger?: Logger;
  /** Worker id, shown in logs (default a random one). */
  id?: string;
  /** Availability zone: a shard's copies go to different zones where possible (default 'default'). */
  zone?: string;
  /** False for a remote disaster-recovery worker: it hosts secondaries only (default true). */
  promotable?: boolean;
  /** Membership heartbeat period in ms (default 500). */
  heartbeatInterval?: number;
  /** A worker silent this long is suspected and its shards fail over (default 3 000, minimum 500). */
  sessionTimeout?: number;
  /** Secondaries per shard: a cluster setting, taken from whoever writes the first view (default 1). */
  replicas?: number;
  /** Most shards handing off at once (default 8). */
  maxConcurrentMoves?: number;
  /**
   * Copies JetStream keeps of the journal, the buckets and the blobs when
   * this worker creates them (default 1; 3 on a 3-node NATS cluster, so a
   * node can fail). Whoever creates them first decides.
   */
  storageReplicas?: number;
  /**
   * Server-side client records (DESIGN.md section 6): a client silent for
   * `troubledInterval` ms (default 10 000) is non-responsive; back within
   * `recoveryWait` ms more (default 60 000) it keeps its locks and open
   * transactions, else they are rolled back.
   */
  clients?: { troubledInterval?: number; recoveryWait?: number };
}

export type { ClientRecordInfo } from './clientRecords.js';

export interface Worker {
  readonly id: string;
  /** The cluster view this worker last saw; null with static sharding. */
  readonly view: View | null;
  /** Shards it serves as primary now. */
  readonly serving: readonly number[];
  /**
   * Fails `shard` over to worker `to` through the leader: planned (the
   * shard hands off; clients see retries, never errors) or, with `force`,
   * at once even onto a copy that is not synchronized. Resolves once a view
   * shows `to` as the shard's ACTIVE primary.
   */
  failover(shard: number, to: string, options?: { force?: boolean; timeout?: number }): Promise<View>;
  /** Its part in one shard: role, and as primary how far each secondary has applied. */
  replicaStatus(shard: number): ReplicaStatus;
  /** Sessions in memory now. */
  readonly activeSessions: number;
  /** Passivates every active session now (snapshot written, memory freed), except those holding a transaction open. Returns how many. */
  passivate(): Promise<number>;
  /**
   * Disconnects a client by force (ECP ChangeToNotConnected): `client` is a
   * client id, or a label for every client of that label seen here. Flushes
   * background journaling, rolls back its open transactions (releasing their
   * locks), refuses its requests with ClientDisconnectedError for
   * recoveryWait, and tells it on its client subject.
   */
  forceDisconnect(client: string): Promise<{ transactions: number }>;
  /** The clients this worker has heard from lately. */
  clients(): readonly ClientRecordInfo[];
  /** Passivates every session (snapshots written), unsubscribes, and closes its own bus. */
  stop(): Promise<void>;
}

type Reply = CommandReply | ReadReply | TxReply | VerifyReply;
/** Room kept in a reply for its headers and subject. */
const REPLY_HEADROOM = 1024;
const RETRY = Symbol('retry');

class WorkerHost implements SessionHost {
  readonly sessions = new Map<string, HostedSession>();
  readonly #activating = new Map<string, Promise<HostedSession>>();
  readonly #dormant = new Map<string, TimerHandle>();
  readonly #dormantShard = new Map<string, number>();
  readonly #apps: Map<string, Application>;
  readonly #subs: Subscription[] = [];
  /** Per served shard, its cmd and read subscriptions. */
  readonly #shardSubs = new Map<number, Subscription[]>();
  readonly #roSubs = new Map<number, Subscription>();
  #membership: MembershipHost | undefined;
  replicas: Replication | undefined;
  sessionTimeout: number = MEMBERSHIP_DEFAULTS.sessionTimeout;
  #replicaTick: TimerHandle | undefined;
  #sweep: TimerHandle | undefined;
  #stopped = false;
  readonly clients: ClientRecords;
  readonly clock: Clock;

  constructor(
    readonly id: string,
    readonly bus: Bus,
    readonly ownsBus: boolean,
    readonly journal: Journal,
    readonly store: SessionStore,
    readonly timerIndex: KvStore,
    readonly blobs: BlobStore,
    readonly environment: Environment,
    readonly cluster: string,
    readonly log: Logger,
    applications: Application[],
    readonly shardCount: number,
    clients: { troubledInterval: number; recoveryWait: number },
  ) {
    this.clock = environment.clock;
    this.#apps = new Map(applications.map((a) => [a.name, a]));
    this.clients = new ClientRecords({
      ...clients,
      clock: environment.clock,
      log,
      transactionsOf: (client) => [...this.sessions.values()].filter((s) => s.openTransaction?.client === client).length,
      rollBack: (client, reason) => this.rollBack(client, reason),
    });
  }

  get rollbacks(): ClientRecords {
    return this.clients;
  }

  /** Rolls back `client`'s open transactions; queued in each session's mailbox at once, so before any later request. */
  async rollBack(client: string, reason: RollbackReason): Promise<number> {
    const holding = [...this.sessions.values()].filter((s) => s.openTransaction?.client === client);
    const done = await Promise.all(holding.map((s) => s.rollBackClient(client, reason)));
    return done.filter(Boolean).length;
  }

  async forceDisconnect(client: string): Promise<{ transactions: number }> {
    const ids = this.clients.match(client);
    const reason = `disconnected by force by worker ${this.id}`;
    // Refused first, so nothing it sends from now on slips in while the rest happens.
    this.clients.refuse(ids, reason);
    // What it wrote at commit level memory reaches the journal before it is told.
    await Promise.all([...this.sessions.values()].map((s) => s.flush()));
    const counts = await Promise.all(ids.map((id) => this.rollBack(id, 'forced')));
    const transactions = counts.reduce((a, b) => a + b, 0);
    const notice: ClientNotice = { type: 'disconnected', by: this.id, reason };
    for (const id of ids) {
      try {
        this.bus.publish(clientSubject(this.cluster, id), encode(notice), { headers: { [HEADER.client]: id } });
      } catch (err) {
        this.log.warn({ err, clientId: id }, 'disconnect notice not sent');
      }
    }
    await this.bus.flush();
    this.log.warn({ client, clients: ids, transactions }, 'client disconnected by force');
    return { transactions };
  }

  get serving(): number[] {
    return [...this.#shardSubs.keys()].sort((a, b) => a - b);
  }

  get view(): View | null {
    return this.#membership?.view ?? null;
  }

  get membership(): MembershipHost | undefined {
    return this.#membership;
  }

  get primacy(): Lease | undefined {
    return this.#membership?.lease;
  }

  /** Static sharding serves `shards` from the start; membership serves what each view says. */
  async start(shards: readonly number[] | undefined, membership: MembershipOptions | undefined): Promise<void> {
    this.#unlistenStatus = this.bus.onStatus((s) => {
      if (s.type === 'close') this.#busClosed = true;
    });
    for (const app of this.#apps.values()) {
      const body = new TextEncoder().encode(JSON.stringify({ name: app.name, commit: app.commit, metadata: app.metadata }));
      this.#subs.push(
        this.bus.subscribe(metaSubject(this.cluster, app.name), (m) => m.respond(body, { headers: { 'Content-Type': 'application/json' } }), {
          queue: 'cohort-meta',
        }),
      );
    }
    if (shards !== undefined) {
      await this.serve(new Set(shards));
      this.serveReadOnly(new Set(shards));
    }
    await this.bus.flush();
    this.#armSweep();
    this.clients.start();
    if (membership !== undefined) await this.#join(membership, this.id);
    this.log.info({ shards: this.#shardSubs.size, apps: [...this.#apps.keys()] }, 'worker started');
  }

  async #join(options: MembershipOptions, memberId: string): Promise<void> {
    this.sessionTimeout = options.config.sessionTimeout;
    const replication = (this.replicas ??= new Replication({
      bus: this.bus,
      journal: this.journal,
      store: this.store,
      cluster: this.cluster,
      clock: this.clock,
      log: this.log,
      apps: this.#apps,
      sessionTimeout: options.config.sessionTimeout,
    }));
    this.#armReplicaTick(options.config.heartbeatInterval);
    this.#membership = new MembershipHost({
      bus: this.bus,
      cluster: this.cluster,
      self: { id: memberId, zone: options.zone, promotable: options.promotable },
      config: options.config,
      storageReplicas: options.storageReplicas,
      environment: this.environment,
      log: this.log,
      apply: async (view) => {
        const primaries = primariesOf(view, memberId);
        const serving = await this.serve(primaries);
        this.serveReadOnly(new Set([...primaries].filter((shard) => view.shards[shard]!.replicas.length === 0)));
        await replication.apply(view, memberId);
        return serving;
      },
      notSynchronized: () => replication.notSynchronized(),
      removed: () => {
        // Cut off long enough to be dropped: let go of everything, then come back as a new member.
        const old = this.#membership;
        old?.stop();
        void this.serve(new Set())
          .then(() => (this.#stopped ? undefined : this.#join(options, `${this.id}~${++this.#incarnation}`)))
          .catch((err: unknown) => this.log.error({ err }, 'rejoin failed'));
      },
    });
    await this.#membership.start();
  }

  #armReplicaTick(every: number): void {
    if (this.#stopped || this.#replicaTick !== undefined) return;
    this.#replicaTick = this.clock.setTimeout(() => {
      this.#replicaTick = undefined;
      this.replicas?.tick();
      this.#armReplicaTick(every);
    }, every);
  }

  #incarnation = 1;
  #busClosed = false;
  #stopping: Promise<void> | undefined;
  #unlistenStatus: (() => void) | undefined;
  #leaveBound = 10_000;
  set leaveBound(ms: number) {
    this.#leaveBound = ms;
  }

  /**
   * Serves exactly `target` as primary from now on. A shard given up is
   * unsubscribed first, then its sessions drain and passivate (snapshots
   * written, background appends flushed), so the next primary starts from
   * everything this one acknowledged.
   */
  async serve(target: ReadonlySet<number>): Promise<number[]> {
    const gone = [...this.#shardSubs.keys()].filter((s) => !target.has(s));
    const added = [...target].filter((s) => !this.#shardSubs.has(s));
    // Drained, not dropped: a request already routed here is still answered.
    const draining = gone.flatMap((shard) => this.#shardSubs.get(shard) ?? []);
    for (const shard of gone) this.#shardSubs.delete(shard);
    await Promise.all(draining.map((sub) => sub.drain().catch((err: unknown) => this.log.warn({ err, subject: sub.subject }, 'drain failed'))));
    if (gone.length > 0) await this.#release(new Set(gone));
    if (this.#stopped) return this.serving;
    for (const shard of added) {
      this.#shardSubs.set(shard, [
        this.bus.subscribe(cmdShardFilter(this.cluster, shard), (m) => this.#onMessage(m, 'cmd')),
        this.bus.subscribe(readShardFilter(this.cluster, shard), (m) => this.#onMessage(m, 'read')),
      ]);
    }
    if (added.length > 0) {
      await this.bus.flush();
      await this.#armDormantTimers(new Set(added));
    }
    if (gone.length > 0 || added.length > 0) this.log.info({ gone: gone.length, added: added.length, serving: this.#shardSubs.size }, 'shards changed');
    return this.serving;
  }

  /**
   * Read-only routing goes to secondaries; the primary answers it only for
   * shards that have none (static sharding, replicas 0, or all lost).
   */
  serveReadOnly(shards: ReadonlySet<number>): void {
    for (const [shard, sub] of this.#roSubs) {
      if (shards.has(shard)) continue;
      void sub.drain().catch(() => undefined);
      this.#roSubs.delete(shard);
    }
    for (const shard of shards) {
      if (this.#roSubs.has(shard) || this.#stopped) continue;
      this.#roSubs.set(
        shard,
        this.bus.subscribe(readOnlyShardFilter(this.cluster, shard), (m) => this.#onMessage(m, 'read'), { queue: READ_ONLY_QUEUE }),
      );
    }
  }

  async #release(shards: ReadonlySet<number>): Promise<void> {
    await Promise.allSettled([...this.#activating.values()]);
    for (const [key, handle] of this.#dormant) {
      if (shards.has(this.#dormantShard.get(key) ?? -1)) {
        this.clock.clearTimeout(handle);
        this.#dormant.delete(key);
      }
    }
    const leaving = [...this.sessions.entries()].filter(([, s]) => shards.has(s.shard));
    await Promise.all(
      leaving.map(([key, s]) =>
        this.#passivate(key, s, false).catch((err: unknown) => {
          this.log.warn({ err, key }, 'snapshot on release failed');
          s.stop();
          this.evict(s);
        }),
      ),
    );
  }

  #onMessage(m: Delivery, kind: 'cmd' | 'read'): void {
    void this.#handle(m, kind)
      .catch((err: unknown): Reply => ({ ok: false, error: toErrorBody(err) }))
      .then((reply) => this.#respond(m, reply))
      .catch((err: unknown) => {
        // Even the claim-check failed: say so rather than leave the client to time out.
        this.log.warn({ err, subject: m.subject }, 'reply not sent whole');
        m.respond(encode({ ok: false, error: toErrorBody(err) }));
      });
  }

  /** A reply too large for a message (a big document) travels by claim-check; the client fetches and deletes it. */
  async #respond(m: Delivery, reply: Reply): Promise<void> {
    const body = await encodeBody(reply, { maxBytes: this.bus.server.maxPayload - REPLY_HEADROOM, blobs: this.blobs, allowClaimCheck: true, newId: this.environment.newId });
    m.respond(body.data, { headers: body.headers });
  }

  async #handle(m: Delivery, kind: 'cmd' | 'read'): Promise<Reply> {
    let target;
    try {
      target = parseSubject(m.subject);
    } catch (err) {
      return { ok: false, error: toErrorBody(err) };
    }
    if (target.kind !== 'cmd' && target.kind !== 'read' && target.kind !== 'ro') return { ok: false, error: toErrorBody(new InvalidRequestError('not a session subject')) };
    const app = this.#apps.get(target.app);
    if (app === undefined) return { ok: false, error: toErrorBody(new UnknownApplicationError(target.app)) };
    let body: unknown;
    try {
      body = decode(m.data, { where: `${kind} ${m.subject}` });
    } catch (err) {
      return { ok: false, error: toErrorBody(err) };
    }
    const { id, shard } = target;
    const req = parseRequest(body, kind);
    if (req instanceof Error) return { ok: false, error: toErrorBody(req) };
    switch (req.kind) {
      case 'command':
        return this.#dispatch(app, id, shard, req.client, (s) => s.command(req, this.clock.now()));
      case 'tx':
        return this.#dispatch(app, id, shard, req.client, (s) => s.transaction(req, this.clock.now()));
      case 'verify':
        return this.#dispatch(app, id, shard, req.client, (s) => s.verify(req));
      case 'read':
        return this.#dispatch(app, id, shard, req.client, async (s) => s.read(req.minSeq));
    }
  }

  /**
   * Runs `fn` in the session's mailbox; a session evicted meanwhile is
   * reloaded and `fn` runs there. A client disconnected by force is refused
   * on arrival and again when its turn comes (it may have been queued before).
   */
  async #dispatch(app: Application, id: string, shard: number, client: string, fn: (s: HostedSession) => Promise<Reply>): Promise<Reply> {
    const refused = this.clients.seen(client);
    if (refused !== undefined) return { ok: false, error: toErrorBody(refused) };
    for (;;) {
      const session = await this.#session(app, id, shard);
      const r = await session.enqueue(async () => {
        if (session.evicted) return RETRY;
        const late = this.clients.refusal(client);
        return late === undefined ? fn(session) : { ok: false as const, error: toErrorBody(late) };
      });
      if (r !== RETRY) return r;
    }
  }

  #session(app: Application, id: string, shard: number): Promise<HostedSession> {
    const key = `${app.name}.${escapeToken(id)}`;
    const active = this.sessions.get(key);
    if (active !== undefined && !active.evicted) return Promise.resolve(active);
    let pending = this.#activating.get(key);
    if (pending === undefined) {
      pending = this.#activate(app, id, shard, key).finally(() => this.#activating.delete(key));
      this.#activating.set(key, pending);
    }
    return pending;
  }

  /** From the latest snapshot plus the journal after it. */
  async #activate(app: Application, id: string, shard: number, key: string): Promise<HostedSession> {
    const { state, journalSeq, recent } = await loadSession(this, app, id, shard, this.clock.now());
    const dormant = this.#dormant.get(key);
    if (dormant !== undefined) {
      this.clock.clearTimeout(dormant);
      this.#dormant.delete(key);
    }
    const session = new HostedSession(this, app, id, shard, state, journalSeq, recent);
    this.sessions.set(key, session);
    return session;
  }

  evict(session: HostedSession): void {
    const key = `${session.app.name}.${escapeToken(session.id)}`;
    if (this.sessions.get(key) === session) this.sessions.delete(key);
  }

  async timersChanged(session: HostedSession, due: number | undefined): Promise<void> {
    const key = `${session.shard}.${session.app.name}.${escapeToken(session.id)}`;
    try {
      if (due === undefined) await this.timerIndex.delete(key);
      else await this.timerIndex.put(key, encode(due));
    } catch (err) {
      // The session still fires while active; only a sleeping one would wake late (on its next message).
      this.log.warn({ err, key }, 'timer index not updated');
    }
  }

  /** Sessions that sleep with a timer pending are woken when it falls due, even across restarts. */
  async #armDormantTimers(owned: ReadonlySet<number>): Promise<void> {
    for (const key of await this.timerIndex.keys()) {
      const [shardText, appName, token] = key.split('.');
      const shard = Number(shardText);
      const app = this.#apps.get(appName ?? '');
      if (!owned.has(shard) || app === undefined || token === undefined) continue;
      const entry = await this.timerIndex.get(key);
      if (entry === null) continue;
      this.#wakeAt(app, unescapeToken(token), shard, decode(entry.value) as number);
    }
  }

  #wakeAt(app: Application, id: string, shard: number, due: number): void {
    const key = `${app.name}.${escapeToken(id)}`;
    if (this.sessions.has(key) || this.#stopped || !this.#shardSubs.has(shard)) return;
    this.#dormantShard.set(key, shard);
    const existing = this.#dormant.get(key);
    if (existing !== undefined) this.clock.clearTimeout(existing);
    this.#dormant.set(
      key,
      this.clock.setTimeout(() => {
        this.#dormant.delete(key);
        void this.#session(app, id, shard).catch((err: unknown) => this.log.error({ err, app: app.name, session: id }, 'wake-up failed'));
      }, Math.max(0, due - this.clock.now())),
    );
  }

  #armSweep(): void {
    if (this.#stopped || this.#apps.size === 0) return;
    const every = Math.max(10, Math.min(...[...this.#apps.values()].map((a) => a.unusedSessionLifetime)) / 2);
    this.#sweep = this.clock.setTimeout(() => {
      void this.#passivateIdle().finally(() => this.#armSweep());
    }, every);
  }

  async #passivateIdle(): Promise<void> {
    const now = this.clock.now();
    this.replicas?.sweep(Math.min(...[...this.#apps.values()].map((a) => a.unusedSessionLifetime)));
    // A session holding a transaction stays: its lock and working copy live only here.
    const idle = [...this.sessions.entries()].filter(([, s]) => now - s.lastActive >= s.app.unusedSessionLifetime && s.openTransaction === undefined);
    await Promise.all(idle.map(([key, s]) => this.#passivate(key, s, true, false)));
  }

  async passivateAll(): Promise<number> {
    const all = [...this.sessions.entries()].filter(([, s]) => s.openTransaction === undefined);
    await Promise.all(all.map(([key, s]) => this.#passivate(key, s, true, false)));
    return all.length;
  }

  /** `force`: even a session holding a transaction (the shard is leaving or the worker stopping; the transaction is lost). */
  async #passivate(key: string, s: HostedSession, wake = true, force = true): Promise<void> {
    await s.enqueue(async () => {
      if (s.evicted || (!force && s.openTransaction !== undefined)) return;
      await s.passivate();
      this.evict(s);
      const due = s.state.timers[0]?.due;
      if (due !== undefined && wake) this.#wakeAt(s.app, s.id, s.shard, due);
    });
    this.log.debug({ key }, 'session passivated');
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    // A member hands its shards off first (planned, not a failure), serving until each is taken over.
    if (this.#membership !== undefined) {
      // With its bus gone (a crash, in effect) there is nobody to hand off to: the others fail it over.
      if (!this.#busClosed) await this.#membership.leave(this.#leaveBound);
      this.#membership.stop();
    }
    this.#stopped = true;
    this.replicas?.stop();
    if (this.#replicaTick !== undefined) this.clock.clearTimeout(this.#replicaTick);
    for (const subs of this.#shardSubs.values()) for (const sub of subs) sub.unsubscribe();
    this.#shardSubs.clear();
    for (const sub of this.#roSubs.values()) sub.unsubscribe();
    this.#roSubs.clear();
    for (const sub of this.#subs.splice(0)) sub.unsubscribe();
    this.#unlistenStatus?.();
    if (this.#sweep !== undefined) this.clock.clearTimeout(this.#sweep);
    this.clients.stop();
    for (const t of this.#dormant.values()) this.clock.clearTimeout(t);
    this.#dormant.clear();
    await Promise.all(
      [...this.sessions.entries()].map(([key, s]) =>
        this.#passivate(key, s).catch((err: unknown) => {
          // Its journal holds every acknowledged write; only the snapshot is missing. Its clock timers go regardless.
          this.log.warn({ err, key }, 'snapshot on stop failed');
          s.stop();
          this.evict(s);
        }),
      ),
    );
    if (this.ownsBus) await this.bus.close();
    this.log.info('worker stopped');
  }
}

interface MembershipOptions {
  zone: string;
  promotable: boolean;
  config: MembershipConfig;
  storageReplicas: number;
}

/** The shards a view gives this member to serve: ACTIVE ones it is primary of. */
function primariesOf(view: View, memberId: string): Set<number> {
  const out = new Set<number>();
  view.shards.forEach((s, i) => {
    if (s.state === 'ACTIVE' && s.primary === memberId) out.add(i);
  });
  return out;
}

/**
 * Starts a worker hosting `applications`. It joins the cluster and serves
 * the shards the view gives it; with `shards` it serves those alone
 * (static sharding).
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  validateCluster(options.cluster);
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
  for (const s of options.shards ?? []) {
    if (!Number.isInteger(s) || s < 0 || s >= shardCount) throw new RangeError(`shard ${s} is outside 0..${shardCount - 1}`);
  }
  const config = options.shards === undefined ? membershipConfig({ ...options, shardCount }) : undefined;
  const clients = clientOptions(options.clients);
  if (!options.bus && !options.nats) throw new TypeError('startWorker needs `nats` (server URLs) or `bus`');
  const bus = options.bus ?? (await createNatsBus({ servers: options.nats!, name: `cohort-worker` }));
  const environment = resolveEnvironment(options.environment);
  const id = options.id ?? environment.newId().slice(0, 8);
  const log = (options.logger ?? createLogger()).child({ cluster: options.cluster, worker: id });
  const cluster = options.cluster;
  const replicas = options.storageReplicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new RangeError(`storageReplicas must be a whole number from 1 to 5 (got ${replicas})`);
  const [journal, snapshots, blobs, timers] = await Promise.all([
    bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)], replicas }),
    bus.kv({ bucket: `cohort_${cluster}_snapshots`, replicas }),
    bus.blobs({ bucket: `cohort_${cluster}_blobs`, replicas }),
    bus.kv({ bucket: `cohort_${cluster}_timers`, replicas }),
  ]);
  const host = new WorkerHost(
    id,
    bus,
    options.bus === undefined,
    journal,
    new SessionStore(snapshots, blobs, bus.server.maxPayload),
    timers,
    blobs,
    environment,
    cluster,
    log,
    options.applications,
    shardCount,
    clients,
  );
  if (config !== undefined) host.leaveBound = Math.max(10_000, 3 * config.sessionTimeout);
  await host.start(
    options.shards,
    config === undefined ? undefined : { zone: options.zone ?? 'default', promotable: options.promotable ?? true, config, storageReplicas: replicas },
  );
  return {
    id,
    get view() {
      return host.view;
    },
    get serving() {
      return host.serving;
    },
    failover: async (shard, to, opts = {}) => {
      const membership = host.membership;
      if (membership === undefined) throw new TypeError('failover needs membership (a worker started without `shards`)');
      const timeout = opts.timeout ?? 30_000;
      await requestFailover(bus, cluster, { shard, to, force: opts.force === true }, Math.min(timeout, 5_000));
      return membership.waitForView((v) => v.shards[shard]?.state === 'ACTIVE' && v.shards[shard]?.primary === to, timeout, `shard ${shard} on ${to}`);
    },
    replicaStatus: (shard) => host.replicas?.status(shard) ?? { role: host.serving.includes(shard) ? 'primary' : 'none', epoch: 0, applied: null, secondaries: [] },
    get activeSessions() {
      return host.sessions.size;
    },
    passivate: () => host.passivateAll(),
    forceDisconnect: (client) => host.forceDisconnect(client),
    clients: () => host.clients.info(),
    stop: () => host.stop(),
  };
}
