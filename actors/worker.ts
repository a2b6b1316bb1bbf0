import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../bus/clock.js';
import { encodeBody } from '../bus/claimCheck.js';
import { decode, encode } from '../bus/codec.js';
import { createNatsBus } from '../bus/nats/mod.js';
import {
  cmdShardFilter,
  escapeToken,
  journalStreamFilter,
  journalStreamName,
  journalSubject,
  metaSubject,
  parseSubject,
  readShardFilter,
  unescapeToken,
  validateCluster,
} from '../bus/subjects.js';
import type { BlobStore, Bus, Delivery, Journal, KvStore, Subscription } from '../bus/types.js';
import { createLogger } from '../log/logger.js';
import type { CommandReply, JournalRecord, ReadReply } from '../machines/protocol.js';
import { replaySession, restoreSession, startSession, type SessionState } from '../machines/session.js';
import type { Application } from './application.js';
import { InvalidRequestError, UnknownApplicationError, toErrorBody } from './errors.js';
import { HostedSession, type SessionHost } from './hostedSession.js';
import { parseCommand, parseRead } from './requests.js';
import { DEFAULT_SHARD_COUNT } from './shard.js';
import { SessionStore } from './sessionStore.js';

export interface WorkerOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  bus?: Bus;
  cluster: string;
  applications: Application[];
  /** Shards this worker owns (static sharding); default all. */
  shards?: number[];
  shardCount?: number;
  clock?: Clock;
  logger?: Logger;
  /** Worker id, shown in logs (default a random one). */
  id?: string;
}

export interface Worker {
  readonly id: string;
  /** Sessions in memory now. */
  readonly activeSessions: number;
  /** Passivates every active session now (snapshot written, memory freed). Returns how many. */
  passivate(): Promise<number>;
  /** Passivates every session (snapshots written), unsubscribes, and closes its own bus. */
  stop(): Promise<void>;
}

type Reply = CommandReply | ReadReply;
/** Room kept in a reply for its headers and subject. */
const REPLY_HEADROOM = 1024;
const RETRY = Symbol('retry');

class WorkerHost implements SessionHost {
  readonly sessions = new Map<string, HostedSession>();
  readonly #activating = new Map<string, Promise<HostedSession>>();
  readonly #dormant = new Map<string, TimerHandle>();
  readonly #apps: Map<string, Application>;
  readonly #subs: Subscription[] = [];
  #sweep: TimerHandle | undefined;
  #stopped = false;

  constructor(
    readonly id: string,
    readonly bus: Bus,
    readonly ownsBus: boolean,
    readonly journal: Journal,
    readonly store: SessionStore,
    readonly timerIndex: KvStore,
    readonly blobs: BlobStore,
    readonly clock: Clock,
    readonly cluster: string,
    readonly log: Logger,
    applications: Application[],
    readonly shards: readonly number[],
    readonly shardCount: number,
  ) {
    this.#apps = new Map(applications.map((a) => [a.name, a]));
  }

  async start(): Promise<void> {
    for (const shard of this.shards) {
      this.#subs.push(this.bus.subscribe(cmdShardFilter(this.cluster, shard), (m) => this.#onMessage(m, 'cmd')));
      this.#subs.push(this.bus.subscribe(readShardFilter(this.cluster, shard), (m) => this.#onMessage(m, 'read')));
    }
    for (const app of this.#apps.values()) {
      const body = new TextEncoder().encode(JSON.stringify({ name: app.name, commit: app.commit, metadata: app.metadata }));
      this.#subs.push(
        this.bus.subscribe(metaSubject(this.cluster, app.name), (m) => m.respond(body, { headers: { 'Content-Type': 'application/json' } }), {
          queue: 'cohort-meta',
        }),
      );
    }
    await this.bus.flush();
    await this.#armDormantTimers();
    this.#armSweep();
    this.log.info({ shards: this.shards.length, apps: [...this.#apps.keys()] }, 'worker started');
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
    const body = await encodeBody(reply, { maxBytes: this.bus.server.maxPayload - REPLY_HEADROOM, blobs: this.blobs, allowClaimCheck: true });
    m.respond(body.data, { headers: body.headers });
  }

  async #handle(m: Delivery, kind: 'cmd' | 'read'): Promise<Reply> {
    let target;
    try {
      target = parseSubject(m.subject);
    } catch (err) {
      return { ok: false, error: toErrorBody(err) };
    }
    if (target.kind !== 'cmd' && target.kind !== 'read') return { ok: false, error: toErrorBody(new InvalidRequestError('not a session subject')) };
    const app = this.#apps.get(target.app);
    if (app === undefined) return { ok: false, error: toErrorBody(new UnknownApplicationError(target.app)) };
    let body: unknown;
    try {
      body = decode(m.data, { where: `${kind} ${m.subject}` });
    } catch (err) {
      return { ok: false, error: toErrorBody(err) };
    }
    if (kind === 'cmd') {
      const req = parseCommand(body);
      if (req instanceof Error) return { ok: false, error: toErrorBody(req) };
      return this.#dispatch(app, target.id, target.shard, (s) => s.command(req, this.clock.now()));
    }
    const req = parseRead(body);
    if (req instanceof Error) return { ok: false, error: toErrorBody(req) };
    return this.#dispatch(app, target.id, target.shard, async (s) => s.read(req.minSeq));
  }

  /** Runs `fn` in the session's mailbox; a session evicted meanwhile is reloaded and `fn` runs there. */
  async #dispatch<T>(app: Application, id: string, shard: number, fn: (s: HostedSession) => Promise<T>): Promise<T> {
    for (;;) {
      const session = await this.#session(app, id, shard);
      const r = await session.enqueue(async () => (session.evicted ? RETRY : fn(session)));
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
    const subject = journalSubject(this.cluster, shard, app.name, id);
    // Both lookups at once: activation is two round trips in parallel, not in a row.
    const [stored, lastSeq] = await Promise.all([this.store.load(app.name, id), this.journal.lastSeq(subject)]);
    let state: SessionState | undefined = stored ? restoreSession(app.machine, stored.session) : undefined;
    let journalSeq = stored?.journalSeq ?? 0;
    const recent: [string, number][] = (stored?.recent ?? []).map(([c, s]) => [c, s]);
    // The last-sequence lookup spares a consumer when there is nothing after the snapshot (or no session yet).
    const tail = lastSeq > journalSeq ? this.journal.read(subject, { fromSeq: journalSeq + 1 }) : [];
    for await (const entry of tail) {
      const record = decode(entry.data, { where: `journal ${entry.subject}#${entry.seq}` }) as JournalRecord;
      const first = record.events[0];
      if (first === undefined) continue;
      state ??= startSession(app.machine, first.event.meta.time);
      state = replaySession(app.machine, state, record.events);
      for (const e of record.events) recent.push([e.event.meta.cmdId, e.seq]);
      journalSeq = entry.seq;
    }
    state ??= startSession(app.machine, this.clock.now());
    const dormant = this.#dormant.get(key);
    if (dormant !== undefined) {
      this.clock.clearTimeout(dormant);
      this.#dormant.delete(key);
    }
    const session = new HostedSession(this, app, id, shard, state, journalSeq, recent.slice(-256));
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
  async #armDormantTimers(): Promise<void> {
    const owned = new Set(this.shards);
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
    if (this.sessions.has(key) || this.#stopped) return;
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
    const idle = [...this.sessions.entries()].filter(([, s]) => now - s.lastActive >= s.app.unusedSessionLifetime);
    await Promise.all(idle.map(([key, s]) => this.#passivate(key, s)));
  }

  async passivateAll(): Promise<number> {
    const all = [...this.sessions.entries()];
    await Promise.all(all.map(([key, s]) => this.#passivate(key, s)));
    return all.length;
  }

  async #passivate(key: string, s: HostedSession): Promise<void> {
    await s.enqueue(async () => {
      if (s.evicted) return;
      await s.passivate();
      this.evict(s);
      const due = s.state.timers[0]?.due;
      if (due !== undefined) this.#wakeAt(s.app, s.id, s.shard, due);
    });
    this.log.debug({ key }, 'session passivated');
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const sub of this.#subs.splice(0)) sub.unsubscribe();
    if (this.#sweep !== undefined) this.clock.clearTimeout(this.#sweep);
    for (const t of this.#dormant.values()) this.clock.clearTimeout(t);
    this.#dormant.clear();
    await Promise.all([...this.sessions.entries()].map(([key, s]) => this.#passivate(key, s).catch(() => undefined)));
    if (this.ownsBus) await this.bus.close();
    this.log.info('worker stopped');
  }
}

/** Starts a worker hosting `applications` for the shards it owns. */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  validateCluster(options.cluster);
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
  const shards = options.shards ?? Array.from({ length: shardCount }, (_, i) => i);
  for (const s of shards) {
    if (!Number.isInteger(s) || s < 0 || s >= shardCount) throw new RangeError(`shard ${s} is outside 0..${shardCount - 1}`);
  }
  if (!options.bus && !options.nats) throw new TypeError('startWorker needs `nats` (server URLs) or `bus`');
  const bus = options.bus ?? (await createNatsBus({ servers: options.nats!, name: `cohort-worker` }));
  const id = options.id ?? randomUUID().slice(0, 8);
  const log = (options.logger ?? createLogger()).child({ cluster: options.cluster, worker: id });
  const cluster = options.cluster;
  const [journal, snapshots, blobs, timers] = await Promise.all([
    bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] }),
    bus.kv({ bucket: `cohort_${cluster}_snapshots` }),
    bus.blobs({ bucket: `cohort_${cluster}_blobs` }),
    bus.kv({ bucket: `cohort_${cluster}_timers` }),
  ]);
  const host = new WorkerHost(
    id,
    bus,
    options.bus === undefined,
    journal,
    new SessionStore(snapshots, blobs, bus.server.maxPayload),
    timers,
    blobs,
    options.clock ?? systemClock,
    cluster,
    log,
    options.applications,
    shards,
    shardCount,
  );
  await host.start();
  return {
    id,
    get activeSessions() {
      return host.sessions.size;
    },
    passivate: () => host.passivateAll(),
    stop: () => host.stop(),
  };
}
